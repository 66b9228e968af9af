import { h, fill, toast, errorBox } from './dom.js';
import { token, me, forget } from './api.js';
import { signinPage } from './signin.js';
import { playgroundPage } from './playground.js';
import { backfillsPage } from './backfills.js';
import { dlqPage } from './dlq.js';
import { fleetPage } from './fleet.js';

// Pages by the fragment that names them (#/playground). Each takes the
// <main> element and a signal that aborts when the user leaves the page
// (ending its polling), and may return nothing.
const pages = { signin: signinPage, playground: playgroundPage, backfills: backfillsPage, dlq: dlqPage, fleet: fleetPage };

let leave = null;

async function show() {
  const name = (location.hash.match(/^#\/(\w+)/) || [])[1] || (token.get() ? 'playground' : 'signin');
  const page = pages[name] ? name : 'signin';
  if (leave) leave.abort();
  leave = new AbortController();
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.page === page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const main = document.getElementById('main');
  await whoami();
  if (page !== 'signin' && !token.get()) {
    fill(main, h('section', { class: 'card' }, h('h1', { text: 'Sign in first' }),
      h('p', {}, 'This page needs a token. ', h('a', { href: '#/signin', text: 'Sign in' }), '.')));
    return;
  }
  fill(main);
  try {
    await pages[page](main, leave.signal);
  } catch (e) {
    if (e.name === 'AbortError') return;
    main.appendChild(errorBox(e));
  }
}

async function whoami() {
  const who = document.getElementById('who');
  if (!token.get()) { fill(who); return; }
  try {
    const m = await me();
    fill(who, h('span', { class: 'muted', text: 'tenant ' }), h('strong', { text: m.tenant }), ' ',
      h('button', { type: 'button', class: 'link', text: 'Sign out', onclick: signOut }));
  } catch (e) {
    fill(who, h('span', { class: 'bad', text: 'token refused' }));
  }
}

export function signOut() {
  token.clear();
  forget();
  toast('Signed out');
  location.hash = '#/signin';
  show();
}

window.addEventListener('hashchange', show);
window.addEventListener('DOMContentLoaded', show);
if (document.readyState !== 'loading') show();
// The page announces it has run, for the browser test; no other global.
document.documentElement.dataset.ready = '1';
