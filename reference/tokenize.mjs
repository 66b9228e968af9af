// tokenize.mjs is the reference for internal/tokenize's parity test.
//
// It reads {"tokenizer": "/path/tokenizer.json", "texts": ["...", ...]} on
// stdin and prints {"results": [{"ids": [...], "tokens": [...],
// "offsets": [[start, end], ...], "decoded": "..."}, ...]} on stdout: the
// token ids of each text from @huggingface/tokenizers (Tokenizer.encode
// without special tokens), each token's range in the text as UTF-8 byte
// offsets, and what the tokenizer.json decoder makes of the tokens (Hugging
// Face's convert_tokens_to_string).
//
// @huggingface/tokenizers reports no offsets, so they are derived here from
// the library's own pipeline, the way the Rust tokenizers crate defines them:
// each character the normalizer produces is aligned to the input character it
// came from (the normalizer is run on every input character to learn what it
// becomes), the pre-tokenizer's words and the model's pieces are located in
// the normalized text, and a token covers the input characters its first and
// last normalized characters came from. JavaScript strings count UTF-16 code
// units; the offsets are converted to UTF-8 bytes before printing. Whatever
// cannot be aligned is reported in an "error" field rather than guessed, and
// the derived token sequence is checked against encode()'s.
//
// With "pairs": [[a, b], ...] in the request, the output also holds
// "pairs": [{"ids": [...], "token_type_ids": [...]}, ...]: each pair encoded
// with special tokens through the post-processor's pair template, as
// transformers.js's tokenizer(a, {text_pair: b}) feeds a cross-encoder.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";

const input = JSON.parse(readFileSync(0, "utf8"));
const tokenizerJSON = JSON.parse(readFileSync(input.tokenizer, "utf8"));
let tokenizerConfig = {};
try {
  tokenizerConfig = JSON.parse(readFileSync(join(dirname(input.tokenizer), "tokenizer_config.json"), "utf8"));
} catch {
  // optional
}
const tok = new Tokenizer(tokenizerJSON, tokenizerConfig);
const model = tokenizerJSON.model ?? {};
const prefix = model.continuing_subword_prefix ?? "##";
const unk = tok.model.unk_token;

// byteOffsets[i] is the UTF-8 byte offset of UTF-16 index i of s.
function byteOffsets(s) {
  const out = new Array(s.length + 1);
  let b = 0;
  for (let i = 0; i < s.length; ) {
    const cp = s.codePointAt(i);
    const units = cp > 0xffff ? 2 : 1;
    out[i] = b;
    if (units === 2) out[i + 1] = b; // never a token boundary
    b += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    i += units;
  }
  out[s.length] = b;
  return out;
}

// normalizeAligned returns the normalized text of s and, for each of its
// UTF-16 units, the [start, end) range of s (in UTF-16 units) it came from.
function normalizeAligned(s) {
  if (tok.normalizer === null) {
    const origin = [];
    for (let i = 0; i < s.length; i++) origin.push([i, i + 1]);
    return { text: s, origin };
  }
  const full = tok.normalizer(s);
  let concat = "";
  const origin = [];
  for (let i = 0; i < s.length; ) {
    const cp = s.codePointAt(i);
    const ch = String.fromCodePoint(cp);
    const piece = tok.normalizer(ch);
    concat += piece;
    for (let k = 0; k < piece.length; k++) origin.push([i, i + ch.length]);
    i += ch.length;
  }
  if (concat !== full && concat.length !== full.length) {
    throw new Error(`normalizer is not character by character on ${JSON.stringify(s)}`);
  }
  // Same length but different characters: context-dependent mappings such as
  // the final sigma; the full text is right, the alignment still holds.
  return { text: full, origin };
}

// splitSections mirrors Tokenizer.encode_text's added-token split, keeping
// positions: returns [{start, end, added}] in UTF-16 units of text.
function splitSections(splitter, text) {
  const parts = splitter.split(text);
  const out = [];
  let pos = 0;
  for (const p of parts) {
    out.push({ start: pos, end: pos + p.length, text: p, added: tok.added_tokens_map.get(p) });
    pos += p.length;
  }
  out.forEach((sec, i) => {
    if (!sec.added) return;
    if (sec.added.lstrip && i > 0 && !out[i - 1].added) {
      const prev = out[i - 1];
      prev.text = prev.text.trimEnd();
      prev.end = prev.start + prev.text.length;
    }
    if (sec.added.rstrip && i < out.length - 1 && !out[i + 1].added) {
      const next = out[i + 1];
      const t = next.text.trimStart();
      next.start = next.end - t.length;
      next.text = t;
    }
  });
  return out;
}

function encodeOne(text) {
  const { ids, tokens: wantTokens } = tok.encode(text, { add_special_tokens: false });
  const toBytes = byteOffsets(text);
  const tokens = [];
  const offsets = [];
  for (const sec of splitSections(tok.splitter_unnormalized, text)) {
    if (sec.text.length === 0) continue;
    if (sec.added) {
      tokens.push(sec.text);
      offsets.push([sec.start, sec.end]);
      continue;
    }
    const { text: normText, origin } = normalizeAligned(sec.text);
    if (normText.length === 0) continue;
    const toOrig = (a, b) => [sec.start + origin[a][0], sec.start + origin[b - 1][1]];
    for (const sub of splitSections(tok.splitter_normalized, normText)) {
      if (sub.text.length === 0) continue;
      if (sub.added) {
        tokens.push(sub.text);
        offsets.push(toOrig(sub.start, sub.end));
        continue;
      }
      const words = tok.pre_tokenizer !== null ? tok.pre_tokenizer(sub.text, { section_index: 0 }) : [sub.text];
      let cursor = 0;
      for (const word of words) {
        const at = sub.text.indexOf(word, cursor);
        if (at < 0) throw new Error(`pre-tokenized word ${JSON.stringify(word)} not found`);
        cursor = at + word.length;
        const w0 = sub.start + at;
        let pos = 0;
        for (const t of tok.model([word])) {
          tokens.push(t);
          if (t === unk) {
            offsets.push(toOrig(w0, w0 + word.length));
            pos = word.length;
            continue;
          }
          const piece = pos > 0 && t.startsWith(prefix) ? t.slice(prefix.length) : t;
          if (!word.startsWith(piece, pos)) {
            throw new Error(`token ${JSON.stringify(t)} not found in word ${JSON.stringify(word)} at ${pos}`);
          }
          offsets.push(toOrig(w0 + pos, w0 + pos + piece.length));
          pos += piece.length;
        }
      }
    }
  }
  if (JSON.stringify(tokens) !== JSON.stringify(wantTokens)) {
    throw new Error(`derived tokens ${JSON.stringify(tokens)} differ from encode()'s ${JSON.stringify(wantTokens)}`);
  }
  const decoded = tok.decoder ? tok.decoder(tokens) : tokens.join(" ");
  return { ids, tokens, decoded, offsets: offsets.map(([a, b]) => [toBytes[a], toBytes[b]]) };
}

const results = input.texts.map((text) => {
  try {
    return encodeOne(text);
  } catch (err) {
    return { error: String(err?.message ?? err) };
  }
});
const pairs = (input.pairs ?? []).map(([a, b]) => {
  const r = tok.encode(a, { text_pair: b, add_special_tokens: true, return_token_type_ids: true });
  return { ids: r.ids, token_type_ids: r.token_type_ids ?? null };
});
process.stdout.write(JSON.stringify({ results, pairs }) + "\n");
