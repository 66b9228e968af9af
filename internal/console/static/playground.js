import { h, fill, fmt, bar, errorBox } from './dom.js';
import { api, ApiError } from './api.js';
import { render } from './highlight.js';
import { samples, rerankSample, zeroShotLabels } from './samples.js';

// The stages of a job's latency breakdown (timings_ms), in order.
const STAGES = [['queue', 'queue'], ['batch', 'batch'], ['tokenize', 'tokenize'], ['infer', 'infer'], ['delivery', 'delivery']];

export async function playgroundPage(main, signal) {
  const { models } = await api('GET', '/v1/models', { signal });
  if (!models.length) {
    fill(main, h('section', { class: 'card' }, h('h1', { text: 'Playground' }), h('p', { text: 'No task is served: start a worker.' })));
    return;
  }
  const taskSel = h('select', { id: 'task' }, models.map((m) => h('option', { value: m.name, text: `${m.name} (${m.kind})` })));
  const sampleSel = h('select', { id: 'sample' }, h('option', { value: '', text: 'Pick a sample…' }),
    samples.map((s, i) => h('option', { value: String(i), text: s.name })));
  const text = h('textarea', { id: 'text', rows: 4, spellcheck: 'false' });
  text.value = samples[0].text;
  const text2 = h('textarea', { id: 'text2', rows: 4, spellcheck: 'false' });
  text2.value = samples[1].text;
  const second = h('div', { class: 'field', hidden: true }, h('label', { for: 'text2', text: 'Second text (cosine similarity)' }), text2);
  const agg = h('select', { id: 'aggregation' }, ['simple', 'first', 'average', 'max', 'none'].map((a) => h('option', { value: a, text: a })));
  const aggField = h('div', { class: 'field', hidden: true }, h('label', { for: 'aggregation', text: 'Aggregation' }), agg);
  // Pair tasks: a text-ranking task ranks documents against a query; a
  // zero-shot task scores candidate labels for the text.
  const query = h('input', { type: 'text', id: 'query', spellcheck: 'false' });
  query.value = rerankSample.query;
  const documents = h('textarea', { id: 'documents', rows: 8, spellcheck: 'false' });
  documents.value = rerankSample.documents.join('\n');
  const rankFields = h('div', { hidden: true },
    h('div', { class: 'field' }, h('label', { for: 'query', text: 'Query' }), query),
    h('div', { class: 'field' }, h('label', { for: 'documents', text: 'Documents (one per line)' }), documents));
  const labels = h('input', { type: 'text', id: 'labels', spellcheck: 'false' });
  labels.value = zeroShotLabels;
  const multi = h('input', { type: 'checkbox', id: 'multi-label' });
  const zeroFields = h('div', { class: 'row', hidden: true },
    h('div', { class: 'field' }, h('label', { for: 'labels', text: 'Candidate labels (comma-separated)' }), labels),
    h('div', { class: 'field actions' }, h('label', { class: 'check' }, multi, 'Multi-label (each label scored on its own)')));
  const about = h('p', { class: 'muted' });
  const run = h('button', { type: 'submit', id: 'run', text: 'Run' });
  const out = h('div', { id: 'result', 'aria-live': 'polite' });

  const model = () => models.find((m) => m.name === taskSel.value);
  const onTask = () => {
    const m = model();
    aggField.hidden = m.kind !== 'token-classification';
    second.hidden = m.kind !== 'feature-extraction';
    rankFields.hidden = m.kind !== 'text-ranking';
    zeroFields.hidden = m.kind !== 'zero-shot-classification';
    textField.hidden = sampleField.hidden = m.kind === 'text-ranking';
    fill(about, m.description || '', m.random_weights ? h('strong', { text: ' Random weights: its answers mean nothing.' }) : null);
  };
  const textField = h('div', { class: 'field' }, h('label', { for: 'text', text: 'Text' }), text);
  const sampleField = h('div', { class: 'field' }, h('label', { for: 'sample', text: 'Sample news text' }), sampleSel);
  taskSel.addEventListener('change', onTask);
  sampleSel.addEventListener('change', () => { if (sampleSel.value !== '') text.value = samples[+sampleSel.value].text; });
  onTask();

  const form = h('form', { class: 'card', onsubmit: async (ev) => {
    ev.preventDefault();
    const m = model();
    run.disabled = true;
    fill(out, h('p', { class: 'muted', text: 'Running…' }));
    try {
      if (m.kind === 'text-ranking') {
        const docs = documents.value.split('\n').map((d) => d.trim()).filter(Boolean);
        const t0 = performance.now();
        const resp = await api('POST', '/v1/rerank', { json: { model: m.name, query: query.value, documents: docs }, signal });
        fill(out, ranking(docs, resp), h('p', { class: 'muted', text: `Round trip ${fmt.ms(performance.now() - t0)}.` }), raw(resp));
        return;
      }
      let opts = m.kind === 'token-classification' ? { aggregation: agg.value } : undefined;
      if (m.kind === 'zero-shot-classification') {
        opts = { candidate_labels: labels.value.split(',').map((l) => l.trim()).filter(Boolean), multi_label: multi.checked };
      }
      const t0 = performance.now();
      const rec = await infer(m.name, text.value, opts, signal);
      const wall = performance.now() - t0;
      if (m.kind === 'feature-extraction') {
        const rec2 = await infer(m.name, text2.value, undefined, signal);
        fill(out, similarity(rec, rec2), timings(rec, wall), raw([rec, rec2]));
      } else {
        fill(out, view(m, text.value, rec), timings(rec, wall), raw(rec));
      }
    } catch (e) {
      if (e.name !== 'AbortError') fill(out, errorBox(e));
    } finally {
      run.disabled = false;
    }
  } },
  h('h1', { text: 'Playground' }),
  h('div', { class: 'row' },
    h('div', { class: 'field' }, h('label', { for: 'task', text: 'Task' }), taskSel),
    sampleField,
    aggField),
  about,
  textField,
  second,
  rankFields,
  zeroFields,
  run);
  fill(main, form, out);
}

// infer runs the task synchronously (POST /v1/infer/{task}) and returns
// the job's record; a failed job (422) is shown as its record too.
async function infer(task, text, options, signal) {
  try {
    return await api('POST', '/v1/infer/' + encodeURIComponent(task), { json: options ? { text, options } : { text }, signal });
  } catch (e) {
    if (e instanceof ApiError && e.status === 422 && e.body && e.body.status) return e.body;
    throw e;
  }
}

function view(m, text, rec) {
  if (rec.status !== 'succeeded') return h('div', { class: 'error', role: 'alert' }, `Job ${rec.status}: `, rec.error ? `${rec.error.code}: ${rec.error.message}` : '');
  const r = rec.result || {};
  if (Array.isArray(r.entities)) {
    const { body, legend, skipped } = render(text, r.entities);
    return h('section', { class: 'card' }, h('h2', {}, 'Entities ', h('span', { class: 'muted', text: `(${r.entities.length})` })), legend, body,
      skipped.length ? h('p', { class: 'muted', text: `${skipped.length} overlapping entities not highlighted (see the raw JSON).` }) : null,
      h('p', { class: 'muted', text: 'Hover or focus an entity for its type and score.' }));
  }
  if (Array.isArray(r.labels) && Array.isArray(r.scores)) {
    // Zero-shot: Hugging Face's {sequence, labels, scores}, by score.
    return h('section', { class: 'card' }, h('h2', { text: 'Candidate labels' }),
      h('ul', { class: 'bars', 'data-testid': 'zero-shot' }, r.labels.map((l, i) => h('li', { 'data-label': l },
        h('span', { class: 'bar-label', text: l }), bar(r.scores[i]), h('span', { class: 'num', text: fmt.pct(r.scores[i]) })))));
  }
  if (Array.isArray(r.labels)) {
    return h('section', { class: 'card' }, h('h2', { text: 'Labels' }),
      h('ul', { class: 'bars', 'data-testid': 'labels' }, r.labels.map((l) => h('li', {},
        h('span', { class: 'bar-label', text: l.label }), bar(l.score), h('span', { class: 'num', text: fmt.pct(l.score) })))));
  }
  return h('section', { class: 'card' }, h('p', { text: 'This kind of result has no view yet; see the raw JSON.' }));
}

// ranking shows a rerank's documents by relevance, each with its index in
// the request (results carry indices, not texts: return_documents is off).
function ranking(docs, resp) {
  return h('section', { class: 'card' }, h('h2', {}, 'Ranked documents ', h('span', { class: 'muted', text: `(${resp.results.length})` })),
    h('p', { class: 'muted', text: 'Most relevant first; #n is the document\'s index in the request (its line among the non-empty ones, from 0).' }),
    h('ol', { class: 'ranked', 'data-testid': 'ranking' }, resp.results.map((r) => h('li', { 'data-index': r.index, 'data-score': r.relevance_score },
      h('span', { class: 'num idx', title: 'Index in the request', text: '#' + r.index }),
      h('span', { class: 'doc', text: docs[r.index] ?? '' }),
      bar(r.relevance_score),
      h('span', { class: 'num', text: r.relevance_score.toFixed(4) })))));
}

function cosine(a, b) {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
  return na && nb ? dot / Math.sqrt(na * nb) : 0;
}

function similarity(r1, r2) {
  for (const r of [r1, r2]) if (r.status !== 'succeeded') return view({}, '', r);
  const a = r1.result.embedding, b = r2.result.embedding;
  const c = cosine(a, b);
  return h('section', { class: 'card' }, h('h2', { text: 'Cosine similarity' }),
    h('p', { class: 'big', 'data-testid': 'cosine', text: c.toFixed(4) }), bar((c + 1) / 2),
    h('p', { class: 'muted', text: `${a.length}-dimensional embeddings; −1 opposite, 0 unrelated, 1 the same direction.` }));
}

// timings shows the job's own latency breakdown, as the worker recorded it.
function timings(rec, wall) {
  const t = rec.timings_ms;
  if (!t) return h('p', { class: 'muted', text: `Round trip ${fmt.ms(wall)}; the job carries no timings.` });
  const total = STAGES.reduce((s, [k]) => s + (t[k] || 0), 0) || 1;
  const strip = h('div', { class: 'stack', role: 'img', 'aria-label': 'Latency breakdown' },
    STAGES.map(([k], i) => {
      const seg = h('span', { class: 'seg s' + i, title: `${k} ${fmt.ms(t[k])}` });
      seg.style.width = ((t[k] || 0) / total) * 100 + '%';
      return seg;
    }));
  return h('section', { class: 'card' }, h('h2', { text: 'Latency' }), strip,
    h('dl', { class: 'kv timings', 'data-testid': 'timings' },
      STAGES.map(([k, label], i) => [h('dt', {}, h('span', { class: 'swatch s' + i }), label), h('dd', { class: 'num', text: fmt.ms(t[k]) })]),
      h('dt', { text: 'worker total' }), h('dd', { class: 'num', text: fmt.ms(t.total) }),
      h('dt', { text: 'round trip (this browser)' }), h('dd', { class: 'num', text: fmt.ms(wall) })));
}

function raw(v) {
  const pre = h('pre', { class: 'json', 'data-testid': 'raw-json' });
  pre.textContent = JSON.stringify(v, null, 2);
  return h('details', { class: 'card' }, h('summary', { text: 'Raw JSON' }), pre);
}
