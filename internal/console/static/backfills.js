import { h, fill, fmt, bar, toast, errorBox } from './dom.js';
import { api, call, me, hasScope } from './api.js';
import { upload } from './upload.js';
import { deadLetters, backfillOf } from './dlq.js';

const FINAL = new Set(['completed', 'canceled']);
const DEAD_EVERY = 15000;

export async function backfillsPage(main, signal) {
  const [{ models }, who] = await Promise.all([api('GET', '/v1/models', { signal }), me()]);
  const taskSel = h('select', { id: 'bf-task' }, models.map((m) => h('option', { value: m.name, text: `${m.name} (${m.kind})` })));
  const name = h('input', { id: 'bf-name', type: 'text', maxlength: 200, placeholder: 'archive 2024' });
  const file = h('input', { id: 'bf-file', type: 'file', accept: '.ndjson,.jsonl,.json,.csv,application/x-ndjson,text/csv' });
  const seal = h('input', { id: 'bf-seal', type: 'checkbox', checked: true });
  const picked = h('span', { class: 'muted', text: 'No file chosen' });
  const status = h('div', { id: 'bf-status', 'aria-live': 'polite' });
  const start = h('button', { type: 'submit', id: 'bf-start', text: 'Create and upload', disabled: true });
  let chosen = null;
  const choose = (f) => {
    chosen = f || null;
    start.disabled = !chosen;
    picked.textContent = chosen ? `${chosen.name} (${fmt.int(chosen.size)} bytes)` : 'No file chosen';
  };
  file.addEventListener('change', () => choose(file.files[0]));
  const drop = h('label', { class: 'drop', for: 'bf-file' }, h('strong', { text: 'Drop an NDJSON or CSV file here' }),
    h('span', { class: 'muted', text: ' or choose one. NDJSON lines {"id","text","meta"}; CSV with a header naming id and text. The file is streamed in chunks, never read whole.' }),
    file, picked);
  drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => { ev.preventDefault(); drop.classList.remove('over'); choose(ev.dataTransfer.files[0]); });

  const list = h('div', { 'aria-live': 'polite' });
  const more = h('div');
  const form = h('form', { class: 'card', onsubmit: async (ev) => {
    ev.preventDefault();
    if (!chosen) return;
    start.disabled = true;
    const progress = bar(0);
    const line = h('p', { class: 'muted' });
    fill(status, progress, line);
    try {
      const b = await api('POST', '/v1/backfills', { json: { task: taskSel.value, name: name.value || chosen.name }, signal });
      const t = await upload(b.id, chosen, { signal, onProgress: (p) => {
        progress.firstChild.style.width = (p.bytes / Math.max(chosen.size, 1)) * 100 + '%';
        line.textContent = `${b.id}: ${fmt.int(p.accepted)} accepted, ${fmt.int(p.duplicates)} duplicates, ${fmt.int(p.rejected)} rejected`;
      } });
      if (seal.checked) await api('POST', `/v1/backfills/${b.id}/seal`, { signal });
      fill(status, h('p', { text: `Uploaded to ${b.id}: ${fmt.int(t.accepted)} accepted, ${fmt.int(t.duplicates)} duplicates, ${fmt.int(t.rejected)} rejected.${seal.checked ? ' Sealed.' : ''}` }),
        t.rejectedLines.length ? h('ul', { class: 'rejected' }, t.rejectedLines.map((r) => h('li', {}, `line ${r.line}: `, r.reason))) : null);
      choose(null);
      file.value = '';
      await load();
    } catch (e) {
      if (e.name !== 'AbortError') fill(status, errorBox(e));
    } finally {
      start.disabled = !chosen;
    }
  } },
  h('h1', { text: 'Backfills' }),
  h('div', { class: 'row' },
    h('div', { class: 'field' }, h('label', { for: 'bf-task', text: 'Task' }), taskSel),
    h('div', { class: 'field' }, h('label', { for: 'bf-name', text: 'Name' }), name)),
  drop,
  h('div', { class: 'row' }, h('label', { class: 'check' }, seal, ' Seal when uploaded'), start),
  status);
  fill(main, form, h('section', { class: 'card' }, h('h2', { text: 'Your backfills' }), list, more));

  // Dead letters by reason, per backfill, when the token may read the DLQ.
  const canDLQ = hasScope(who, 'dlq:admin');
  let cursor = '';
  let pages = [''];
  let dead = new Map();
  let deadAt = 0;
  const load = async () => {
    const page = await api('GET', `/v1/backfills?limit=20${cursor ? '&before=' + encodeURIComponent(cursor) : ''}`, { signal });
    // Reading the DLQ costs more than the page: its counts are refreshed
    // every DEAD_EVERY ms, not every time the list is.
    if (canDLQ && page.backfills.some((b) => b.dead > 0) && Date.now() - deadAt > DEAD_EVERY) {
      deadAt = Date.now();
      try {
        const next = new Map();
        for (const e of (await deadLetters(signal)).entries) {
          const id = backfillOf(e);
          if (!id) continue;
          const m = next.get(id) || new Map();
          m.set(e.code, (m.get(e.code) || 0) + 1);
          next.set(id, m);
        }
        dead = next;
      } catch { /* shown again after the next read */ }
    }
    // The list is redrawn every refresh: keep keyboard focus on the same
    // button of the same backfill.
    const focused = document.activeElement;
    const keep = list.contains(focused) ? [focused.closest('[data-backfill]')?.dataset.backfill, focused.textContent] : null;
    fill(list, page.backfills.length ? page.backfills.map((b) => card(b, dead.get(b.id), load, signal)) : h('p', { class: 'muted', text: 'No backfills yet.' }));
    fill(more, h('div', { class: 'row' },
      pages.length > 1 ? h('button', { type: 'button', text: 'Newer', onclick: () => { pages.pop(); cursor = pages[pages.length - 1]; load(); } }) : null,
      page.next ? h('button', { type: 'button', text: 'Older', onclick: () => { cursor = page.next; pages.push(cursor); load(); } }) : null));
    if (keep) {
      const again = [...list.querySelectorAll(`[data-backfill="${CSS.escape(keep[0] || '')}"] button`)].find((b) => b.textContent === keep[1]);
      again?.focus();
    }
  };
  await load();
  const timer = setInterval(() => load().catch((e) => { if (e.name !== 'AbortError') fill(list, errorBox(e)); }), 2000);
  signal.addEventListener('abort', () => clearInterval(timer));
}

function card(b, dead, reload, signal) {
  const done = b.succeeded + b.failed + b.dead + b.canceled;
  const share = b.submitted ? done / b.submitted : FINAL.has(b.state) ? 1 : 0;
  const act = (label, fn) => h('button', { type: 'button', text: label, onclick: async () => {
    try { await fn(); await reload(); } catch (e) { if (e.name !== 'AbortError') toast(e.message, true); }
  } });
  return h('article', { class: 'bf', 'data-backfill': b.id, 'data-state': b.state },
    h('header', {}, h('strong', { text: b.name || b.id }), ' ', h('span', { class: 'chip state-' + b.state, 'data-testid': 'state', text: b.state }),
      h('span', { class: 'muted mono', text: ' ' + b.id + ' · ' + b.task })),
    bar(share, b.state === 'canceled' ? 'bad' : b.state === 'completed' ? 'good' : ''),
    h('p', { class: 'counts' },
      `${fmt.int(done)} / ${fmt.int(b.submitted)} done · ${fmt.int(b.succeeded)} succeeded · ${fmt.int(b.failed)} failed · ${fmt.int(b.dead)} dead · ${fmt.int(b.canceled)} canceled · ${fmt.int(b.reused)} reused`),
    h('p', { class: 'muted' }, `${b.docs_per_s} docs/s · ETA ${b.state === 'completed' || b.state === 'canceled' ? '–' : fmt.secs(b.eta_s)} · created ${fmt.time(b.created_at)}`),
    b.stalled ? h('p', { class: 'error', 'data-testid': 'stalled', text: `Stalled (${b.stalled.reason}) since ${fmt.time(b.stalled.since)}: ${b.stalled.message}` }) : null,
    dead && dead.size ? h('p', { class: 'dead' }, 'Dead letters by reason: ', [...dead.entries()].map(([c, n]) => h('code', { class: 'chip', text: `${c} ×${n}` }))) : null,
    h('div', { class: 'actions' },
      b.state === 'open' ? act('Seal', () => api('POST', `/v1/backfills/${b.id}/seal`, { signal })) : null,
      FINAL.has(b.state) ? null : act('Cancel', () => confirm(`Cancel backfill ${b.id}? Its remaining documents are skipped.`) && api('DELETE', `/v1/backfills/${b.id}`, { signal })),
      done > 0 ? act('Download results', () => download(b, signal)) : null));
}

// download saves the results exported so far (NDJSON), read as a stream
// into a Blob and handed to the browser as a file; the token never goes
// into a URL.
async function download(b, signal) {
  const resp = await call('GET', `/v1/backfills/${b.id}/results?follow=false`, { signal });
  const parts = [];
  const reader = resp.body.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parts.push(value);
  }
  const url = URL.createObjectURL(new Blob(parts, { type: 'application/x-ndjson' }));
  const a = h('a', { href: url, download: `${b.id}.ndjson` });
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
