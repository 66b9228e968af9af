import { h, fill, fmt, bar, toast, errorBox } from './dom.js';
import { token, me, forget, api } from './api.js';

export async function signinPage(main) {
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true,
    placeholder: 'eyJhbGciOi…', 'aria-describedby': 'token-help' });
  const out = h('div', { id: 'identity', 'aria-live': 'polite' });
  const form = h('form', { class: 'card', onsubmit: async (ev) => {
    ev.preventDefault();
    const t = input.value.trim();
    if (!t) return;
    try {
      // Checked before it is kept: a refused token is never stored.
      const m = await api('GET', '/v1/me', { tok: t });
      token.set(t);
      forget();
      input.value = '';
      toast('Signed in as tenant ' + m.tenant);
      // Stay here to show who the token is.
      if (location.hash !== '#/signin') location.hash = '#/signin';
      else window.dispatchEvent(new HashChangeEvent('hashchange'));
    } catch (e) {
      fill(out, errorBox(e));
    }
  } },
  h('h1', { text: 'Sign in' }),
  h('label', { for: 'token', text: 'API token' }), input,
  h('p', { id: 'token-help', class: 'muted', text: 'Paste a token from `jetinferctl token issue`. It is kept in this tab only (sessionStorage), sent in the Authorization header, and never put in a URL.' }),
  h('button', { type: 'submit', text: 'Sign in' }));
  fill(main, form, out);
  if (token.get()) {
    try {
      identity(out, await me(true));
    } catch (e) {
      fill(out, errorBox(e));
    }
  }
}

function identity(out, m) {
  const q = m.quota;
  let quota = h('p', { class: 'muted', text: 'This ingest does not check tenants: no quota.' });
  if (q && q.daily_limit > 0) {
    quota = h('div', {}, h('p', {}, `${fmt.int(q.used_today)} of ${fmt.int(q.daily_limit)} documents used today`),
      bar(q.used_today / q.daily_limit, q.used_today >= q.daily_limit ? 'bad' : ''),
      h('p', { class: 'muted', text: 'Resets ' + fmt.time(q.resets_at) }));
  } else if (q) {
    quota = h('p', { text: 'No daily quota (unlimited).' });
  }
  fill(out, h('section', { class: 'card', 'data-testid': 'identity' },
    h('h2', { text: 'Signed in' }),
    h('dl', { class: 'kv' },
      h('dt', { text: 'Tenant' }), h('dd', { 'data-testid': 'tenant', text: m.tenant }),
      h('dt', { text: 'Scopes' }), h('dd', {}, m.scopes.length ? m.scopes.map((s) => h('code', { class: 'chip', text: s })) : 'none'),
      h('dt', { text: 'Tasks' }), h('dd', { text: m.tasks && m.tasks.length ? m.tasks.join(', ') : 'all served tasks' }),
      h('dt', { text: 'Expires' }), h('dd', { text: fmt.time(m.expires_at) })),
    h('h3', { text: 'Quota today' }), quota));
}
