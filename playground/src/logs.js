// Logs pane: every API call the page made (method, path, status, duration,
// expandable request and response JSON), and for every run its status,
// token usage and steps -- code interpreter input and outputs, file_search
// queries (assistd's include[] extension) and results with scores and quoted
// text, function calls with arguments and outputs -- updated live from the
// stream's step events and completed from GET .../steps (with both include[]
// values, api.js STEP_INCLUDE) once the run ends.
import { onLog, fileBlobUrl } from './api.js';
import { h, clear, pretty } from './dom.js';
import { throttled } from './state.js';

const MAX_CALLS = 300;

export function createLogs(root) {
  const runsEl = h('div', { class: 'runs', id: 'log-runs' });
  const callsEl = h('ol', { class: 'calls', id: 'log-calls', reversed: true });
  const clearBtn = h('button', { type: 'button', class: 'secondary', onclick: () => { clear(runsEl); clear(callsEl); runs.clear(); calls.clear(); } }, 'Clear logs');
  root.append(
    h('div', { class: 'row' }, clearBtn),
    h('h3', {}, 'Runs'), runsEl,
    h('h3', {}, 'API calls'), callsEl);

  // ---- API calls ----
  const calls = new Map();
  onLog((e) => {
    let c = calls.get(e.id);
    if (!c) {
      const summary = h('summary', {});
      const bodyEl = h('div', { class: 'call-body' });
      const li = h('li', { class: 'call' }, h('details', {}, summary, bodyEl));
      c = { li, summary, bodyEl };
      calls.set(e.id, c);
      callsEl.prepend(li);
      while (calls.size > MAX_CALLS) {
        const [first] = calls.keys();
        calls.get(first).li.remove();
        calls.delete(first);
      }
    }
    clear(c.summary);
    const cls = e.pending ? 'pending' : e.status >= 400 || e.status === 0 ? 'bad' : 'ok';
    c.summary.append(
      h('span', { class: `code ${cls}` }, e.pending ? '\u2026' : String(e.status)), ' ',
      h('span', { class: 'ms' }, e.ms === null ? '' : `${Math.round(e.ms)} ms`), ' ',
      h('span', { class: 'method' }, e.method), ' ',
      h('span', { class: 'path' }, `/v1${e.path}`));
    c.li.dataset.status = e.status ?? '';
    clear(c.bodyEl);
    if (e.request !== undefined) c.bodyEl.append(h('div', { class: 'muted' }, 'Request'), h('pre', { class: 'json' }, pretty(e.request)));
    if (e.response !== undefined) c.bodyEl.append(h('div', { class: 'muted' }, 'Response'), h('pre', { class: 'json' }, pretty(e.response)));
  });

  // ---- runs ----
  const runs = new Map(); // run id -> { run, steps: Map, el, render }

  function entry(runId) {
    let r = runs.get(runId);
    if (!r) {
      const el = h('details', { class: 'run', open: true, dataset: { runId } });
      r = { run: { id: runId }, steps: new Map(), el };
      r.render = throttled(() => renderRun(r));
      runs.set(runId, r);
      runsEl.prepend(el);
      // Older runs fold up so the newest stays in view.
      for (const other of runs.values()) if (other !== r) other.el.open = false;
    }
    return r;
  }

  function run(obj) {
    const r = entry(obj.id);
    r.run = obj;
    r.render();
  }

  // Merges a step delta into the step we hold.
  function mergeDelta(step, delta) {
    const calls = delta?.step_details?.tool_calls || [];
    if (!calls.length) return;
    step.step_details = step.step_details || { type: 'tool_calls', tool_calls: [] };
    const list = step.step_details.tool_calls || (step.step_details.tool_calls = []);
    for (const d of calls) {
      const t = list[d.index] || (list[d.index] = { id: d.id, type: d.type });
      if (d.id) t.id = d.id;
      if (d.type === 'code_interpreter') {
        const ci = t.code_interpreter || (t.code_interpreter = { input: '', outputs: [] });
        if (d.code_interpreter?.input) ci.input += d.code_interpreter.input;
        for (const o of d.code_interpreter?.outputs || []) ci.outputs[o.index ?? ci.outputs.length] = o;
      } else if (d.type === 'function') {
        const f = t.function || (t.function = { name: '', arguments: '', output: null });
        if (d.function?.name) f.name = d.function.name;
        if (d.function?.arguments) f.arguments += d.function.arguments;
        if (d.function?.output != null) f.output = d.function.output;
      } else if (d.type === 'file_search') {
        t.file_search = { ...(t.file_search || {}), ...(d.file_search || {}) };
      }
    }
  }

  function stepEvent(event, d) {
    if (event === 'thread.run.step.delta') {
      for (const r of runs.values()) {
        const st = r.steps.get(d.id);
        if (st) {
          mergeDelta(st, d.delta);
          r.render();
          return;
        }
      }
      return;
    }
    const r = entry(d.run_id);
    const old = r.steps.get(d.id);
    // A completed step replaces what the deltas built; keep content we
    // fetched with include[] if the event lacks it.
    r.steps.set(d.id, old && event === 'thread.run.step.created' ? old : d);
    r.render();
  }

  function steps(runId, list) {
    const r = entry(runId);
    for (const st of list) r.steps.set(st.id, st);
    r.render();
  }

  function renderRun(r) {
    const { run: o } = r;
    clear(r.el);
    const u = o.usage;
    r.el.append(h('summary', {},
      h('code', {}, o.id), ' ', h('span', { class: `badge st-${o.status}` }, o.status || '\u2026'),
      u ? h('span', { class: 'usage' }, ` tokens: ${u.prompt_tokens} prompt + ${u.completion_tokens} completion = ${u.total_tokens}`) : null));
    const meta = [];
    if (o.model) meta.push(`model ${o.model}`);
    if (o.assistant_id) meta.push(`assistant ${o.assistant_id}`);
    if (meta.length) r.el.append(h('div', { class: 'muted' }, meta.join(' \u00b7 ')));
    if (o.last_error) r.el.append(h('div', { class: 'field-error' }, `${o.last_error.code}: ${o.last_error.message}`));
    if (o.incomplete_details) r.el.append(h('div', { class: 'muted' }, `incomplete: ${o.incomplete_details.reason}`));
    const ol = h('ol', { class: 'steps' });
    const sorted = [...r.steps.values()].sort((a, b) => (a.created_at || 0) - (b.created_at || 0));
    for (const st of sorted) ol.append(renderStep(st));
    r.el.append(ol);
  }

  function renderStep(st) {
    const li = h('li', { class: 'step', dataset: { stepId: st.id, type: st.type } },
      h('div', { class: 'step-head' }, h('strong', {}, st.type === 'tool_calls' ? 'Tool calls' : 'Message'), ' ',
        h('span', { class: `badge st-${st.status}` }, st.status || ''),
        st.usage ? h('span', { class: 'usage' }, ` ${st.usage.total_tokens} tokens`) : null));
    const sd = st.step_details || {};
    if (sd.type === 'message_creation') li.append(h('div', { class: 'muted' }, `message ${sd.message_creation?.message_id || ''}`));
    for (const tc of sd.tool_calls || []) {
      if (!tc) continue;
      if (tc.type === 'code_interpreter') {
        const ci = tc.code_interpreter || {};
        const box = h('div', { class: 'tool tool-ci' }, h('div', { class: 'tool-name' }, 'Code interpreter'),
          h('div', { class: 'muted' }, 'Input'), h('pre', { class: 'code' }, ci.input || ''));
        for (const out of (ci.outputs || []).filter(Boolean)) {
          if (out.type === 'logs') box.append(h('div', { class: 'muted' }, 'Output'), h('pre', { class: 'code out' }, out.logs));
          else if (out.type === 'image') {
            const img = h('img', { alt: 'Code interpreter output image', class: 'gen-image small' });
            fileBlobUrl(out.image.file_id).then((u) => { img.src = u; }).catch(() => {});
            box.append(h('div', { class: 'muted' }, 'Image output'), img);
          }
        }
        li.append(box);
      } else if (tc.type === 'file_search') {
        const fsr = tc.file_search || {};
        const box = h('div', { class: 'tool tool-fs' }, h('div', { class: 'tool-name' }, 'File search'));
        // queries: assistd's include[] extension, present once the call ran.
        if (Array.isArray(fsr.queries)) {
          box.append(h('div', { class: 'muted' }, fsr.queries.length === 1 ? 'Query' : 'Queries'));
          if (fsr.queries.length) box.append(h('ul', { class: 'queries', 'aria-label': 'Search queries' }, ...fsr.queries.map((q) => h('li', { class: 'query' }, q))));
          else box.append(h('div', { class: 'muted' }, 'No query: nothing was searched.'));
        }
        if (fsr.ranking_options) box.append(h('div', { class: 'muted' }, `ranker ${fsr.ranking_options.ranker}, score threshold ${fsr.ranking_options.score_threshold}`));
        const results = fsr.results || [];
        if (!results.length) box.append(h('div', { class: 'muted' }, st.status === 'completed' ? 'No results.' : 'Searching\u2026'));
        const ol = h('ol', { class: 'results', start: 0 });
        for (const res of results) {
          const text = (res.content || []).map((c) => c.text).join('\n');
          ol.append(h('li', {}, h('span', { class: 'fname' }, res.file_name || res.file_id), ' ',
            h('span', { class: 'score' }, `score ${Number(res.score).toFixed(3)}`),
            text ? h('pre', { class: 'quote' }, text.length > 600 ? `${text.slice(0, 600)}\u2026` : text) : null));
        }
        box.append(ol);
        li.append(box);
      } else if (tc.type === 'function') {
        const f = tc.function || {};
        li.append(h('div', { class: 'tool tool-fn' }, h('div', { class: 'tool-name' }, `Function ${f.name || ''}`), ' ', h('code', {}, tc.id || ''),
          h('div', { class: 'muted' }, 'Arguments'), h('pre', { class: 'code' }, f.arguments || ''),
          h('div', { class: 'muted' }, 'Output'), h('pre', { class: 'code out' }, f.output ?? '(waiting for submit_tool_outputs)')));
      }
    }
    if (st.last_error) li.append(h('div', { class: 'field-error' }, `${st.last_error.code}: ${st.last_error.message}`));
    return li;
  }

  return { run, stepEvent, steps };
}
