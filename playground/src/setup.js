// Assistant setup pane: pick, create, update and delete assistants; edit
// their name, instructions, model, sampling, response format (a
// json_schema one with its schema object as JSON), built-in tools and
// function definitions (both JSON, validated as you type); upload
// files into the assistant's vector store (file_search) or its
// code_interpreter files, with ingestion status polled until done.
import { request, uploadFile, fileInfo, errorText } from './api.js';
import { h, clear, field } from './dom.js';
import { state, emit } from './state.js';

const NAME_RE = /^[a-zA-Z0-9_-]{1,64}$/;

// Parses the functions editor. Accepts [] / empty, an array of function
// objects ({name, description?, parameters?, strict?}) or of tools
// ({type:'function', function:{...}}). Returns { tools } or { error }.
export function parseFunctions(text) {
  if (!text.trim()) return { tools: [] };
  let v;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return { error: `Not valid JSON: ${e.message}` };
  }
  if (!Array.isArray(v)) v = [v];
  const tools = [];
  const seen = new Set();
  for (let i = 0; i < v.length; i++) {
    const item = v[i];
    const where = `Function ${i + 1}`;
    if (!item || typeof item !== 'object' || Array.isArray(item)) return { error: `${where}: expected an object.` };
    const fn = item.type === 'function' ? item.function : item;
    if (!fn || typeof fn !== 'object') return { error: `${where}: "function" must be an object.` };
    if (typeof fn.name !== 'string' || !NAME_RE.test(fn.name)) {
      return { error: `${where}: "name" must be 1-64 letters, digits, _ or - (got ${JSON.stringify(fn.name ?? null)}).` };
    }
    if (seen.has(fn.name)) return { error: `${where}: the name "${fn.name}" is used twice.` };
    seen.add(fn.name);
    if (fn.description !== undefined && typeof fn.description !== 'string') return { error: `${where} (${fn.name}): "description" must be a string.` };
    if (fn.parameters !== undefined && (typeof fn.parameters !== 'object' || fn.parameters === null || Array.isArray(fn.parameters))) {
      return { error: `${where} (${fn.name}): "parameters" must be a JSON Schema object.` };
    }
    if (fn.parameters && fn.parameters.type !== undefined && fn.parameters.type !== 'object') {
      return { error: `${where} (${fn.name}): "parameters.type" must be "object".` };
    }
    if (fn.strict !== undefined && typeof fn.strict !== 'boolean') return { error: `${where} (${fn.name}): "strict" must be true or false.` };
    const allowed = new Set(['name', 'description', 'parameters', 'strict']);
    const extra = Object.keys(fn).find((k) => !allowed.has(k));
    if (extra) return { error: `${where} (${fn.name}): unknown key "${extra}".` };
    tools.push({ type: 'function', function: fn });
  }
  return { tools };
}

// Parses the json_schema editor: the object OpenAI takes as
// response_format.json_schema ({name, description?, schema?, strict?}).
// Returns { schema } or { error }.
export function parseJsonSchema(text) {
  if (!text.trim()) return { error: 'Enter the schema object, e.g. {"name": "answer", "schema": {"type": "object"}, "strict": true}.' };
  let v;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return { error: `Not valid JSON: ${e.message}` };
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return { error: 'Expected an object with "name" and "schema".' };
  if (typeof v.name !== 'string' || !NAME_RE.test(v.name)) {
    return { error: `"name" must be 1-64 letters, digits, _ or - (got ${JSON.stringify(v.name ?? null)}).` };
  }
  if (v.description !== undefined && typeof v.description !== 'string') return { error: '"description" must be a string.' };
  if (v.schema !== undefined && (typeof v.schema !== 'object' || v.schema === null || Array.isArray(v.schema))) {
    return { error: '"schema" must be a JSON Schema object.' };
  }
  if (v.strict !== undefined && v.strict !== null && typeof v.strict !== 'boolean') return { error: '"strict" must be true or false.' };
  const allowed = new Set(['name', 'description', 'schema', 'strict']);
  const extra = Object.keys(v).find((k) => !allowed.has(k));
  if (extra) return { error: `Unknown key "${extra}" (expected name, description, schema, strict).` };
  return { schema: v };
}

export function createSetup(root) {
  const select = h('select', { id: 'assistant-select' });
  const newBtn = h('button', { type: 'button', class: 'secondary', onclick: () => edit(null) }, 'New assistant');
  const name = h('input', { type: 'text', maxlength: 256 });
  const instructions = h('textarea', { rows: 5, maxlength: 256000 });
  const model = h('select', {});
  const temperature = h('input', { type: 'number', min: 0, max: 2, step: 0.01, placeholder: '1' });
  const topP = h('input', { type: 'number', min: 0, max: 1, step: 0.01, placeholder: '1' });
  const format = h('select', {},
    h('option', { value: 'auto' }, 'auto'), h('option', { value: 'text' }, 'text'), h('option', { value: 'json_object' }, 'json_object'),
    h('option', { value: 'json_schema' }, 'json_schema'));
  const schema = h('textarea', { id: 'json-schema', rows: 6, spellcheck: 'false', class: 'mono', 'aria-describedby': 'json-schema-error',
    placeholder: '{"name": "answer", "schema": {"type": "object", "properties": {}}, "strict": true}' });
  const schemaErr = h('div', { class: 'field-error', id: 'json-schema-error', role: 'status', 'aria-live': 'polite' });
  const schemaBox = h('div', { class: 'field', hidden: true },
    h('label', { for: 'json-schema' }, 'JSON schema (name, schema, strict)'), schema, schemaErr);
  const ci = h('input', { type: 'checkbox', id: 'tool-ci' });
  const fs = h('input', { type: 'checkbox', id: 'tool-fs' });
  const fns = h('textarea', { rows: 6, spellcheck: 'false', class: 'mono', placeholder: '[{"name": "get_weather", "description": "...", "parameters": {"type": "object", "properties": {}}}]' });
  const fnErr = h('div', { class: 'field-error', id: 'functions-error', role: 'status', 'aria-live': 'polite' });
  const saveBtn = h('button', { type: 'submit' }, 'Save');
  const delBtn = h('button', { type: 'button', class: 'danger', onclick: () => remove() }, 'Delete');
  const status = h('div', { class: 'status', role: 'status', 'aria-live': 'polite' });

  const fsFiles = h('ul', { class: 'files', id: 'fs-files' });
  const ciFiles = h('ul', { class: 'files', id: 'ci-files' });
  const fsInput = h('input', { type: 'file', multiple: true, id: 'fs-upload' });
  const ciInput = h('input', { type: 'file', multiple: true, id: 'ci-upload' });
  const fsBox = h('div', { class: 'filebox' },
    h('label', { for: 'fs-upload' }, 'Upload to file search (vector store)'), fsInput, fsFiles);
  const ciBox = h('div', { class: 'filebox' },
    h('label', { for: 'ci-upload' }, 'Upload code interpreter files'), ciInput, ciFiles);

  fns.setAttribute('aria-describedby', 'functions-error');
  const form = h('form', { class: 'setup-form', 'aria-label': 'Assistant settings' },
    field('Name', name).wrap,
    field('Instructions', instructions).wrap,
    field('Model', model).wrap,
    h('div', { class: 'row2' }, field('Temperature', temperature).wrap, field('Top P', topP).wrap),
    field('Response format', format).wrap,
    schemaBox,
    h('fieldset', { class: 'tools' }, h('legend', {}, 'Tools'),
      h('label', { for: 'tool-ci', class: 'toggle' }, ci, ' Code interpreter'),
      ciBox,
      h('label', { for: 'tool-fs', class: 'toggle' }, fs, ' File search'),
      fsBox),
    h('div', { class: 'field' }, h('label', { for: 'functions' }, 'Functions (JSON array)'), Object.assign(fns, { id: 'functions' }), fnErr),
    h('div', { class: 'row' }, saveBtn, delBtn),
    status);
  root.append(
    h('div', { class: 'row' }, h('label', { for: 'assistant-select', class: 'inline' }, 'Assistant'), select, newBtn),
    form);

  select.addEventListener('change', () => {
    const a = state.assistants.find((x) => x.id === select.value);
    edit(a || null);
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    save();
  });
  const validateSchema = () => {
    const on = format.value === 'json_schema';
    schemaBox.hidden = !on;
    const r = on ? parseJsonSchema(schema.value) : {};
    schemaErr.textContent = r.error || '';
    schema.setAttribute('aria-invalid', r.error ? 'true' : 'false');
    return r;
  };
  const validate = () => {
    const r = parseFunctions(fns.value);
    fnErr.textContent = r.error || '';
    fns.setAttribute('aria-invalid', r.error ? 'true' : 'false');
    const rs = validateSchema();
    saveBtn.disabled = !!(r.error || rs.error);
    return r;
  };
  fns.addEventListener('input', validate);
  schema.addEventListener('input', validate);
  format.addEventListener('change', validate);
  const syncBoxes = () => {
    ciBox.hidden = !ci.checked;
    fsBox.hidden = !fs.checked;
  };
  ci.addEventListener('change', syncBoxes);
  fs.addEventListener('change', syncBoxes);
  fsInput.addEventListener('change', () => uploadTo('file_search', fsInput));
  ciInput.addEventListener('change', () => uploadTo('code_interpreter', ciInput));

  function say(text) {
    status.textContent = text;
  }

  function fillModels() {
    clear(model);
    const ids = [...state.models];
    const cur = state.assistant?.model;
    if (cur && !ids.includes(cur)) ids.unshift(cur);
    for (const id of ids) model.append(h('option', { value: id }, id));
    if (cur) model.value = cur;
  }

  function fillSelect() {
    clear(select);
    select.append(h('option', { value: '' }, '(new assistant)'));
    for (const a of state.assistants) select.append(h('option', { value: a.id }, `${a.name || '(unnamed)'} \u2013 ${a.id}`));
    select.value = state.assistant?.id || '';
  }

  function edit(a) {
    state.assistant = a;
    fillSelect();
    fillModels();
    name.value = a?.name || '';
    instructions.value = a?.instructions || '';
    temperature.value = a?.temperature ?? '';
    topP.value = a?.top_p ?? '';
    const rf = a?.response_format;
    format.value = !rf || rf === 'auto' ? 'auto' : rf.type || 'auto';
    schema.value = rf?.type === 'json_schema' && rf.json_schema ? JSON.stringify(rf.json_schema, null, 2) : '';
    const tools = a?.tools || [];
    ci.checked = tools.some((t) => t.type === 'code_interpreter');
    fs.checked = tools.some((t) => t.type === 'file_search');
    const f = tools.filter((t) => t.type === 'function').map((t) => t.function);
    fns.value = f.length ? JSON.stringify(f, null, 2) : '';
    delBtn.disabled = !a;
    validate();
    syncBoxes();
    say(a ? `Editing ${a.id}` : 'New assistant: fill in and Save.');
    refreshFiles();
    emit('assistant', a);
  }

  function body() {
    const r = validate();
    if (r.error) throw new Error(`Functions: ${r.error}`);
    const rs = validateSchema();
    if (rs.error) throw new Error(`JSON schema: ${rs.error}`);
    const tools = [];
    if (ci.checked) tools.push({ type: 'code_interpreter' });
    if (fs.checked) tools.push({ type: 'file_search' });
    tools.push(...r.tools);
    const b = { name: name.value || null, instructions: instructions.value || null, model: model.value, tools };
    const num = (el, lo, hi, label) => {
      if (el.value === '') return undefined;
      const v = Number(el.value);
      if (!Number.isFinite(v) || v < lo || v > hi) throw new Error(`${label} must be between ${lo} and ${hi}.`);
      return v;
    };
    const t = num(temperature, 0, 2, 'Temperature');
    const p = num(topP, 0, 1, 'Top P');
    if (t !== undefined) b.temperature = t;
    if (p !== undefined) b.top_p = p;
    if (format.value === 'auto') b.response_format = 'auto';
    else if (format.value === 'json_schema') b.response_format = { type: 'json_schema', json_schema: rs.schema };
    else b.response_format = { type: format.value };
    const tr = state.assistant?.tool_resources;
    if (tr) b.tool_resources = tr;
    return b;
  }

  async function save() {
    let b;
    try {
      b = body();
    } catch (e) {
      say(e.message);
      emit('error', e.message);
      return null;
    }
    if (!b.model) {
      say('Pick a model first.');
      emit('error', 'Pick a model first (the server lists none: configure ASSISTD_MODELS or an upstream).');
      return null;
    }
    saveBtn.disabled = true;
    try {
      const a = state.assistant
        ? await request('POST', `/assistants/${state.assistant.id}`, { json: b })
        : await request('POST', '/assistants', { json: b });
      const i = state.assistants.findIndex((x) => x.id === a.id);
      if (i >= 0) state.assistants[i] = a;
      else state.assistants.unshift(a);
      edit(a);
      say(`Saved ${a.id}`);
      emit('clear-error');
      return a;
    } catch (e) {
      say(`Not saved: ${errorText(e)}`);
      emit('error', e, 'Saving the assistant');
      return null;
    } finally {
      saveBtn.disabled = !!validate().error;
    }
  }

  async function remove() {
    const a = state.assistant;
    if (!a || !window.confirm(`Delete ${a.name || a.id}?`)) return;
    try {
      await request('DELETE', `/assistants/${a.id}`);
      state.assistants = state.assistants.filter((x) => x.id !== a.id);
      edit(state.assistants[0] || null);
      say(`Deleted ${a.id}`);
    } catch (e) {
      emit('error', e, 'Deleting the assistant');
    }
  }

  // Saves the assistant's tool_resources after a change.
  async function setResources(tr) {
    const a = await request('POST', `/assistants/${state.assistant.id}`, { json: { tool_resources: tr } });
    const i = state.assistants.findIndex((x) => x.id === a.id);
    if (i >= 0) state.assistants[i] = a;
    state.assistant = a;
    emit('assistant', a);
    return a;
  }

  async function uploadTo(kind, input) {
    const files = [...input.files];
    input.value = '';
    if (!files.length) return;
    try {
      if (!state.assistant && !(await save())) return;
      let tr = structuredClone(state.assistant.tool_resources || {});
      for (const file of files) {
        say(`Uploading ${file.name}\u2026`);
        const f = await uploadFile(file, 'assistants');
        if (kind === 'file_search') {
          let vs = tr.file_search?.vector_store_ids?.[0];
          if (!vs) {
            const created = await request('POST', '/vector_stores', { json: { name: `${state.assistant.name || state.assistant.id} files` } });
            vs = created.id;
            tr.file_search = { vector_store_ids: [vs] };
            tr = (await setResources(tr)).tool_resources || tr;
          }
          await request('POST', `/vector_stores/${vs}/files`, { json: { file_id: f.id } });
        } else {
          const ids = [...(tr.code_interpreter?.file_ids || []), f.id];
          tr.code_interpreter = { file_ids: ids };
          tr = (await setResources(tr)).tool_resources || tr;
        }
      }
      say(`Uploaded ${files.map((f) => f.name).join(', ')}`);
    } catch (e) {
      say(`Upload failed: ${errorText(e)}`);
      emit('error', e, 'Uploading');
    }
    refreshFiles();
  }

  let pollTimer = null;
  async function refreshFiles() {
    clearTimeout(pollTimer);
    const a = state.assistant;
    clear(fsFiles);
    clear(ciFiles);
    if (!a) return;
    const tr = a.tool_resources || {};
    for (const id of tr.code_interpreter?.file_ids || []) {
      const li = h('li', {}, h('span', { class: 'fname' }, id));
      li.append(h('button', { type: 'button', class: 'link', 'aria-label': `Remove ${id} from code interpreter files`, onclick: async () => {
        try {
          await setResources({ ...tr, code_interpreter: { file_ids: tr.code_interpreter.file_ids.filter((x) => x !== id) } });
        } catch (e) { emit('error', e, 'Removing the file'); }
        refreshFiles();
      } }, 'Remove'));
      ciFiles.append(li);
      fileInfo(id).then((f) => { li.querySelector('.fname').textContent = `${f.filename} (${f.bytes} bytes)`; }).catch(() => {});
    }
    const vs = tr.file_search?.vector_store_ids?.[0];
    if (!vs) return;
    try {
      const list = await request('GET', `/vector_stores/${vs}/files`, { query: { limit: 100 } });
      if (state.assistant !== a) return;
      clear(fsFiles);
      let busy = false;
      for (const vf of list.data) {
        if (vf.status === 'in_progress') busy = true;
        const st = h('span', { class: `badge st-${vf.status}` }, vf.status === 'in_progress' ? 'indexing\u2026' : vf.status);
        const li = h('li', { dataset: { fileId: vf.id, status: vf.status } }, h('span', { class: 'fname' }, vf.id), ' ', st);
        if (vf.last_error) li.append(h('div', { class: 'field-error' }, `${vf.last_error.code}: ${vf.last_error.message}`));
        li.append(h('button', { type: 'button', class: 'link', 'aria-label': `Remove ${vf.id} from the vector store`, onclick: async () => {
          try { await request('DELETE', `/vector_stores/${vs}/files/${vf.id}`); } catch (e) { emit('error', e, 'Removing the file'); }
          refreshFiles();
        } }, 'Remove'));
        fsFiles.append(li);
        fileInfo(vf.id).then((f) => { li.querySelector('.fname').textContent = f.filename; }).catch(() => {});
      }
      if (!list.data.length) fsFiles.append(h('li', { class: 'muted' }, `Vector store ${vs} is empty.`));
      if (busy) pollTimer = setTimeout(refreshFiles, 600);
    } catch (e) {
      emit('error', e, 'Listing the vector store');
    }
  }

  async function load() {
    const [models, assistants] = await Promise.all([
      request('GET', '/models'),
      request('GET', '/assistants', { query: { limit: 100, order: 'desc' } }),
    ]);
    state.models = (models.data || []).map((m) => m.id);
    state.assistants = assistants.data || [];
    const keep = state.assistant && state.assistants.find((a) => a.id === state.assistant.id);
    edit(keep || state.assistants[0] || null);
  }

  return { load, edit, save, refreshFiles };
}
