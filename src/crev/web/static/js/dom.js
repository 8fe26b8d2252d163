// A tiny element builder. Text always goes in as text nodes (never innerHTML), so participant
// names and memos from the ledger cannot inject markup.

/**
 * h('a', {href: '#/x', class: 'btn', dataset: {testid: 'y'}, onclick: fn}, 'text', child, [more])
 * Attribute values null/undefined/false are skipped; `true` sets an empty attribute.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'dataset') Object.assign(el.dataset, value);
    else if (name === 'style' && typeof value === 'object') Object.assign(el.style, value);
    else if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (name === 'class') el.className = value;
    else if (name === 'testid') el.dataset.testid = value;
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces all children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A hash-route link; each path segment is URI-encoded (":" kept readable for lot ids). */
export function route(...segments) {
  return `#/${segments.map((s) => encodeURIComponent(String(s)).replace(/%3A/gi, ':')).join('/')}`;
}

export const link = (href, ...children) => h('a', { href }, ...children);

/** <table> with a header row; `rows` are arrays of cells or prebuilt <tr> elements. */
export function table(headers, rows, attrs = {}) {
  return h('div', { class: 'table-wrap' },
    h('table', attrs,
      h('thead', {}, h('tr', {}, headers.map((x) => (x instanceof Node ? x : h('th', {}, x))))),
      h('tbody', {}, rows.map((r) => (r instanceof Node ? r : h('tr', {}, r.map((c) => (c instanceof Node && c.tagName === 'TD' ? c : h('td', {}, c)))))))));
}

/** A numeric table cell (right-aligned, tabular figures). */
export const num = (...children) => h('td', { class: 'num' }, ...children);
export const numTh = (...children) => h('th', { class: 'num' }, ...children);

/** A term/definition list from [label, value] pairs (value may be a node). */
export function fields(pairs, cls = 'fields') {
  return h('dl', { class: cls }, pairs.filter(Boolean).map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v))));
}
