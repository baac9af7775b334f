// Message text -> safe DOM. marked turns Markdown into HTML (raw HTML in the
// text is escaped, so it reads as written); that HTML is
// parsed into an inert <template> and rebuilt from an allow-list of tags and
// attributes (links only to http(s)/mailto), so neither the model nor a
// document can inject script. Annotations are cut out of the text before
// Markdown sees it and put back as elements afterwards:
//   file_citation -> a numbered [n] button (the caller lists the references)
//   file_path     -> a download link for the generated file
import { marked } from 'marked';
import { h } from './dom.js';

// HTML written in a message ("wrap it in a <span>", or an attack) is shown
// as the text it is, as OpenAI's pages do; the allow-list below is a second
// line of defence for what Markdown itself produces.
const escapeHtml = (t) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
marked.use({ gfm: true, breaks: false, renderer: { html: ({ text }) => escapeHtml(text) } });

const CITE_OPEN = '\uE000';
const CITE_CLOSE = '\uE001';
const FILE_OPEN = '\uE002';
const FILE_CLOSE = '\uE003';
const LINK_PREFIX = '#pgfile=';

const DROP = new Set(['SCRIPT', 'STYLE', 'IFRAME', 'OBJECT', 'EMBED', 'TEMPLATE', 'svg', 'MATH', 'TEXTAREA', 'SELECT', 'NOSCRIPT']);
const KEEP = new Set(['P', 'BR', 'STRONG', 'EM', 'DEL', 'CODE', 'PRE', 'BLOCKQUOTE', 'UL', 'OL', 'LI',
  'H1', 'H2', 'H3', 'H4', 'H5', 'H6', 'A', 'TABLE', 'THEAD', 'TBODY', 'TR', 'TH', 'TD', 'HR', 'B', 'I', 'SUP', 'SUB']);

// A URL that may be a link's href: http(s) or mailto only (never
// javascript:, data: or the like). null otherwise.
export function safeHref(url) {
  return typeof url === 'string' && /^(https?:|mailto:)/i.test(url.trim()) ? url.trim() : null;
}

function cleanAttrs(src, dst) {
  const tag = src.tagName;
  if (tag === 'A') {
    const href = src.getAttribute('href') || '';
    if (href.startsWith(LINK_PREFIX)) {
      dst.dataset.fileId = href.slice(LINK_PREFIX.length);
      dst.setAttribute('href', '#');
      dst.className = 'file-link';
    } else if (safeHref(href)) {
      dst.setAttribute('href', safeHref(href));
      dst.setAttribute('target', '_blank');
      dst.setAttribute('rel', 'noopener noreferrer');
    }
  } else if (tag === 'CODE') {
    const c = src.getAttribute('class') || '';
    if (/^language-[\w+-]+$/.test(c)) dst.className = c;
  } else if (tag === 'TH' || tag === 'TD') {
    const a = src.getAttribute('align');
    if (a && /^(left|right|center)$/.test(a)) dst.setAttribute('align', a);
  } else if (tag === 'OL') {
    const s = src.getAttribute('start');
    if (s && /^\d{1,6}$/.test(s)) dst.setAttribute('start', s);
  }
}

function rebuild(src, dst) {
  for (const n of src.childNodes) {
    if (n.nodeType === Node.TEXT_NODE) {
      dst.append(document.createTextNode(n.data));
    } else if (n.nodeType === Node.ELEMENT_NODE) {
      if (DROP.has(n.tagName) || DROP.has(n.tagName.toUpperCase())) continue;
      if (KEEP.has(n.tagName)) {
        const el = document.createElement(n.tagName.toLowerCase());
        cleanAttrs(n, el);
        rebuild(n, el);
        dst.append(el);
      } else {
        rebuild(n, dst); // unwrap: keep the text, drop the element
      }
    }
  }
}

// Replaces the placeholder characters in text nodes with elements.
function expand(root, makeCite, makeFile) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const hits = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (/[\uE000\uE002]/.test(n.data)) hits.push(n);
  }
  const re = /\uE000(\d+)\uE001|\uE002([^\uE003]*)\uE003/g;
  for (const n of hits) {
    const frag = document.createDocumentFragment();
    let last = 0;
    for (const m of n.data.matchAll(re)) {
      frag.append(n.data.slice(last, m.index));
      frag.append(m[1] !== undefined ? makeCite(Number(m[1])) : makeFile(m[2]));
      last = m.index + m[0].length;
    }
    frag.append(n.data.slice(last));
    n.replaceWith(frag);
  }
}

// text: { value, annotations }. Returns { node, citations } where
// citations[n-1] = { n, annotation } for each numbered reference.
// opts.makeCite(n) and opts.makeFile(fileId) build the inline elements.
export function renderText(text, opts = {}) {
  const cps = Array.from(text.value || '');
  const anns = [...(text.annotations || [])]
    .filter((a) => Number.isInteger(a.start_index) && Number.isInteger(a.end_index) && a.end_index <= cps.length && a.start_index < a.end_index)
    .sort((a, b) => a.start_index - b.start_index);
  // Number citations in reading order; the same marker text shares a number.
  const citations = [];
  const byMarker = new Map();
  const numberOf = new Map();
  for (const a of anns) {
    if (a.type !== 'file_citation') continue;
    const key = a.text || `${a.file_citation?.file_id}@${a.start_index}`;
    if (!byMarker.has(key)) {
      byMarker.set(key, citations.length + 1);
      citations.push({ n: citations.length + 1, annotation: a });
    }
    numberOf.set(a, byMarker.get(key));
  }
  // Replace from the end so earlier indexes stay valid.
  for (const a of [...anns].reverse()) {
    let rep = null;
    if (a.type === 'file_citation') rep = `${CITE_OPEN}${numberOf.get(a)}${CITE_CLOSE}`;
    else if (a.type === 'file_path' && a.file_path?.file_id) {
      const before = cps.slice(Math.max(0, a.start_index - 2), a.start_index).join('');
      rep = before === '](' ? LINK_PREFIX + a.file_path.file_id : `${FILE_OPEN}${a.file_path.file_id}${FILE_CLOSE}`;
    }
    if (rep !== null) cps.splice(a.start_index, a.end_index - a.start_index, rep);
  }
  const html = marked.parse(cps.join(''), { async: false });
  const tpl = document.createElement('template');
  tpl.innerHTML = html;
  const node = h('div', { class: 'md' });
  rebuild(tpl.content, node);
  expand(node, opts.makeCite || ((n) => h('sup', {}, `[${n}]`)), opts.makeFile || ((id) => h('a', { href: '#', class: 'file-link', 'data-file-id': id }, id)));
  return { node, citations };
}

// Streaming text before annotations exist.
export function renderPlain(value) {
  return renderText({ value, annotations: [] }).node;
}
