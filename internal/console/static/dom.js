import { ApiError } from './api.js';

// DOM helpers. Every piece of text goes in as a text node: nothing here
// parses HTML, so text a client sent can never become markup or script.

// h creates an element. attrs: "class", "text" (a text node), "on<event>"
// (a listener), anything else an attribute (never "style": use CSSOM).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = String(v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'style') throw new Error('use CSSOM, not style attributes');
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// clear empties el and appends children.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// fmt formats numbers for people.
export const fmt = {
  int: (n) => (n ?? 0).toLocaleString('en-US'),
  ms: (n) => (n == null ? '–' : n < 10 ? n.toFixed(2) + ' ms' : n.toFixed(1) + ' ms'),
  pct: (x) => (x * 100).toFixed(1) + '%',
  secs: (s) => {
    if (s == null) return '–';
    if (s < 60) return s.toFixed(0) + ' s';
    if (s < 3600) return (s / 60).toFixed(1) + ' min';
    return (s / 3600).toFixed(1) + ' h';
  },
  time: (t) => (t ? new Date(t).toLocaleString() : '–'),
};

// bar is a horizontal bar of share x (0..1), sized through CSSOM, which a
// strict style-src allows (style attributes would not be).
export function bar(x, cls = '') {
  const fillEl = h('span', { class: 'bar-fill ' + cls });
  fillEl.style.width = Math.max(0, Math.min(1, x)) * 100 + '%';
  return h('span', { class: 'bar' }, fillEl);
}

let toastTimer;
// toast shows a short message.
export function toast(msg, bad = false) {
  const t = document.getElementById('toast');
  t.textContent = msg;
  t.className = 'toast show' + (bad ? ' bad' : '');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.className = 'toast'; }, 5000);
}

// errorBox shows an API error the way the API words it.
export function errorBox(e) {
  const code = e instanceof ApiError ? e.code : 'error';
  return h('div', { class: 'error', role: 'alert' }, h('strong', { text: code }), ': ', e.message);
}
