#!/usr/bin/env node
// pipeline.mjs runs a jetinfer model directory through transformers.js
// (@huggingface/transformers, offline), the reference that jetinfer's parity
// tests and benchmarks compare the Go pipelines against.
//
// Usage:
//   echo '{"model_dir":"/abs/path/.jetinfer/models/sentiment","texts":["Shares soar"]}' | node reference/pipeline.mjs
//
// Request (JSON on stdin):
//   model_dir   string, required: a model directory (model.onnx, onnx/model.onnx,
//               tokenizer.json, tokenizer_config.json, config.json, jetinfer.json).
//   kind        "text-classification" | "token-classification" | "feature-extraction" |
//               "zero-shot-classification" | "text-ranking";
//               optional, defaults to jetinfer.json's "kind".
//   texts       array of strings, required (for text-ranking: the first texts of the pairs).
//   text_pairs  array of strings, text-ranking only: the second text of each pair.
//   batch       texts per pipeline call (one padded batch each); optional,
//               defaults to all texts in one call.
//   threads     ONNX Runtime intra-op threads; optional, defaults to ORT's choice.
//   repeat      run the whole text list this many times (benchmarks); results are
//               from the last round; optional, defaults to 1.
//   options     extra pipeline options, merged over the defaults below; optional.
//
// Defaults per kind (the shapes jetinfer's results follow):
//   text-classification   {top_k: null}: every label, sorted by score, descending;
//                         softmax, or sigmoid where config.json's problem_type is
//                         multi_label_classification.
//   feature-extraction    {pooling: "mean", normalize: true}: mean over the attention
//                         mask, L2-normalised.
//   token-classification  {aggregation_strategy: "none", ignore_labels: []}: one entry
//                         per non-special token, "O" included.
//   zero-shot-classification  options {candidate_labels: [...], hypothesis_template,
//                         multi_label} as transformers.js's zero-shot pipeline takes them,
//                         one pipeline call per text. With option_sets (an array of such
//                         options, one batch holding every text) the model loads once and
//                         results holds one list of per-text results per set.
//   text-ranking          transformers.js has no pipeline for cross-encoders: the texts
//                         and text_pairs go through its tokenizer as pairs
//                         (tokenizer(texts, {text_pair, padding, truncation})) and
//                         AutoModelForSequenceClassification; the score is the sigmoid
//                         of the single logit, as sentence-transformers' CrossEncoder.
//
// Response (JSON on stdout, one object):
//   {
//     "model": "<dir name>", "kind": "...", "n": <texts>,
//     "load_ms": <pipeline creation>, "run_ms": <all pipeline calls, last round>,
//     "results": [ per text, in input order:
//        text-classification:  [{"label": "positive", "score": 0.93}, ...]
//        feature-extraction:   {"embedding": [..floats..], "dim": 384}
//        token-classification: [{"entity": "B-PER", "score": 0.9, "index": 1, "word": "John"}, ...]
//        zero-shot-classification: {"sequence": "...", "labels": [...], "scores": [...]}
//        text-ranking:         {"logit": -1.2, "score": 0.23}
//                              (index: position in input_ids, [CLS] is 0; no character
//                              offsets: transformers.js does not produce them)
//     ]
//   }
// Errors: a message on stderr and exit status 1.
//
// Note: transformers.js truncates after adding special tokens, so an input
// longer than model_max_length loses its final [SEP]; compare against it only
// on inputs within the max length.

import fs from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { AutoModelForSequenceClassification, AutoTokenizer, env, pipeline } from "@huggingface/transformers";

const KINDS = new Set([
  "text-classification",
  "token-classification",
  "feature-extraction",
  "zero-shot-classification",
  "text-ranking",
]);

function fail(msg) {
  process.stderr.write(`pipeline.mjs: ${msg}\n`);
  process.exit(1);
}

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return Buffer.concat(chunks).toString("utf8");
}

function defaults(kind) {
  switch (kind) {
    case "text-classification":
      return { top_k: null };
    case "feature-extraction":
      return { pooling: "mean", normalize: true };
    case "token-classification":
      return { aggregation_strategy: "none", ignore_labels: [] };
    default:
      return {};
  }
}

// crossEncoder is a pipeline-like function for text-ranking: pairs in, one
// {logit, score} per pair out.
async function crossEncoder(name, pipeOpts) {
  const tokenizer = await AutoTokenizer.from_pretrained(name, { local_files_only: true });
  const model = await AutoModelForSequenceClassification.from_pretrained(name, pipeOpts);
  const run = async (texts, pairs) => {
    const inputs = tokenizer(texts, { text_pair: pairs, padding: true, truncation: true });
    const { logits } = await model(inputs);
    const out = [];
    for (let i = 0; i < texts.length; i++) {
      const l = logits.data[i * logits.dims[1]];
      out.push({ logit: l, score: 1 / (1 + Math.exp(-l)) });
    }
    return out;
  };
  run.dispose = () => model.dispose();
  return run;
}

async function main() {
  let req;
  try {
    req = JSON.parse(await readStdin());
  } catch (e) {
    fail(`request is not JSON: ${e.message}`);
  }
  if (!req || typeof req.model_dir !== "string" || req.model_dir === "") fail("model_dir is required");
  if (!Array.isArray(req.texts) || req.texts.some((t) => typeof t !== "string")) fail("texts must be an array of strings");

  const dir = path.resolve(req.model_dir);
  let meta = {};
  try {
    meta = JSON.parse(fs.readFileSync(path.join(dir, "jetinfer.json"), "utf8"));
  } catch {
    // A plain Hugging Face directory: kind must come with the request.
  }
  const kind = req.kind || meta.kind;
  if (!KINDS.has(kind)) fail(`unknown kind ${JSON.stringify(kind)}`);
  const batch = Number.isInteger(req.batch) && req.batch > 0 ? req.batch : Math.max(1, req.texts.length);
  const repeat = Number.isInteger(req.repeat) && req.repeat > 0 ? req.repeat : 1;

  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.useBrowserCache = false;
  env.localModelPath = path.dirname(dir) + path.sep;

  const pipeOpts = { dtype: "fp32", device: "cpu", local_files_only: true };
  if (Number.isInteger(req.threads) && req.threads > 0) {
    pipeOpts.session_options = { intraOpNumThreads: req.threads, interOpNumThreads: 1 };
  }
  let t0 = performance.now();
  if (kind === "text-ranking" && (!Array.isArray(req.text_pairs) || req.text_pairs.length !== req.texts.length)) {
    fail("text-ranking needs text_pairs, one per text");
  }
  const pipe =
    kind === "text-ranking" ? await crossEncoder(path.basename(dir), pipeOpts) : await pipeline(kind, path.basename(dir), pipeOpts);
  const loadMs = performance.now() - t0;
  const opts = { ...defaults(kind), ...(req.options || {}) };

  let results = [];
  let runMs = 0;
  for (let r = 0; r < repeat; r++) {
    results = [];
    t0 = performance.now();
    for (let i = 0; i < req.texts.length; i += batch) {
      const chunk = req.texts.slice(i, i + batch);
      if (kind === "zero-shot-classification") {
        // option_sets: one result list per set of options, from one load.
        const sets = Array.isArray(req.option_sets) ? req.option_sets : null;
        for (const o of sets ?? [opts]) {
          const { candidate_labels, ...zs } = o;
          const out = [];
          for (const text of chunk) out.push(await pipe(text, candidate_labels, zs));
          if (sets) results.push(out);
          else results.push(...out);
        }
        continue;
      }
      if (kind === "text-ranking") {
        results.push(...(await pipe(chunk, req.text_pairs.slice(i, i + batch))));
        continue;
      }
      const out = await pipe(chunk, opts);
      if (kind === "feature-extraction") {
        const rows = out.tolist();
        for (const e of rows) results.push({ embedding: e, dim: e.length });
      } else {
        results.push(...out);
      }
    }
    runMs = performance.now() - t0;
  }
  if (results.length !== req.texts.length && !(Array.isArray(req.option_sets) && results.length === req.option_sets.length)) fail(`got ${results.length} results for ${req.texts.length} texts`);
  await pipe.dispose();
  process.stdout.write(
    JSON.stringify({ model: path.basename(dir), kind, n: req.texts.length, load_ms: loadMs, run_ms: runMs, results }) + "\n",
  );
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
