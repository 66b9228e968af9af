#!/usr/bin/env node
// verify.mjs checks a freshly built model directory before scripts/models.sh
// moves it into place: it runs the directory through the reference harness
// (reference/pipeline.mjs: transformers.js on ONNX Runtime 1.30) and fails
// when the outputs have the wrong shape, when batching changes them (padding
// or the attention mask handled wrong), or, for the sentiment model, when
// clear headlines get the wrong label. It prints one summary line.
//
// Usage: node scripts/models/verify.mjs <model dir>

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const dir = path.resolve(process.argv[2] || "");
const meta = JSON.parse(fs.readFileSync(path.join(dir, "jetinfer.json"), "utf8"));
const config = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));

// label expected for the sentiment model; null: only shape checks.
const TEXTS = [
  ["Stocks soar as quarterly profits beat expectations", "positive"],
  ["Company files for bankruptcy after massive losses", "negative"],
  ["Shares plunge amid fraud investigation", "negative"],
  ["The central bank will meet on Tuesday", "neutral"],
  ["Apple reports quarterly results", "neutral"],
  ["Strong earnings lift markets to record highs", "positive"],
  ["Regulators warn of crisis as banks collapse", "negative"],
  ["Merger talks did not fail, sources say", "positive"],
  ["Diamond Shamrock Corp said that effective today it had cut its contract prices for crude oil by 1.50 dlrs a barrel.", null],
  ["Angela Merkel met Emmanuel Macron in Berlin to discuss the European Union budget.", null],
  ["Oil", null],
];

function fail(msg) {
  process.stderr.write(`verify ${path.basename(dir)}: ${msg}\n`);
  process.exit(1);
}

function run(texts, batch, extra = {}) {
  let out;
  try {
    out = execFileSync(process.execPath, [path.join(root, "reference/pipeline.mjs")], {
      input: JSON.stringify({ model_dir: dir, texts, batch, threads: 2, ...extra }),
      maxBuffer: 1 << 30,
      stdio: ["pipe", "pipe", "inherit"],
    });
  } catch (e) {
    fail(`reference/pipeline.mjs failed (${e.status ?? e.signal})`);
  }
  return JSON.parse(out.toString("utf8"));
}

const texts = TEXTS.map(([t]) => t);
// Pair models read (query, passage) and (premise, hypothesis) pairs.
const QUERIES = ["oil prices", "who met in Berlin", "bank results"];
const pairTexts = texts.flatMap(() => QUERIES).slice(0, texts.length);
const LABELS = ["business", "politics", "sports", "energy"];
let extra = {};
if (meta.kind === "text-ranking") extra = { text_pairs: texts };
if (meta.kind === "zero-shot-classification") extra = { options: { candidate_labels: LABELS } };
const inputs = meta.kind === "text-ranking" ? pairTexts : texts;
const batched = run(inputs, texts.length, extra);
const single = run(inputs, 1, extra);
const close = (a, b) => Math.abs(a - b) <= 1e-4;
let summary = "";

switch (meta.kind) {
  case "text-classification": {
    const labels = Object.values(config.id2label);
    const winners = {};
    batched.results.forEach((r, i) => {
      if (r.length !== labels.length) fail(`text ${i}: ${r.length} labels, want ${labels.length}`);
      const sum = r.reduce((s, x) => s + x.score, 0);
      if (!close(sum, 1)) fail(`text ${i}: scores sum to ${sum}`);
      for (const x of r) {
        const y = single.results[i].find((z) => z.label === x.label);
        if (!y || !close(x.score, y.score)) fail(`text ${i}: batch of ${texts.length} and batch of 1 disagree on ${x.label}`);
      }
      winners[r[0].label] = (winners[r[0].label] || 0) + 1;
      const want = TEXTS[i][1];
      if (meta.task === "sentiment" && want && r[0].label !== want) {
        fail(`"${texts[i]}": got ${r[0].label} ${r[0].score.toFixed(3)}, want ${want}`);
      }
    });
    summary = `top labels ${JSON.stringify(winners)}`;
    break;
  }
  case "feature-extraction": {
    const dim = config.hidden_size;
    batched.results.forEach((r, i) => {
      if (r.dim !== dim || r.embedding.length !== dim) fail(`text ${i}: dim ${r.dim}, want ${dim}`);
      const norm = Math.hypot(...r.embedding);
      if (!close(norm, 1)) fail(`text ${i}: norm ${norm}`);
      if (r.embedding.some((x, j) => Math.abs(x - single.results[i].embedding[j]) > 1e-4)) {
        fail(`text ${i}: batch of ${texts.length} and batch of 1 disagree`);
      }
    });
    const dot = batched.results[0].embedding.reduce((s, x, j) => s + x * batched.results[1].embedding[j], 0);
    if (dot > 0.99999) fail("different texts give the same embedding");
    summary = `dim ${dim}, cos(text0, text1) ${dot.toFixed(4)}`;
    break;
  }
  case "token-classification": {
    const counts = {};
    batched.results.forEach((r, i) => {
      if (r.length !== single.results[i].length) fail(`text ${i}: batch and single token counts differ`);
      r.forEach((t, j) => {
        const u = single.results[i][j];
        if (t.entity !== u.entity || t.index !== u.index || !close(t.score, u.score)) {
          fail(`text ${i} token ${j}: batch ${JSON.stringify(t)} vs single ${JSON.stringify(u)}`);
        }
        counts[t.entity] = (counts[t.entity] || 0) + 1;
      });
    });
    if (Object.keys(counts).length < 3) fail(`outputs use only ${JSON.stringify(counts)}`);
    summary = `token labels ${JSON.stringify(counts)}`;
    break;
  }
  case "text-ranking": {
    batched.results.forEach((r, i) => {
      if (!(r.score > 0 && r.score < 1) || !Number.isFinite(r.logit)) fail(`pair ${i}: score ${r.score}, logit ${r.logit}`);
      if (!close(r.score, single.results[i].score)) fail(`pair ${i}: batch of ${texts.length} and batch of 1 disagree`);
    });
    const logits = batched.results.map((r) => r.logit);
    if (Math.max(...logits) - Math.min(...logits) < 1e-3) fail("every pair gets the same relevance");
    summary = `relevance logits ${Math.min(...logits).toFixed(3)}..${Math.max(...logits).toFixed(3)}`;
    break;
  }
  case "zero-shot-classification": {
    if (!Object.values(config.id2label).map((l) => l.toLowerCase()).includes("entailment")) fail("id2label has no entailment");
    const winners = {};
    batched.results.forEach((r, i) => {
      if (r.labels.length !== LABELS.length) fail(`text ${i}: ${r.labels.length} labels, want ${LABELS.length}`);
      const sum = r.scores.reduce((s, x) => s + x, 0);
      if (!close(sum, 1)) fail(`text ${i}: scores sum to ${sum}`);
      r.labels.forEach((l, j) => {
        const k = single.results[i].labels.indexOf(l);
        if (k < 0 || !close(r.scores[j], single.results[i].scores[k])) fail(`text ${i}: batch and single disagree on ${l}`);
      });
      winners[r.labels[0]] = (winners[r.labels[0]] || 0) + 1;
    });
    summary = `top labels ${JSON.stringify(winners)}`;
    break;
  }
  default:
    fail(`unknown kind ${meta.kind}`);
}
console.log(
  `verify ${path.basename(dir)}: ok (${meta.kind}; ${summary}; load ${batched.load_ms.toFixed(0)} ms, ` +
    `${texts.length} texts in ${batched.run_ms.toFixed(0)} ms batched, ${single.run_ms.toFixed(0)} ms one by one)`,
);
