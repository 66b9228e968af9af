#!/usr/bin/env node
// windows.mjs is the reference for jetinfer's long inputs: it runs a
// jetinfer model directory through transformers.js (@huggingface/transformers,
// offline) one window at a time and aggregates the windows as jetinfer's
// docs say, so that parity tests compare the Go windowing and aggregation with
// an independent implementation on the same model files.
//
// Usage:
//   echo '{"model_dir":"/abs/.jetinfer/models/sentiment","texts":["..."]}' | node reference/windows.mjs
//
// Request (JSON on stdin):
//   model_dir     string, required: a model directory with jetinfer.json.
//   texts         array of strings, required.
//   max_windows   the window cap; optional, defaults to 64.
//   aggregation   text classification: "mean" (default) or "max".
//   threads       ONNX Runtime intra-op threads; optional.
//
// Windows, as jetinfer cuts them: the text is tokenized by the pipeline's
// tokenizer without special tokens; a window holds w = max_length minus the
// special tokens of content tokens; window k starts at k*(w - stride)
// (jetinfer.json "stride", default w/4 rounded down) and the windows run until
// one reaches the last token. Past max_windows only the first max_windows are
// run. Each window is the model's input with the special tokens around it,
// run through the pipeline's model alone (batch of one).
//
// Aggregation, weighting each window by its tokens (special tokens included):
//   text-classification  per window the pipeline's scores (softmax, or sigmoid
//                        for multi_label_classification); per label the
//                        weighted mean, or the highest ("max").
//   feature-extraction   per window the mean of its token states (the
//                        pipeline's mean pooling, not normalised); their
//                        weighted mean, L2-normalised.
//
// Response (JSON on stdout): {"results": [per text {"labels": [{label, score}
// sorted by score]} or {"embedding": [...], "dim": N}, plus "windows"]}.
// Errors: a message on stderr and exit status 1.

import fs from "node:fs";
import path from "node:path";
import { env, pipeline, softmax, mean_pooling, Tensor } from "@huggingface/transformers";

function fail(msg) {
  process.stderr.write(`windows.mjs: ${msg}\n`);
  process.exit(1);
}

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return Buffer.concat(chunks).toString("utf8");
}

// specials returns the ids the tokenizer puts before and after a sequence.
function specials(tokenizer) {
  const probe = "news";
  const bare = Array.from(tokenizer(probe, { add_special_tokens: false }).input_ids.data, Number);
  const full = Array.from(tokenizer(probe).input_ids.data, Number);
  for (let k = 0; k + bare.length <= full.length; k++) {
    if (bare.every((id, i) => full[k + i] === id)) {
      return { prefix: full.slice(0, k), suffix: full.slice(k + bare.length) };
    }
  }
  fail("cannot find the sequence inside its encoding with special tokens");
}

function ints(ids) {
  return new Tensor("int64", BigInt64Array.from(ids.map(BigInt)), [1, ids.length]);
}

async function main() {
  const req = JSON.parse(await readStdin());
  if (!req || typeof req.model_dir !== "string") fail("model_dir is required");
  if (!Array.isArray(req.texts)) fail("texts must be an array of strings");
  const dir = path.resolve(req.model_dir);
  const meta = JSON.parse(fs.readFileSync(path.join(dir, "jetinfer.json"), "utf8"));
  const kind = meta.kind;
  if (kind !== "text-classification" && kind !== "feature-extraction") fail(`kind ${kind} is not windowed here`);
  const maxWindows = Number.isInteger(req.max_windows) && req.max_windows > 0 ? req.max_windows : 64;
  const useMax = req.aggregation === "max";

  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.useBrowserCache = false;
  env.localModelPath = path.dirname(dir) + path.sep;
  const opts = { dtype: "fp32", device: "cpu", local_files_only: true };
  if (Number.isInteger(req.threads) && req.threads > 0) {
    opts.session_options = { intraOpNumThreads: req.threads, interOpNumThreads: 1 };
  }
  const pipe = await pipeline(kind, path.basename(dir), opts);
  const { prefix, suffix } = specials(pipe.tokenizer);
  const w = meta.max_length - prefix.length - suffix.length;
  const stride = Number.isInteger(meta.stride) ? meta.stride : Math.floor(w / 4);
  const { problem_type, id2label } = pipe.model.config;

  const results = [];
  for (const text of req.texts) {
    const ids = Array.from(pipe.tokenizer(text, { add_special_tokens: false }).input_ids.data, Number);
    const starts = [0];
    while (starts[starts.length - 1] + w < ids.length && starts.length < maxWindows) {
      starts.push(starts[starts.length - 1] + w - stride);
    }
    let acc = null;
    let total = 0;
    for (const s of starts) {
      const row = [...prefix, ...ids.slice(s, s + w), ...suffix];
      const n = row.length;
      const out = await pipe.model({
        input_ids: ints(row),
        attention_mask: ints(new Array(n).fill(1)),
        token_type_ids: ints(new Array(n).fill(0)),
      });
      let vec;
      if (kind === "text-classification") {
        const logits = Array.from(out.logits.data);
        vec = problem_type === "multi_label_classification" ? logits.map((x) => 1 / (1 + Math.exp(-x))) : softmax(logits);
      } else {
        const hidden = out.last_hidden_state ?? out.token_embeddings;
        vec = Array.from(mean_pooling(hidden, ints(new Array(n).fill(1))).data);
      }
      if (acc === null) acc = new Array(vec.length).fill(useMax ? -Infinity : 0);
      for (let i = 0; i < vec.length; i++) {
        acc[i] = useMax && kind === "text-classification" ? Math.max(acc[i], vec[i]) : acc[i] + n * vec[i];
      }
      total += n;
    }
    if (!(useMax && kind === "text-classification")) acc = acc.map((x) => x / total);
    if (kind === "text-classification") {
      const labels = acc.map((score, i) => ({ label: id2label[i], score }));
      labels.sort((a, b) => b.score - a.score);
      results.push({ labels, windows: starts.length });
    } else {
      const norm = Math.max(Math.sqrt(acc.reduce((s, x) => s + x * x, 0)), 1e-12);
      const embedding = meta.normalize === false ? acc : acc.map((x) => x / norm);
      results.push({ embedding, dim: embedding.length, windows: starts.length });
    }
  }
  await pipe.dispose();
  process.stdout.write(JSON.stringify({ results }) + "\n");
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
