import { h, fill, fmt, bar, errorBox } from './dom.js';
import { api, ApiError } from './api.js';
import { render } from './highlight.js';
import { samples } from './samples.js';

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
  const about = h('p', { class: 'muted' });
  const run = h('button', { type: 'submit', id: 'run', text: 'Run' });
  const out = h('div', { id: 'result', 'aria-live': 'polite' });

  const model = () => models.find((m) => m.name === taskSel.value);
  const onTask = () => {
    const m = model();
    aggField.hidden = m.kind !== 'token-classification';
    second.hidden = m.kind !== 'feature-extraction';
    fill(about, m.description || '', m.random_weights ? h('strong', { text: ' Random weights: its answers mean nothing.' }) : null);
  };
  taskSel.addEventListener('change', onTask);
  sampleSel.addEventListener('change', () => { if (sampleSel.value !== '') text.value = samples[+sampleSel.value].text; });
  onTask();

  const form = h('form', { class: 'card', onsubmit: async (ev) => {
    ev.preventDefault();
    const m = model();
    run.disabled = true;
    fill(out, h('p', { class: 'muted', text: 'Running…' }));
    try {
      const opts = m.kind === 'token-classification' ? { aggregation: agg.value } : undefined;
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
    h('div', { class: 'field' }, h('label', { for: 'sample', text: 'Sample news text' }), sampleSel),
    aggField),
  about,
  h('div', { class: 'field' }, h('label', { for: 'text', text: 'Text' }), text),
  second,
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
  if (Array.isArray(r.labels)) {
    return h('section', { class: 'card' }, h('h2', { text: 'Labels' }),
      h('ul', { class: 'bars', 'data-testid': 'labels' }, r.labels.map((l) => h('li', {},
        h('span', { class: 'bar-label', text: l.label }), bar(l.score), h('span', { class: 'num', text: fmt.pct(l.score) })))));
  }
  return h('section', { class: 'card' }, h('p', { text: 'This kind of result has no view yet; see the raw JSON.' }));
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
