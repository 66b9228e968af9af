import { h, fill, fmt, errorBox } from './dom.js';
import { api } from './api.js';

const LANES = ['interactive', 'bulk', 'backfill'];

export async function fleetPage(main, signal) {
  const box = h('div', { 'aria-live': 'polite' });
  fill(main, h('section', { class: 'card' }, h('h1', { text: 'Fleet' }),
    h('p', { class: 'muted', text: 'Tasks the fleet serves (those your token may use), with their live workers and the backlog of each lane across all tenants, then the workers themselves. Refreshes every 3 s.' }), box));
  const load = async () => {
    try {
      const f = await api('GET', '/v1/fleet', { signal });
      const rows = f.tasks.map((t) => h('tr', {},
        h('th', { scope: 'row' }, h('code', { text: t.name }), t.random_weights ? h('span', { class: 'chip warn', title: 'random weights: answers mean nothing', text: 'benchmark' }) : null),
        h('td', { text: t.kind }), h('td', {}, h('code', { text: t.version })), h('td', { class: 'num', text: fmt.int(t.max_length) }),
        h('td', { class: 'num', 'data-testid': 'live-workers', title: t.last_seen ? 'last seen ' + fmt.time(t.last_seen) : 'no worker seen' },
          t.workers.length ? fmt.int(t.workers.length) : h('span', { class: 'chip warn', text: 'none' })),
        h('td', {}, t.breaker === 'closed' ? 'closed' : h('span', { class: 'chip warn', text: t.breaker })),
        LANES.map((l) => {
          const b = t.lanes[l];
          return h('td', { class: 'num', title: b ? `${b.pending} waiting, ${b.in_flight} in flight, ${b.redelivered} redelivered` : 'no consumer yet' },
            b ? `${fmt.int(b.pending)} / ${fmt.int(b.in_flight)}` : '–');
        })));
      fill(box, f.backlog_error ? h('p', { class: 'error', text: f.backlog_error }) : null,
        h('div', { class: 'scroll' }, h('table', { 'data-testid': 'fleet' },
          h('thead', {}, h('tr', {}, ['Task', 'Kind', 'Version', 'Max tokens', 'Workers', 'Breaker', ...LANES.map((l) => l + ' (waiting / in flight)')].map((c) => h('th', { scope: 'col', text: c })))),
          h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 9, text: 'No task is served: start a worker.' }))))),
        h('h2', { text: 'Workers' }),
        h('div', { class: 'scroll' }, h('table', { 'data-testid': 'workers' },
          h('thead', {}, h('tr', {}, ['Worker', 'Host', 'Device', 'Tasks (in flight)', 'Started', 'Last seen'].map((c) => h('th', { scope: 'col', text: c })))),
          h('tbody', {}, f.workers.length ? f.workers.map((w) => h('tr', {},
            h('th', { scope: 'row' }, h('code', { text: w.id })), h('td', { text: w.host }), h('td', { text: w.device }),
            h('td', {}, w.tasks.map((t) => h('code', { class: 'chip', text: `${t.task} ${t.version || ''} (${fmt.int(t.in_flight)})` }))),
            h('td', { text: fmt.time(w.started_at) }), h('td', { text: fmt.time(w.last_seen) })))
            : h('tr', {}, h('td', { colspan: 6, text: 'No live worker: jobs are queued until one starts; synchronous calls answer 503 no_workers.' }))))));
    } catch (e) {
      if (e.name !== 'AbortError') fill(box, errorBox(e));
    }
  };
  await load();
  const timer = setInterval(load, 3000);
  signal.addEventListener('abort', () => clearInterval(timer));
}
