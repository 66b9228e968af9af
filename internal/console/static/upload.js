import { call } from './api.js';

// records reads a File as a stream of records, one string each with its
// line terminator, without ever holding the whole file: NDJSON records end
// at each newline; CSV records end at a newline outside double quotes (a
// quoted field may span lines). Each record carries the number of lines it
// spans.
export async function* records(file, csv) {
  const reader = file.stream().pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let quoted = false;
  let scanned = 0; // how much of buf was scanned for the record's end
  let lines = 1;
  let fileLine = 1;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let start = 0;
    for (let i = scanned; i < buf.length; i++) {
      const c = buf.charCodeAt(i);
      if (csv && c === 34) quoted = !quoted;
      else if (c === 10) {
        if (quoted) { lines++; continue; }
        yield { text: buf.slice(start, i + 1), lines, fileLine };
        fileLine += lines;
        start = i + 1;
        lines = 1;
      }
    }
    buf = buf.slice(start);
    scanned = buf.length;
  }
  if (buf.length) yield { text: buf.endsWith('\n') ? buf : buf + '\n', lines, fileLine };
}

const CHUNK_BYTES = 512 << 10;
const CHUNK_RECORDS = 2000;

const sleep = (ms, signal) => new Promise((res, rej) => {
  const t = setTimeout(res, ms);
  signal?.addEventListener('abort', () => { clearTimeout(t); rej(new DOMException('aborted', 'AbortError')); });
});

// upload streams file into backfill id in requests of at most about
// CHUNK_BYTES: each request is one POST .../documents (a CSV header is sent
// again with every request). A request stopped by back-pressure (429, 503)
// is resent from the line the API names once its Retry-After has passed,
// so no document is lost or counted twice. onProgress gets
// {bytes, accepted, duplicates, rejected, rejectedLines}; rejected lines
// are numbered as lines of the file.
export async function upload(id, file, { onProgress, signal } = {}) {
  const csv = /\.csv$/i.test(file.name) || file.type === 'text/csv';
  const type = csv ? 'text/csv' : 'application/x-ndjson';
  const tally = { bytes: 0, accepted: 0, duplicates: 0, rejected: 0, rejectedLines: [] };
  let header = null;
  let batch = [];
  let size = 0;
  const send = async () => {
    let recs = batch;
    while (recs.length) {
      const head = header ? [header] : [];
      const body = head.concat(recs).map((r) => r.text).join('');
      const resp = await call('POST', `/v1/backfills/${encodeURIComponent(id)}/documents`, { body, type, signal, raw: true });
      const ans = await resp.json();
      if (ans.accepted === undefined) throw Object.assign(new Error(ans.error?.message || `HTTP ${resp.status}`), { code: ans.error?.code });
      tally.accepted += ans.accepted;
      tally.duplicates += ans.duplicates;
      tally.rejected += ans.rejected_total;
      const starts = [];
      let ln = 1 + (header ? header.lines : 0);
      for (const r of recs) { starts.push(ln); ln += r.lines; }
      for (const r of ans.rejected || []) {
        if (tally.rejectedLines.length >= 100) break;
        let i = 0;
        while (i + 1 < recs.length && starts[i + 1] <= r.line) i++;
        tally.rejectedLines.push({ line: recs[i] ? recs[i].fileLine + (r.line - starts[i]) : r.line, reason: r.reason });
      }
      onProgress?.(tally);
      if (resp.ok) return;
      const retry = resp.status === 429 || resp.status === 503;
      if (!retry || !ans.next_line) throw Object.assign(new Error(ans.error?.message || `HTTP ${resp.status}`), { code: ans.error?.code });
      // next_line counts lines of this request's body, the header included.
      let line = 1 + (header ? header.lines : 0);
      let from = 0;
      while (from < recs.length && line < ans.next_line) { line += recs[from].lines; from++; }
      recs = recs.slice(from);
      const wait = (Number(resp.headers.get('Retry-After')) || ans.error?.retry_after_s || 1) * 1000;
      await sleep(wait, signal);
    }
  };
  for await (const r of records(file, csv)) {
    tally.bytes = Math.min(tally.bytes + r.text.length, file.size);
    if (csv && header === null) { header = r; continue; }
    if (!r.text.trim()) continue;
    batch.push(r);
    size += r.text.length;
    if (size >= CHUNK_BYTES || batch.length >= CHUNK_RECORDS) {
      await send();
      batch = [];
      size = 0;
    }
  }
  await send();
  tally.bytes = file.size;
  onProgress?.(tally);
  return tally;
}
