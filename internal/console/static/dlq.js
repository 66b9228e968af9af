import { h, fill, fmt, toast, errorBox } from './dom.js';
import { api, ApiError } from './api.js';

// MAX_PAGES bounds how many pages of 500 dead letters the console reads.
const MAX_PAGES = 20;

// deadLetters reads the tenant's dead letters, oldest first, up to
// MAX_PAGES pages; truncated says there were more.
export async function deadLetters(signal) {
  const all = [];
  let after = 0;
  for (let i = 0; i < MAX_PAGES; i++) {
    const page = await api('GET', `/v1/dlq?limit=500${after ? '&after=' + after : ''}`, { signal });
    all.push(...page.dead_letters);
    if (!page.next) return { entries: all, truncated: false };
    after = page.next;
  }
  return { entries: all, truncated: true };
}

// backfillOf names the backfill a dead letter's job belongs to: backfill
// documents' job ids are "<backfill id>:<document id>".
export const backfillOf = (e) => (e.job_id.startsWith('bf_') && e.job_id.includes(':') ? e.job_id.slice(0, e.job_id.indexOf(':')) : '');

export async function dlqPage(main, signal) {
  const taskSel = h('select', { id: 'dlq-task' });
  const codeSel = h('select', { id: 'dlq-code' });
  const list = h('div', { 'aria-live': 'polite' });
  const detail = h('div');
  const replaySel = h('button', { type: 'button', id: 'replay-selected', text: 'Replay selected' });
  const replayAll = h('button', { type: 'button', id: 'replay-all', text: 'Replay all matching' });
  fill(main, h('section', { class: 'card' }, h('h1', { text: 'Dead letters' }),
    h('p', { class: 'muted', text: 'Jobs that could not succeed. Replaying one sends it back to its queue under a fresh message id. Backfill documents are counted by their backfill and are not replayed one by one.' }),
    h('div', { class: 'row' },
      h('div', { class: 'field' }, h('label', { for: 'dlq-task', text: 'Task' }), taskSel),
      h('div', { class: 'field' }, h('label', { for: 'dlq-code', text: 'Reason' }), codeSel),
      h('div', { class: 'field actions' }, replaySel, replayAll)),
    list), detail);

  let entries = [];
  const selected = new Set();
  const matching = () => entries.filter((e) => (!taskSel.value || e.task === taskSel.value) && (!codeSel.value || e.code === codeSel.value));
  const options = (sel, values, label) => {
    const keep = sel.value;
    fill(sel, h('option', { value: '', text: `All ${label}` }), [...values].sort().map((v) => h('option', { value: v, text: v })));
    sel.value = values.has(keep) ? keep : '';
  };
  const draw = (truncated) => {
    const shown = matching();
    const rows = shown.map((e) => {
      const bf = backfillOf(e);
      const box = h('input', { type: 'checkbox', 'aria-label': 'select ' + e.job_id, disabled: !!bf });
      box.checked = selected.has(e.job_id);
      box.addEventListener('change', () => { if (box.checked) selected.add(e.job_id); else selected.delete(e.job_id); });
      return h('tr', { 'data-job': e.job_id },
        h('td', {}, box),
        h('td', {}, h('button', { type: 'button', class: 'link mono', text: e.job_id, onclick: () => inspect(e, detail, signal) })),
        h('td', { text: e.task }), h('td', {}, h('code', { text: e.code })), h('td', { class: 'reason', text: e.reason }),
        h('td', { class: 'num', text: e.attempts }), h('td', { text: fmt.time(e.dead_at) }),
        h('td', {}, bf ? h('span', { class: 'muted', text: 'backfill ' + bf }) : h('button', { type: 'button', class: 'replay', text: 'Replay', onclick: () => replay([e]) })));
    });
    fill(list, h('p', { class: 'muted', text: `${shown.length} of ${entries.length} dead letters${truncated ? ' (only the oldest ' + entries.length + ' are read)' : ''}` }),
      h('div', { class: 'scroll' }, h('table', { 'data-testid': 'dlq' },
        h('thead', {}, h('tr', {}, ['', 'Job', 'Task', 'Code', 'Reason', 'Attempts', 'Dead at', ''].map((c) => h('th', { scope: 'col', text: c })))),
        h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 8, text: 'No dead letters match.' }))))));
  };
  const load = async () => {
    const got = await deadLetters(signal);
    entries = got.entries;
    options(taskSel, new Set(entries.map((e) => e.task)), 'tasks');
    options(codeSel, new Set(entries.map((e) => e.code)), 'reasons');
    draw(got.truncated);
  };
  const replay = async (es) => {
    es = es.filter((e) => !backfillOf(e));
    if (es.length > 1 && !confirm(`Replay ${es.length} dead jobs?`)) return;
    let ok = 0;
    const failed = [];
    for (const e of es) {
      try {
        await api('POST', `/v1/dlq/${encodeURIComponent(e.job_id)}/replay`, { signal });
        ok++;
        selected.delete(e.job_id);
      } catch (err) {
        if (err.name === 'AbortError') return;
        failed.push(`${e.job_id}: ${err instanceof ApiError ? err.code : err.message}`);
      }
    }
    toast(`Replayed ${ok} of ${es.length}${failed.length ? '; ' + failed.slice(0, 3).join('; ') : ''}`, failed.length > 0);
    await load();
  };
  taskSel.addEventListener('change', () => draw());
  codeSel.addEventListener('change', () => draw());
  replaySel.addEventListener('click', () => replay(entries.filter((e) => selected.has(e.job_id))));
  replayAll.addEventListener('click', () => replay(matching()));
  await load();
}

async function inspect(e, detail, signal) {
  const pre = h('pre', { class: 'json' });
  pre.textContent = JSON.stringify(e, null, 2);
  const rec = h('div');
  fill(detail, h('section', { class: 'card', 'data-testid': 'dlq-detail' }, h('h2', {}, 'Dead letter ', h('code', { text: e.job_id })), pre,
    h('h3', { text: 'Job record' }), rec));
  detail.scrollIntoView({ block: 'nearest' });
  if (backfillOf(e)) { fill(rec, h('p', { class: 'muted', text: 'Backfill documents have no job record.' })); return; }
  try {
    const r = await api('GET', '/v1/jobs/' + encodeURIComponent(e.job_id), { signal });
    const p = h('pre', { class: 'json' });
    p.textContent = JSON.stringify(r, null, 2);
    fill(rec, p);
  } catch (err) {
    fill(rec, errorBox(err));
  }
}
