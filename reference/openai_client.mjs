// Drives jetinfer's OpenAI-compatible surface with the official openai
// client, configured only by its base URL and API key, as a user's code is.
// internal/app's TestOpenAIClient runs it against the real stack and checks
// what it prints (one JSON object on stdout).
//
//   JETINFER_OPENAI_URL   base URL, http://host:port/openai/v1
//   JETINFER_TOKEN        a jetinfer token, used as the API key
//   JETINFER_MODEL        a feature-extraction task
import OpenAI, { toFile } from "openai";

const client = new OpenAI({
  baseURL: process.env.JETINFER_OPENAI_URL,
  apiKey: process.env.JETINFER_TOKEN,
  maxRetries: 0,
});
const model = process.env.JETINFER_MODEL;
const text = "Shares of the chipmaker rose 4% after record quarterly profits.";
const out = {};

// Models, listed and retrieved.
const list = await client.models.list();
out.models = list.data.map((m) => m.id);
out.model = await client.models.retrieve(model);

// The client's default: it asks for base64 and decodes it into floats.
const byDefault = await client.embeddings.create({ model, input: text });
out.default = byDefault.data[0].embedding;
out.usage = byDefault.usage;
out.object = byDefault.object;

// Floats as JSON numbers.
const floats = await client.embeddings.create({ model, input: text, encoding_format: "float" });
out.float = floats.data[0].embedding;

// Base64 asked for explicitly: the client hands the string over as is.
const b64 = await client.embeddings.create({ model, input: text, encoding_format: "base64" });
out.base64 = b64.data[0].embedding;

// Several inputs in one request, answered in order.
const many = await client.embeddings.create({ model, input: [text, "Oil fell.", text], encoding_format: "float" });
out.many = many.data.map((d) => ({ index: d.index, embedding: d.embedding }));
out.manyUsage = many.usage;

// Errors arrive as the client's APIError, with OpenAI's fields.
try {
  await client.embeddings.create({ model: "no-such-model", input: text });
  out.error = null;
} catch (e) {
  out.error = { status: e.status, type: e.type, code: e.code, param: e.param, message: e.message, isAPIError: e instanceof OpenAI.APIError };
}

// The Batch API: upload a JSONL file, run it as a batch, download the
// output and error files.
const long = "word ".repeat(400); // over the model's 256 tokens: fails
const lines = [
  { custom_id: "a", method: "POST", url: "/v1/embeddings", body: { model, input: text } },
  { custom_id: "b", method: "POST", url: "/v1/embeddings", body: { model, input: text, encoding_format: "base64", dimensions: 128 } },
  { custom_id: "c", method: "POST", url: "/v1/embeddings", body: { model, input: long } },
];
const jsonl = lines.map((l) => JSON.stringify(l)).join("\n") + "\n";
const file = await client.files.create({ file: await toFile(Buffer.from(jsonl), "batch.jsonl"), purpose: "batch" });
let batch = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/embeddings", completion_window: "24h" });
const created = batch.status;
const deadline = Date.now() + 60_000;
while (!["completed", "failed", "cancelled", "expired"].includes(batch.status) && Date.now() < deadline) {
  await new Promise((r) => setTimeout(r, 100));
  batch = await client.batches.retrieve(batch.id);
}
const jsonlOf = async (id) => (await (await client.files.content(id)).text()).trim().split("\n").map((l) => JSON.parse(l));
out.batch = {
  file, created, status: batch.status, counts: batch.request_counts, id: batch.id,
  output: batch.output_file_id ? await jsonlOf(batch.output_file_id) : null,
  errors: batch.error_file_id ? await jsonlOf(batch.error_file_id) : null,
};

// A file whose lines name two models is refused, naming the line.
try {
  const mixed = jsonl + JSON.stringify({ custom_id: "d", method: "POST", url: "/v1/embeddings", body: { model: "sentiment", input: text } }) + "\n";
  await client.files.create({ file: await toFile(Buffer.from(mixed), "mixed.jsonl"), purpose: "batch" });
  out.badFile = null;
} catch (e) {
  out.badFile = { status: e.status, code: e.code, param: e.param, message: e.message };
}

process.stdout.write(JSON.stringify(out));
