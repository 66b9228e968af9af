import { h, fill, fmt, errorBox } from './dom.js';
import { api } from './api.js';

const LANES = ['interactive', 'bulk', 'backfill'];

export async function fleetPage(main, signal) {
  const box = h('div', { 'aria-live': 'polite' });
  fill(main, h('section', { class: 'card' }, h('h1', { text: 'Fleet' }),
    h('p', { class: 'muted', text: 'Tasks the fleet serves (those your token may use), with the backlog of each lane across all tenants. Refreshes every 3 s.' }), box));
  const load = async () => {
    try {
      const f = await api('GET', '/v1/fleet', { signal });
      const rows = f.tasks.map((t) => h('tr', {},
        h('th', { scope: 'row' }, h('code', { text: t.name }), t.random_weights ? h('span', { class: 'chip warn', title: 'random weights: answers mean nothing', text: 'benchmark' }) : null),
        h('td', { text: t.kind }), h('td', {}, h('code', { text: t.version })), h('td', { class: 'num', text: fmt.int(t.max_length) }),
        LANES.map((l) => {
          const b = t.lanes[l];
          return h('td', { class: 'num', title: b ? `${b.pending} waiting, ${b.in_flight} in flight, ${b.redelivered} redelivered` : 'no consumer yet' },
            b ? `${fmt.int(b.pending)} / ${fmt.int(b.in_flight)}` : '–');
        })));
      fill(box, f.backlog_error ? h('p', { class: 'error', text: f.backlog_error }) : null,
        h('div', { class: 'scroll' }, h('table', { 'data-testid': 'fleet' },
          h('thead', {}, h('tr', {}, ['Task', 'Kind', 'Version', 'Max tokens', ...LANES.map((l) => l + ' (waiting / in flight)')].map((c) => h('th', { scope: 'col', text: c })))),
          h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 7, text: 'No task is served: start a worker.' }))))),
        h('p', { class: 'muted', text: 'Workers announce their tasks when they start; this API does not list the workers themselves.' }));
    } catch (e) {
      if (e.name !== 'AbortError') fill(box, errorBox(e));
    }
  };
  await load();
  const timer = setInterval(load, 3000);
  signal.addEventListener('abort', () => clearInterval(timer));
}
