// Tiny DOM helpers: h() builds elements without innerHTML, so text from the
// API is always inserted as text.
//   h('button', { class: 'x', onclick: fn, 'aria-label': 'Close' }, 'Close')
// Attributes starting with "on" become listeners; null/false attributes are
// skipped; children may be strings, nodes, arrays or null.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
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

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

let idSeq = 0;
export function uid(prefix = 'pg') {
  idSeq += 1;
  return `${prefix}-${idSeq}`;
}

// A labelled form control: returns { wrap, input }.
export function field(label, input, hint) {
  if (!input.id) input.id = uid('f');
  const wrap = h('div', { class: 'field' }, h('label', { for: input.id }, label), input);
  if (hint) {
    const hid = uid('hint');
    input.setAttribute('aria-describedby', hid);
    wrap.append(h('div', { class: 'hint', id: hid }, hint));
  }
  return { wrap, input };
}

export function pretty(v) {
  if (v === undefined) return '';
  if (typeof v === 'string') return v;
  try {
    return JSON.stringify(v, null, 2);
  } catch {
    return String(v);
  }
}
