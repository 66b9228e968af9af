import { h } from './dom.js';

// segments cuts text at the entities' offsets. The API's start and end are
// code-point offsets into the original text (as Python's str indexes), not
// UTF-16 units: an astral character (an emoji) is one code point but two
// JavaScript string units, so the text is cut as an array of code points.
// Entities are taken in order of start; one that overlaps an earlier one or
// falls outside the text is left out (and reported in skipped).
export function segments(text, entities) {
  const cps = Array.from(text);
  const sorted = [...entities].map((e, i) => ({ e, i })).sort((a, b) => a.e.start - b.e.start || a.i - b.i);
  const out = [];
  const skipped = [];
  let at = 0;
  for (const { e } of sorted) {
    const ok = Number.isInteger(e.start) && Number.isInteger(e.end) && e.start >= at && e.end > e.start && e.end <= cps.length;
    if (!ok) { skipped.push(e); continue; }
    if (e.start > at) out.push({ text: cps.slice(at, e.start).join('') });
    out.push({ text: cps.slice(e.start, e.end).join(''), entity: e });
    at = e.end;
  }
  if (at < cps.length) out.push({ text: cps.slice(at).join('') });
  return { segments: out, skipped };
}

// typeOf names an entity's type: entity_group (aggregated) or the label
// without its B-/I- prefix (aggregation none).
export function typeOf(e) {
  if (e.entity_group) return e.entity_group;
  const l = e.entity || '?';
  return l.replace(/^[BIES]-/, '');
}

// A fixed palette, cycled by type; types are assigned colours in order of
// first appearance so the legend and the text agree.
const PALETTE = 8;

// render builds the highlighted text and its legend. Each entity is a
// <mark> whose text is a text node; type and score are in its title and
// data attributes, never in markup built from strings. The type label after
// each entity is CSS generated content (attr(data-type)), so the
// paragraph's text is exactly the document's text.
export function render(text, entities) {
  const { segments: segs, skipped } = segments(text, entities);
  const colours = new Map();
  const colour = (t) => {
    if (!colours.has(t)) colours.set(t, colours.size % PALETTE);
    return colours.get(t);
  };
  const body = h('p', { class: 'entities', 'data-testid': 'entity-text' });
  for (const s of segs) {
    if (!s.entity) { body.appendChild(document.createTextNode(s.text)); continue; }
    const t = typeOf(s.entity);
    const score = typeof s.entity.score === 'number' ? s.entity.score.toFixed(3) : '?';
    body.appendChild(h('mark', {
      class: 'ent c' + colour(t), title: `${t} · score ${score}`, 'data-type': t,
      'data-start': s.entity.start, 'data-end': s.entity.end, tabindex: 0,
    }, s.text));
  }
  const legend = h('ul', { class: 'legend', 'aria-label': 'Entity types' },
    [...colours.entries()].map(([t, c]) => h('li', {}, h('span', { class: 'swatch c' + c }), t,
      h('span', { class: 'muted', text: ' ' + entities.filter((e) => typeOf(e) === t).length }))));
  return { body, legend, skipped };
}
