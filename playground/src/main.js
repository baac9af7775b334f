// The playground page: a header (API key, which panes are shown), an error
// banner, and three panes -- assistant setup, chat, logs -- whose order and
// visibility are remembered in localStorage. The page is ready (for the
// first-render measurement) when the setup pane shows the server's models
// and assistants.
import './style.css';
import { getKey, setKey, errorText, request, ApiError } from './api.js';
import { h, clear } from './dom.js';
import { state, on, emit } from './state.js';
import { createSetup } from './setup.js';
import { createChat } from './chat.js';
import { createLogs } from './logs.js';

const LAYOUT_SLOT = 'assistd.playground.layout';
const PANES = [
  { id: 'setup', title: 'Assistant setup' },
  { id: 'chat', title: 'Chat' },
  { id: 'logs', title: 'Logs' },
];

function loadLayout() {
  const def = { order: PANES.map((p) => p.id), hidden: [] };
  try {
    const v = JSON.parse(localStorage.getItem(LAYOUT_SLOT) || 'null');
    if (!v || !Array.isArray(v.order) || !Array.isArray(v.hidden)) return def;
    const order = v.order.filter((id) => def.order.includes(id));
    for (const id of def.order) if (!order.includes(id)) order.push(id);
    return { order, hidden: v.hidden.filter((id) => def.order.includes(id)) };
  } catch {
    return def;
  }
}
const layout = loadLayout();
function saveLayout() {
  localStorage.setItem(LAYOUT_SLOT, JSON.stringify(layout));
}

const app = document.getElementById('app');
const banner = h('div', { class: 'banner', role: 'alert', hidden: true });
const toggles = h('fieldset', { class: 'toggles' }, h('legend', {}, 'Panes'));
const keyBtn = h('button', { type: 'button', class: 'secondary', onclick: () => showKeyForm() }, 'API key');
const header = h('header', { class: 'top' },
  h('h1', {}, 'assistd playground'), toggles, keyBtn);
const panesEl = h('main', { class: 'panes', id: 'panes' });
const keyForm = buildKeyForm();
app.append(header, banner, keyForm, panesEl);

function showError(err, context) {
  clear(banner);
  const text = typeof err === 'string' ? err : errorText(err);
  banner.append(h('span', { class: 'banner-text' }, context ? `${context}: ${text}` : text),
    h('button', { type: 'button', class: 'link', 'aria-label': 'Dismiss error', onclick: () => { banner.hidden = true; } }, 'Dismiss'));
  banner.hidden = false;
  if (err instanceof ApiError && err.status === 401) showKeyForm();
}
on('error', showError);
on('clear-error', () => { banner.hidden = true; });

function buildKeyForm() {
  const input = h('input', { type: 'password', id: 'api-key', autocomplete: 'off', placeholder: 'sk-...' });
  const form = h('form', { class: 'keyform', hidden: true, 'aria-labelledby': 'keyform-title' },
    h('h2', { id: 'keyform-title' }, 'Connect to this assistd'),
    h('label', { for: 'api-key' }, 'API key'),
    input,
    h('p', { class: 'hint' }, 'Kept in this tab\u2019s session storage only and sent as Authorization: Bearer. Leave it empty for a server without keys.'),
    h('div', { class: 'row' },
      h('button', { type: 'submit' }, 'Connect'),
      h('button', { type: 'button', class: 'secondary', onclick: () => { form.hidden = true; } }, 'Cancel')));
  form.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') form.hidden = true;
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    setKey(input.value.trim());
    form.hidden = true;
    emit('clear-error');
    emit('key');
  });
  return form;
}
function showKeyForm() {
  keyForm.hidden = false;
  const input = keyForm.querySelector('input');
  input.value = getKey() || '';
  input.focus();
}

// ---- panes ----
const modules = {};
const paneEls = {};
for (const p of PANES) {
  const body = h('div', { class: 'pane-body' });
  const left = h('button', { type: 'button', class: 'icon', 'aria-label': `Move ${p.title} left`, title: 'Move left', onclick: () => move(p.id, -1) }, '\u2190');
  const right = h('button', { type: 'button', class: 'icon', 'aria-label': `Move ${p.title} right`, title: 'Move right', onclick: () => move(p.id, 1) }, '\u2192');
  const hide = h('button', { type: 'button', class: 'icon', 'aria-label': `Hide ${p.title}`, title: 'Hide', onclick: () => setHidden(p.id, true) }, '\u00d7');
  const el = h('section', { class: `pane pane-${p.id}`, id: `pane-${p.id}`, 'aria-labelledby': `pane-${p.id}-title` },
    h('div', { class: 'pane-head' }, h('h2', { id: `pane-${p.id}-title` }, p.title), h('div', { class: 'pane-tools' }, left, right, hide)),
    body);
  paneEls[p.id] = el;
  const cb = h('input', { type: 'checkbox', id: `show-${p.id}`, checked: !layout.hidden.includes(p.id), onchange: (e) => setHidden(p.id, !e.target.checked) });
  toggles.append(h('label', { for: `show-${p.id}`, class: 'toggle' }, cb, ` ${p.title}`));
  modules[p.id] = { body };
}

function applyLayout() {
  for (const id of layout.order) panesEl.append(paneEls[id]);
  for (const p of PANES) {
    paneEls[p.id].hidden = layout.hidden.includes(p.id);
    document.getElementById(`show-${p.id}`).checked = !layout.hidden.includes(p.id);
  }
  panesEl.dataset.order = layout.order.join(',');
}
function move(id, dir) {
  const i = layout.order.indexOf(id);
  const j = i + dir;
  if (j < 0 || j >= layout.order.length) return;
  [layout.order[i], layout.order[j]] = [layout.order[j], layout.order[i]];
  saveLayout();
  applyLayout();
  paneEls[id].querySelector(`[aria-label="Move ${PANES.find((p) => p.id === id).title} ${dir < 0 ? 'left' : 'right'}"]`)?.focus();
}
function setHidden(id, hidden) {
  layout.hidden = layout.hidden.filter((x) => x !== id);
  if (hidden) layout.hidden.push(id);
  saveLayout();
  applyLayout();
}
applyLayout();

const logs = createLogs(modules.logs.body);
const chat = createChat(modules.chat.body, { logs });
const setup = createSetup(modules.setup.body);

async function connect() {
  emit('clear-error');
  try {
    await Promise.all([setup.load(), chat.load()]);
    document.body.dataset.ready = '1';
    if (window.__pgReady === undefined) window.__pgReady = performance.now();
  } catch (e) {
    showError(e, 'Could not load the playground');
  }
}
on('key', connect);

if (getKey() === null) {
  // First visit in this tab: probe whether the server needs a key at all.
  request('GET', '/models').then(() => { setKey(''); connect(); }).catch((e) => {
    if (e instanceof ApiError && e.status === 401) showKeyForm();
    else showError(e, 'Could not reach the API');
  });
} else {
  connect();
}

window.__pg = { state, setup, chat, logs };
