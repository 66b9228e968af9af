// A webhook receiver for jetinfer's tests: it verifies every delivery with
// the standardwebhooks library and de-duplicates by webhook-id, as a real
// receiver must. Each path is one endpoint, configured by the test:
//
//   POST /_config {"path","secret","fail_first","fail_status","hang_ms"}
//   GET  /_state  → {path: {attempts, invalid, duplicates, events: [{id, type, data}]}}
//
// fail_first answers the first N valid deliveries with 503 after taking
// them in (a lost answer: their retries are duplicates to drop);
// fail_status refuses every delivery with that status before taking it in;
// hang_ms delays the answer.
// Usage: node webhook_receiver.mjs [port]  (prints the port it listens on)
import http from "node:http";
import { Webhook } from "standardwebhooks";

const endpoints = new Map();

function endpoint(path) {
  if (!endpoints.has(path)) {
    endpoints.set(path, { secret: "", failFirst: 0, failStatus: 0, hangMs: 0, attempts: 0, invalid: 0, duplicates: 0, seen: new Set(), events: [] });
  }
  return endpoints.get(path);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

const server = http.createServer(async (req, res) => {
  const body = await readBody(req);
  const reply = (status, obj) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(obj ?? {}));
  };
  if (req.url === "/_config" && req.method === "POST") {
    const c = JSON.parse(body);
    const ep = endpoint(c.path);
    if (c.secret !== undefined) ep.secret = c.secret;
    ep.failFirst = c.fail_first ?? 0;
    ep.failStatus = c.fail_status ?? 0;
    ep.hangMs = c.hang_ms ?? 0;
    return reply(200);
  }
  if (req.url === "/_state") {
    const out = {};
    for (const [path, ep] of endpoints) {
      out[path] = { attempts: ep.attempts, invalid: ep.invalid, duplicates: ep.duplicates, events: ep.events };
    }
    return reply(200, out);
  }
  const ep = endpoint(req.url);
  ep.attempts++;
  let event;
  try {
    event = new Webhook(ep.secret).verify(body, req.headers);
  } catch (err) {
    ep.invalid++;
    return reply(400, { error: String(err) });
  }
  if (ep.hangMs > 0) await new Promise((r) => setTimeout(r, ep.hangMs));
  // A receiver that is failing takes nothing in.
  if (ep.failStatus && ep.failFirst === 0) return reply(ep.failStatus);
  const id = req.headers["webhook-id"];
  if (ep.seen.has(id)) {
    ep.duplicates++;
  } else {
    ep.seen.add(id);
    ep.events.push({ id, type: event.type, data: event.data });
  }
  if (ep.failFirst > 0) {
    ep.failFirst--;
    return reply(503);
  }
  return reply(204);
});

server.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => {
  console.log(server.address().port);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
