// The playground in a real headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core; no browser download), against the real ASan
// assistd and the scripted upstream model of the black-box tests. Every
// flow saves a screenshot to $BUILD/screenshots/ for a person to look at.
//
//   a. code interpreter: the seed's "3x + 11 = 14", streamed answer, code in the logs
//   b. file search: upload, ingestion status, a citation revealing its quote,
//      the queries and scored results in the logs
//   c. function calling through the requires_action form
//   d. Clear chat starts a new thread
//   e. the layout (hidden/reordered panes) survives a reload; narrow window
//   f. a wrong key shows a readable error
//   g. a json_schema response format: validated, saved, sent upstream, shown again
//   h. every visible control has an accessible name; the chat works from the keyboard
//   i. Cancel run stops a streaming run, which shows as cancelled
// plus the static serving itself, and the first-render time (median of
// several loads, printed for bench/RESULTS.md).
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, statSync, readdirSync, writeFileSync, truncateSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const REPO = path.resolve(import.meta.dirname, '../..');
const BUILD = path.resolve(REPO, process.env.BUILD || 'build');
process.env.ASSISTD_BIN ||= path.join(BUILD, 'asan/assistd');
const SHOTS = path.join(BUILD, 'screenshots');
mkdirSync(SHOTS, { recursive: true });

const { startServer, httpRequest, KEY } = await import('../e2e/lib/server.mjs');
const { startUpstream } = await import('../e2e/lib/upstream.mjs');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const LAPTOP = { width: 1366, height: 820 };

let up;
let srv;
let browser;
let base;

before(async () => {
  up = await startUpstream({ apiKey: 'up-key' });
  srv = await startServer({
    args: ['--models', 'gpt-4o,gpt-4o-mini'],
    env: { OPENAI_BASE_URL: up.url, OPENAI_API_KEY: 'up-key' },
  });
  base = `${srv.url}/playground/`;
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
});

after(async () => {
  // Each step runs even if an earlier one fails (a sanitizer report in
  // srv.stop() must not leave the upstream listening and the run hanging).
  try {
    await browser?.close();
  } finally {
    try {
      await srv?.stop();
    } finally {
      await up?.close();
    }
  }
});

// A page with the key already in session storage (as after the key form).
async function openPage({ key = KEY, viewport = LAPTOP } = {}) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  if (key !== null) {
    await context.addInitScript((k) => {
      if (sessionStorage.getItem('assistd.playground.key') === null) sessionStorage.setItem('assistd.playground.key', k);
    }, key);
  }
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(base);
  if (key !== null) await page.waitForSelector('body[data-ready="1"]');
  return { context, page, errors };
}

async function shot(page, name) {
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  return file;
}

// Runs a flow on a fresh page (openPage's options, if given): a screenshot
// when it fails, and no uncaught error in the page when it passes.
async function withPage(opts, body) {
  if (typeof opts === 'function') [opts, body] = [{}, opts];
  const { context, page, errors } = await openPage(opts);
  try {
    await body(page);
    assert.deepEqual(errors, [], 'uncaught errors in the page');
  } catch (e) {
    await shot(page, `failed-${Date.now()}`).catch(() => {});
    throw e;
  } finally {
    await context.close();
  }
}

async function newAssistant(page, { name, instructions = '', ci = false, fs = false, functions, format, schema } = {}) {
  await page.selectOption('#assistant-select', '');
  await page.getByLabel('Name', { exact: true }).fill(name);
  await page.getByLabel('Instructions').fill(instructions);
  await page.getByLabel('Model').selectOption('gpt-4o');
  if (ci) await page.check('#tool-ci');
  if (fs) await page.check('#tool-fs');
  if (functions !== undefined) await page.fill('#functions', functions);
  if (format !== undefined) await page.getByLabel('Response format').selectOption(format);
  if (schema !== undefined) await page.getByLabel('JSON schema (name, schema, strict)').fill(schema);
  await page.getByRole('button', { name: 'Save' }).click();
  await page.waitForFunction(() => /^Saved asst_/.test(document.querySelector('.setup-form .status').textContent));
  return page.evaluate(() => window.__pg.state.assistant.id);
}

async function say(page, text) {
  await page.fill('#chat-input', text);
  await page.getByRole('button', { name: 'Add and run' }).click();
}

const code = (src) => ({ tool_calls: [{ name: 'code_interpreter', arguments: JSON.stringify({ code: src }) }] });

test('code interpreter: the seed question, a streamed answer, the executed code in the logs', () => withPage(async (page) => {
  await newAssistant(page, {
    name: 'Math Tutor', ci: true,
    instructions: 'You are a personal math tutor. Write and run code to answer math questions.',
  });
  const answer = 'Subtract 11 from both sides and divide by 3:\n\n```python\nx = (14 - 11) / 3\n```\n\nThe solution is **x = 1**.';
  up.script(code('x = (14 - 11) / 3\nx'), { text: answer, delayMs: 15 });
  // Record what the reply looked like while it streamed.
  await page.evaluate(() => {
    window.__seen = [];
    new MutationObserver(() => {
      const b = [...document.querySelectorAll('.msg-assistant .msg-body')].at(-1);
      if (b) window.__seen.push(b.textContent);
    }).observe(document.querySelector('.messages'), { subtree: true, childList: true, characterData: true });
  });
  await say(page, 'I need to solve the equation `3x + 11 = 14`. Can you help me?');
  const reply = page.locator('.msg-assistant').last();
  await reply.locator('strong', { hasText: 'x = 1' }).waitFor();
  await reply.locator('pre code.language-python').waitFor();
  const seen = await page.evaluate(() => window.__seen.filter((t) => t && t !== '\u2026'));
  const partial = new Set(seen.filter((t) => !t.includes('The solution is x = 1.')));
  assert.ok(partial.size >= 3, `the answer arrived in pieces (saw ${partial.size} partial renderings)`);

  // The user's message, rendered with inline code.
  await page.locator('.msg-user code', { hasText: '3x + 11 = 14' }).waitFor();
  // Logs: the run completed with token usage, the code and its output.
  const run = page.locator('#log-runs details.run').first();
  await run.locator('.badge.st-completed').first().waitFor();
  await run.locator('.tool-ci pre.code', { hasText: 'x = (14 - 11) / 3' }).waitFor();
  await run.locator('.tool-ci pre.out', { hasText: '1.0' }).waitFor();
  assert.match(await run.locator('summary .usage').textContent(), /tokens: \d+ prompt \+ \d+ completion = \d+/);
  // Every API call is listed, the run's POST among them.
  await page.locator('#log-calls .path', { hasText: /\/v1\/threads\/thread_\w+\/runs$/ }).first().waitFor();
  assert.equal(await page.locator('#log-calls .code.bad').count(), 0);
  // The request/response JSON of a call expands.
  const assistantCall = page.locator('#log-calls li', { hasText: 'POST /v1/assistants' }).first();
  await assistantCall.locator('summary').click();
  await assistantCall.locator('pre.json', { hasText: '"code_interpreter"' }).first().waitFor();
  await shot(page, 'a-code-interpreter');

  // Same thread: a figure shown inline (fetched with the key) and a
  // generated file offered as a download link.
  const src = 'import matplotlib.pyplot as plt\nplt.plot([0, 1, 2], [11, 14, 17])\nplt.title("3x + 11")\nopen("/mnt/data/solution.csv", "w").write("x,value\\n1,14\\n")';
  up.script(code(src), { text: 'Here is the line 3x + 11 and the table: [solution.csv](sandbox:/mnt/data/solution.csv).' });
  await say(page, 'Plot it and give me a CSV.');
  const reply2 = page.locator('.msg-assistant').nth(1);
  const img = reply2.locator('img.gen-image');
  await img.waitFor();
  await page.waitForFunction(() => {
    const i = document.querySelectorAll('.msg-assistant')[1]?.querySelector('img.gen-image');
    return i && i.complete && i.naturalWidth > 100;
  });
  assert.match(await img.getAttribute('src'), /^blob:/);
  const link = reply2.locator('a.file-link', { hasText: 'solution.csv' });
  await link.waitFor();
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
  assert.equal(download.suggestedFilename(), 'solution.csv');
  const chunks = [];
  for await (const c of await download.createReadStream()) chunks.push(c);
  assert.equal(Buffer.concat(chunks).toString(), 'x,value\n1,14\n');
  // The logs show the image output of the step too.
  await page.locator('#log-runs details.run').first().locator('.tool-ci img.gen-image').waitFor();
  await shot(page, 'a-code-interpreter-files');

  // An attachment on a message reaches the code interpreter under its name.
  await page.setInputFiles('#chat-attach', { name: 'data.csv', mimeType: 'text/csv', buffer: Buffer.from('value\n1\n2\n3\n') });
  await page.locator('form.composer .chip', { hasText: 'data.csv' }).waitFor();
  up.script(code('import pandas as pd\nprint(pd.read_csv("/mnt/data/data.csv").value.sum())'), { text: 'The values add up to 6.' });
  await say(page, 'Add up the values in the attached file.');
  const mine = page.locator('.msg-user').last();
  await mine.locator('.chip', { hasText: '\u{1F4CE} data.csv' }).waitFor();
  await page.locator('.msg-assistant', { hasText: 'The values add up to 6.' }).waitFor();
  await page.locator('#log-runs details.run').first().locator('.tool-ci pre.out', { hasText: /^6\n?$/ }).waitFor();
  assert.equal(await page.locator('form.composer .chip').count(), 0);
  const msgReq = up.requests.at(-1).body.messages.filter((m) => m.role === 'user').at(-1);
  assert.match(JSON.stringify(msgReq.content), /Add up the values/);
}));

const VAULT = [
  'Vault runbook.',
  '',
  'To unseal the vault, three of the five key holders each enter their unseal key share. The vault stays sealed until the threshold of three shares is reached.',
  '',
  'Backups of the vault storage run every night at 02:00 and are kept for thirty days.',
  '',
  // Markup in a document must reach the quote as text.
  'Escalation: page <b>ops</b> <img src=x onerror="window.__xss = 1"> on-call.',
].join('\n');

test('file search: upload into the vector store, then a citation reveals the file and its quote', () => withPage(async (page) => {
  await newAssistant(page, { name: 'Runbook helper', fs: true, instructions: 'Answer from the files.' });
  await page.setInputFiles('#fs-upload', { name: 'vault_info.txt', mimeType: 'text/plain', buffer: Buffer.from(VAULT) });
  const item = page.locator('#fs-files li', { hasText: 'vault_info.txt' });
  await item.waitFor();
  await page.locator('#fs-files li[data-status="completed"]').waitFor({ timeout: 30000 });
  assert.match(await item.textContent(), /completed/);

  up.script(
    { tool_calls: [{ name: 'file_search', arguments: '{"queries":["unseal vault key shares","vault backup schedule"]}' }] },
    { text: 'Three of the five key holders each enter their key share \u30100:0\u2020vault_info.txt\u3011. Backups run nightly \u30100:0\u2020vault_info.txt\u3011.' },
  );
  await say(page, 'How is the vault unsealed?');
  const reply = page.locator('.msg-assistant').last();
  const cite = reply.locator('button.cite').first();
  await cite.waitFor();
  assert.equal(await cite.textContent(), '[1]');
  // The same marker twice is one reference; the raw marker is gone.
  assert.equal(await reply.locator('.refs li').count(), 1);
  assert.doesNotMatch(await reply.locator('.md').textContent(), /\u3010/);
  await cite.click();
  const ref = reply.locator('.refs details[data-ref="1"]');
  assert.equal(await ref.getAttribute('open'), '');
  await ref.locator('.ref-name', { hasText: 'vault_info.txt' }).waitFor();
  await ref.locator('blockquote.quote', { hasText: 'three of the five key holders' }).waitFor();
  assert.match(await ref.locator('blockquote.quote').textContent(), /page <b>ops<\/b> <img src=x onerror="window.__xss = 1"> on-call/);
  assert.equal(await ref.locator('b, img').count(), 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  // Logs: the queries searched (assistd's include[] extension), above the
  // search results with scores and their text.
  const fs = page.locator('#log-runs details.run').first().locator('.tool-fs');
  await fs.locator('ul.queries li', { hasText: 'unseal vault key shares' }).waitFor();
  assert.deepEqual(await fs.locator('ul.queries li').allTextContents(), ['unseal vault key shares', 'vault backup schedule']);
  await fs.locator('.results li', { hasText: 'vault_info.txt' }).first().waitFor();
  const above = await fs.evaluate((box) => {
    const q = box.querySelector('ul.queries');
    const r = box.querySelector('.results');
    return Boolean(q.compareDocumentPosition(r) & Node.DOCUMENT_POSITION_FOLLOWING);
  });
  assert.ok(above, 'the queries are shown above the results');
  // The page asked for the steps with both include[] values.
  const stepsCall = page.locator('#log-calls .path', { hasText: /\/runs\/run_\w+\/steps\?/ }).first();
  await stepsCall.waitFor();
  const stepsPath = decodeURIComponent(await stepsCall.textContent());
  assert.ok(stepsPath.includes('include[]=step_details.tool_calls[*].file_search.results[*].content'), stepsPath);
  assert.ok(stepsPath.includes('include[]=step_details.tool_calls[*].file_search.queries'), stepsPath);
  assert.match(await fs.locator('.score').first().textContent(), /^score [01]\.\d{3}$/);
  await fs.locator('pre.quote', { hasText: 'unseal key share' }).first().waitFor();
  await shot(page, 'b-file-search-citation');
}));

test('function calling: invalid JSON is refused with a clear error; requires_action form round trip', () => withPage(async (page) => {
  await page.selectOption('#assistant-select', '');
  await page.fill('#functions', '[{"name": "get weather"}]');
  await page.locator('#functions-error', { hasText: 'Function 1: "name" must be 1-64 letters' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Save' }).isDisabled(), true);
  assert.equal(await page.getAttribute('#functions', 'aria-invalid'), 'true');
  await page.fill('#functions', '[{"name": "x"');
  await page.locator('#functions-error', { hasText: 'Not valid JSON' }).waitFor();

  const fns = JSON.stringify([{ name: 'get_weather', description: 'Current weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }]);
  await newAssistant(page, { name: 'Weather bot', functions: fns });
  assert.equal(await page.textContent('#functions-error'), '');

  up.script({ tool_calls: [{ name: 'get_weather', arguments: '{"city":"Paris"}' }] }, { text: 'It is 21 \u00b0C and sunny in Paris.' });
  await say(page, 'What is the weather in Paris?');
  const form = page.locator('.action-form');
  await form.waitFor();
  assert.match(await form.locator('legend').textContent(), /get_weather call_/);
  assert.match(await form.locator('pre').textContent(), /"city": "Paris"/);
  await page.getByLabel('Output of get_weather').fill('{"temp_c": 21, "sky": "sunny"}');
  await shot(page, 'c-requires-action-form');
  await page.getByRole('button', { name: 'Submit outputs' }).click();
  await page.locator('.msg-assistant', { hasText: 'It is 21 \u00b0C and sunny in Paris.' }).waitFor();
  assert.equal(await form.count(), 0);
  // The upstream got the output typed into the form.
  const last = up.requests.at(-1).body.messages.find((m) => m.role === 'tool');
  assert.equal(last.content, '{"temp_c": 21, "sky": "sunny"}');
  // Logs show the call and its output.
  const fn = page.locator('#log-runs details.run').first().locator('.tool-fn');
  await fn.locator('pre.out', { hasText: '"temp_c": 21' }).waitFor();
  await shot(page, 'c-function-calling');
}));

const SCHEMA = {
  name: 'equation_answer',
  description: 'The solution of an equation',
  schema: { type: 'object', properties: { x: { type: 'number' }, steps: { type: 'array', items: { type: 'string' } } }, required: ['x', 'steps'], additionalProperties: false },
  strict: true,
};

async function api(p) {
  const r = await fetch(`${srv.url}/v1${p}`, { headers: { Authorization: `Bearer ${KEY}`, 'OpenAI-Beta': 'assistants=v2' } });
  assert.equal(r.status, 200, p);
  return r.json();
}

test('response format json_schema: validated while typing, saved, sent upstream, shown again', () => withPage(async (page) => {
  await page.selectOption('#assistant-select', '');
  const box = page.getByLabel('JSON schema (name, schema, strict)');
  assert.equal(await box.isHidden(), true, 'no schema editor for auto');
  await page.getByLabel('Response format').selectOption('json_schema');
  await box.waitFor();
  const save = page.getByRole('button', { name: 'Save' });
  // Empty, broken JSON, a bad name, a non-object schema: each refused with its reason.
  await page.locator('#json-schema-error', { hasText: 'Enter the schema object' }).waitFor();
  assert.equal(await save.isDisabled(), true);
  await box.fill('{"name": "answer", "schema": {');
  await page.locator('#json-schema-error', { hasText: 'Not valid JSON' }).waitFor();
  assert.equal(await save.isDisabled(), true);
  assert.equal(await box.getAttribute('aria-invalid'), 'true');
  await box.fill('{"name": "an answer", "schema": {}}');
  await page.locator('#json-schema-error', { hasText: '"name" must be 1-64 letters' }).waitFor();
  await box.fill('{"name": "answer", "schema": []}');
  await page.locator('#json-schema-error', { hasText: '"schema" must be a JSON Schema object' }).waitFor();
  await box.fill('{"name": "answer", "schemas": {}}');
  await page.locator('#json-schema-error', { hasText: 'Unknown key "schemas"' }).waitFor();
  assert.equal(await save.isDisabled(), true);
  await shot(page, 'g-json-schema-invalid');
  // Back to text: the editor hides and Save is allowed again.
  await page.getByLabel('Response format').selectOption('text');
  assert.equal(await box.isHidden(), true);
  assert.equal(await save.isDisabled(), false);

  const id = await newAssistant(page, { name: 'Structured tutor', format: 'json_schema', schema: JSON.stringify(SCHEMA, null, 2) });
  assert.equal(await page.textContent('#json-schema-error'), '');
  // The server stored it (a direct API read) ...
  const stored = await api(`/assistants/${id}`);
  assert.deepEqual(stored.response_format, { type: 'json_schema', json_schema: SCHEMA });
  // ... and the page sent it so (the logs pane's request JSON).
  const call = page.locator('#log-calls li', { hasText: 'POST /v1/assistants' }).first();
  await call.locator('summary').click();
  const reqJson = JSON.parse(await call.locator('pre.json').first().textContent());
  assert.deepEqual(reqJson.response_format, { type: 'json_schema', json_schema: SCHEMA });

  // A run of the assistant asks the model for that format.
  up.script({ text: '{"x": 1, "steps": ["3x = 3", "x = 1"]}' });
  await say(page, 'Solve 3x + 11 = 14.');
  await page.locator('.msg-assistant', { hasText: '"steps"' }).waitFor();
  assert.deepEqual(up.requests.at(-1).body.response_format, { type: 'json_schema', json_schema: SCHEMA });

  // Reload, pick another assistant, then this one again: the schema is back.
  await page.reload();
  await page.waitForSelector('body[data-ready="1"]');
  await page.selectOption('#assistant-select', '');
  assert.equal(await box.isHidden(), true);
  await page.selectOption('#assistant-select', id);
  await box.waitFor();
  assert.equal(await page.getByLabel('Response format').inputValue(), 'json_schema');
  assert.deepEqual(JSON.parse(await box.inputValue()), SCHEMA);
  assert.equal(await page.getByRole('button', { name: 'Save' }).isDisabled(), false);
  await shot(page, 'g-json-schema-saved');
}));

// The accessible name Chromium computes for every visible input, select,
// textarea and button (CDP Accessibility domain); returns the unnamed ones.
async function unnamedControls(page) {
  const count = await page.evaluate(() => {
    let n = 0;
    for (const e of document.querySelectorAll('[data-a11y]')) e.removeAttribute('data-a11y');
    for (const e of document.querySelectorAll('input, select, textarea, button')) {
      if (e.checkVisibility({ visibilityProperty: true })) e.setAttribute('data-a11y', String(n++));
    }
    return n;
  });
  const cdp = await page.context().newCDPSession(page);
  try {
    const { root } = await cdp.send('DOM.getDocument', { depth: -1 });
    const { nodeIds } = await cdp.send('DOM.querySelectorAll', { nodeId: root.nodeId, selector: '[data-a11y]' });
    assert.equal(nodeIds.length, count);
    const bad = [];
    for (const nodeId of nodeIds) {
      const { nodes } = await cdp.send('Accessibility.getPartialAXTree', { nodeId, fetchRelatives: false });
      const ax = nodes[0];
      const name = (ax?.name?.value || '').trim();
      if (!name || ax.ignored) {
        const { outerHTML } = await cdp.send('DOM.getOuterHTML', { nodeId });
        bad.push(outerHTML.slice(0, 160));
      }
    }
    return { count, bad };
  } finally {
    await cdp.detach();
  }
}

test('keyboard and labels: every visible control is named; Tab to the message box, Ctrl+Enter runs', () => withPage(async (page) => {
  // As many controls on screen as possible: both tool boxes, the schema editor.
  await newAssistant(page, { name: 'Keyboard bot', ci: true, fs: true, format: 'json_schema', schema: JSON.stringify(SCHEMA) });
  let r = await unnamedControls(page);
  assert.ok(r.count >= 20, `checked ${r.count} controls`);
  assert.deepEqual(r.bad, [], 'controls without an accessible name');
  // The check itself finds an unnamed control (an icon button, a bare input).
  await page.evaluate(() => document.querySelector('#pane-chat .pane-body').append(
    Object.assign(document.createElement('button'), { id: 'probe-b' }), Object.assign(document.createElement('input'), { id: 'probe-i' })));
  r = await unnamedControls(page);
  assert.equal(r.bad.length, 2, JSON.stringify(r.bad));
  await page.evaluate(() => { document.getElementById('probe-b').remove(); document.getElementById('probe-i').remove(); });

  // The key form too.
  await page.getByRole('button', { name: 'API key' }).click();
  await page.locator('form.keyform').waitFor();
  r = await unnamedControls(page);
  assert.deepEqual(r.bad, []);
  await page.keyboard.press('Escape');
  assert.equal(await page.isHidden('form.keyform'), true);

  // Keyboard only: Tab from the top of the page reaches the message box.
  await page.evaluate(() => document.activeElement?.blur());
  await page.locator('h1').click();
  let reached = false;
  for (let i = 0; i < 80 && !reached; i++) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => document.activeElement?.id === 'chat-input');
  }
  assert.ok(reached, 'Tab reaches the message box');
  up.script({ text: '{"x": 1, "steps": ["typed from the keyboard"]}' });
  await page.keyboard.type('Solve 3x + 11 = 14 without a mouse.');
  await page.keyboard.press('Control+Enter');
  await page.locator('.msg-user', { hasText: 'without a mouse' }).waitFor();
  await page.locator('.msg-assistant', { hasText: 'typed from the keyboard' }).waitFor();
  await page.locator('#log-runs details.run').first().locator('.badge.st-completed').first().waitFor();
  // Focus comes back to the message box for the next message.
  await page.waitForFunction(() => document.activeElement?.id === 'chat-input');
  assert.equal(await page.inputValue('#chat-input'), '');
  // The conversation and logs add controls; they are named too.
  r = await unnamedControls(page);
  assert.deepEqual(r.bad, []);
  await shot(page, 'h-keyboard');
}));

test('Cancel run: visible while a run streams, stops it, the run shows as cancelled', () => withPage(async (page) => {
  await newAssistant(page, { name: 'Slow talker' });
  const cancel = page.getByRole('button', { name: 'Cancel run' });
  assert.equal(await cancel.count(), 0, 'no Cancel run button without a run');
  const words = Array.from({ length: 60 }, (_, i) => `word${i}`).join(' ');
  up.script({ text: words, delayMs: 150 });
  await say(page, 'Talk slowly.');
  await cancel.waitFor();
  // Let some of the reply arrive first.
  await page.locator('.msg-assistant .msg-body', { hasText: 'word2' }).waitFor();
  await shot(page, 'i-cancel-streaming');
  await cancel.click();
  await page.locator('#pane-chat .status', { hasText: /Run run_\w+ cancelled\./ }).waitFor();
  assert.equal(await cancel.count(), 0, 'the button goes away with the run');
  const reply = page.locator('.msg-assistant').last();
  await reply.locator('.muted', { hasText: '(incomplete: run_cancelled)' }).waitFor();
  assert.doesNotMatch(await reply.textContent(), /word59/);
  // The logs: the cancel call and the run's cancelled status.
  await page.locator('#log-calls .path', { hasText: /\/runs\/run_\w+\/cancel$/ }).first().waitFor();
  const runEl = page.locator('#log-runs details.run').first();
  await runEl.locator('.badge.st-cancelled').first().waitFor();
  // The API agrees.
  const runId = await runEl.getAttribute('data-run-id');
  const threadId = await page.textContent('#thread-id');
  const run = await api(`/threads/${threadId}/runs/${runId}`);
  assert.equal(run.status, 'cancelled');
  assert.equal(typeof run.cancelled_at, 'number');
  // The composer is usable again.
  assert.equal(await page.getByRole('button', { name: 'Add and run' }).isDisabled(), false);
  await shot(page, 'i-cancelled');
}));

test('Clear chat starts a new thread; reload keeps the layout and the chat', () => withPage(async (page) => {
  await page.fill('#chat-input', 'First thread, no run.');
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  await page.locator('.msg-user', { hasText: 'First thread, no run.' }).waitFor();
  const first = await page.textContent('#thread-id');
  assert.match(first, /^thread_/);

  // Reload: the chat comes back from the API (the thread is per session).
  await page.reload();
  await page.waitForSelector('body[data-ready="1"]');
  await page.locator('.msg-user', { hasText: 'First thread, no run.' }).waitFor();
  assert.equal(await page.textContent('#thread-id'), first);

  await page.getByRole('button', { name: 'Clear chat' }).click();
  assert.equal(await page.locator('.messages .msg').count(), 0);
  await page.fill('#chat-input', 'Second thread.');
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  await page.locator('.msg-user', { hasText: 'Second thread.' }).waitFor();
  const second = await page.textContent('#thread-id');
  assert.match(second, /^thread_/);
  assert.notEqual(second, first);
  await shot(page, 'd-clear-chat');

  // Layout: hide the logs, move the chat to the left, reload.
  await page.uncheck('#show-logs');
  assert.equal(await page.isHidden('#pane-logs'), true);
  await page.getByRole('button', { name: 'Move Chat left' }).click();
  // Keyboard: focus stays on the moved pane's button; Enter moves it again (no-op at the edge).
  await page.keyboard.press('Enter');
  assert.equal(await page.getAttribute('#panes', 'data-order'), 'chat,setup,logs');
  await page.reload();
  await page.waitForSelector('body[data-ready="1"]');
  assert.equal(await page.getAttribute('#panes', 'data-order'), 'chat,setup,logs');
  assert.equal(await page.isHidden('#pane-logs'), true);
  assert.equal(await page.isChecked('#show-logs'), false);
  const ids = await page.$$eval('#panes > section', (s) => s.map((x) => x.id));
  assert.deepEqual(ids, ['pane-chat', 'pane-setup', 'pane-logs']);
  await shot(page, 'e-layout-after-reload');

  // A narrow window stacks the panes; everything stays reachable.
  await page.check('#show-logs');
  await page.setViewportSize({ width: 480, height: 900 });
  const boxes = await page.$$eval('#panes > section', (s) => s.map((x) => x.getBoundingClientRect()).map((r) => ({ x: r.x, w: r.width })));
  for (const b of boxes) assert.ok(b.w <= 480 && b.x >= 0, JSON.stringify(boxes));
  await shot(page, 'e-narrow');
}));

test('a wrong API key shows a readable error and asks for the key again', () => withPage({ key: null }, async (page) => {
  // The server has keys: the key form comes up by itself.
  await page.getByLabel('API key').waitFor();
  await page.getByLabel('API key').fill('sk-wrong');
  await page.getByRole('button', { name: 'Connect' }).click();
  const banner = page.getByRole('alert');
  await banner.waitFor();
  const text = await banner.textContent();
  assert.match(text, /401 invalid_api_key: Incorrect API key provided/);
  assert.equal(await page.isVisible('form.keyform'), true);
  await shot(page, 'f-wrong-key');
  // The right key then works.
  await page.getByLabel('API key').fill(KEY);
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.waitForSelector('body[data-ready="1"]');
  assert.equal(await banner.isHidden(), true);
  // A failed API call later is shown too: saving an assistant deleted meanwhile.
  await page.evaluate(() => window.__pg.setup.edit({ id: 'asst_gone', name: 'Gone', model: 'gpt-4o', tools: [] }));
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('alert').filter({ hasText: "Saving the assistant: 404 invalid_request_error: No assistant found with id 'asst_gone'." }).waitFor();
  assert.match(await page.textContent('.setup-form .status'), /Not saved: 404/);
}));

test('markup from the model, file names and message URLs stays text: nothing runs, links are http(s) only', () => withPage(async (page) => {
  await newAssistant(page, { name: 'Markup echo' });
  await page.evaluate(() => { window.__xss = []; });
  up.script({ text: [
    'Plain **bold** and a [real link](https://example.com/docs).',
    '',
    '<img src=x onerror="window.__xss.push(1)"> <script>window.__xss.push(2)</script>',
    '<a href="javascript:window.__xss.push(3)">click me</a> [md link](javascript:window.__xss.push(4))',
    '<iframe srcdoc="<script>parent.__xss.push(5)</script>"></iframe> <b onmouseover="window.__xss.push(6)">hover</b>',
    '<svg onload="window.__xss.push(7)"><circle r="5"/></svg> <details open ontoggle="window.__xss.push(8)">folded</details>',
    '<style>body { display: none }</style> <form action="https://evil.example/"><input name=q></form>',
  ].join('\n'), delayMs: 5 });
  await say(page, 'Echo <img src=x onerror="window.__xss.push(9)"> back.');
  await page.locator('#pane-chat .status', { hasText: /Run run_\w+ completed/ }).waitFor();
  const msgs = page.locator('.messages');
  const reply = page.locator('.msg-assistant').last();
  await reply.locator('strong', { hasText: 'bold' }).waitFor();
  // Raw HTML reads as written (as on OpenAI's pages), in either direction.
  assert.match(await page.locator('.msg-user').last().textContent(), /Echo <img src=x onerror="window\.__xss\.push\(9\)"> back\./);
  assert.equal(await msgs.locator('img, script, iframe, svg, style, form, input, details').count(), 0);
  const attrs = await msgs.evaluate((el) => [...el.querySelectorAll('.msg-body *')]
    .flatMap((n) => [...n.attributes].map((a) => a.name)).filter((a) => /^(on|src|srcdoc|style|action)/.test(a)));
  assert.deepEqual(attrs, []);
  assert.deepEqual(await reply.locator('a[href]').evaluateAll((as) => as.map((a) => a.getAttribute('href'))), ['https://example.com/docs']);
  assert.equal(await reply.locator('a[href="https://example.com/docs"]').getAttribute('rel'), 'noopener noreferrer');
  const text = await reply.textContent();
  for (const kept of ['<script>window.__xss.push(2)</script>', '<a href="javascript:window.__xss.push(3)">click me</a>',
    '<b onmouseover="window.__xss.push(6)">hover</b>', '<details open ontoggle="window.__xss.push(8)">folded</details>',
    '<style>body { display: none }</style>']) assert.ok(text.includes(kept), `${kept} in ${text}`);
  assert.equal(await reply.locator('b').count(), 0);
  await reply.getByText('md link').click();
  assert.deepEqual(await page.evaluate(() => window.__xss), []);
  assert.equal(await page.evaluate(() => getComputedStyle(document.body).display), 'block');

  // A file name with markup, attached to a message: shown as its name.
  // (no quotes: Chromium sends a '"' in a file name as %22)
  const evilName = '<img src=x onerror=window.__xss.push(10)>.txt';
  await page.setInputFiles('#chat-attach', { name: evilName, mimeType: 'text/plain', buffer: Buffer.from('notes\n') });
  await page.fill('#chat-input', 'Here is a file.');
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  await page.locator('.msg-user .chip', { hasText: `\u{1F4CE} ${evilName}` }).waitFor();

  // A message another client wrote with a javascript: image URL (the API
  // takes any "scheme:..."): after a reload it is text, not a link.
  const threadId = await page.textContent('#thread-id');
  const r = await fetch(`${srv.url}/v1/threads/${threadId}/messages`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${KEY}`, 'OpenAI-Beta': 'assistants=v2', 'Content-Type': 'application/json' },
    body: JSON.stringify({ role: 'user', content: [{ type: 'text', text: 'Look:' }, { type: 'image_url', image_url: { url: 'javascript:window.__xss.push(11)' } }] }),
  });
  assert.equal(r.status, 200, await r.text());
  await page.reload();
  await page.waitForSelector('body[data-ready="1"]');
  await page.evaluate(() => { window.__xss = []; });
  const last = page.locator('.msg-user').last();
  await last.getByText('image: javascript:window.__xss.push(11)').click();
  assert.equal(await msgs.locator('a[href^="javascript"], a[href^="JAVASCRIPT"]').count(), 0);
  assert.equal(await msgs.locator('img').count(), 0);
  assert.deepEqual(await page.evaluate(() => window.__xss), []);
  await shot(page, 'j-markup-as-text');
}));

// The run stream as assistd sent it, changed on its way to the page.
async function routeRunStream(page, change) {
  await page.route(/\/v1\/threads\/thread_\w+\/runs$/, async (route) => {
    const res = await route.fetch();
    assert.equal(res.headers()['content-type'], 'text/event-stream');
    await route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream' }, body: change(await res.text()) });
  });
}

test('streams: CRLF line endings render the same; a stream cut short says so readably', () => withPage(async (page) => {
  await newAssistant(page, { name: 'Stream checker' });
  await routeRunStream(page, (body) => body.replace(/\n/g, '\r\n'));
  up.script({ text: 'Over **CRLF** too.' });
  await say(page, 'First.');
  await page.locator('#pane-chat .status', { hasText: /Run run_\w+ completed/ }).waitFor();
  await page.locator('.msg-assistant strong', { hasText: 'CRLF' }).waitFor();
  assert.equal(await page.getByRole('alert').isHidden(), true);

  // Cut inside the JSON of the first text delta: no terminal run event.
  await page.unrouteAll({ behavior: 'wait' });
  await routeRunStream(page, (body) => {
    const at = body.indexOf('event: thread.message.delta');
    assert.ok(at > 0, body);
    return body.slice(0, body.indexOf('{', at) + 12);
  });
  up.script({ text: 'This answer is cut short on its way.' });
  await say(page, 'Second.');
  await page.getByRole('alert').filter({ hasText: /The event stream ended before the run finished \(run run_\w+ was still in progress\)/ }).waitFor();
  await page.locator('#pane-chat .status', { hasText: /the stream ended early/ }).waitFor();
  const cut = page.locator('.msg-assistant').last();
  await cut.locator('.muted', { hasText: '(the stream ended here)' }).waitFor();
  assert.equal(await cut.locator('.typing').count(), 0);
  assert.equal(await page.getByRole('button', { name: 'Add and run' }).isDisabled(), false);
  assert.equal(await page.getByRole('button', { name: 'Cancel run' }).count(), 0);
  await shot(page, 'k-stream-cut');
  // The run itself finished on the server: a reload shows its answer.
  await page.unrouteAll({ behavior: 'wait' });
  await page.reload();
  await page.waitForSelector('body[data-ready="1"]');
  await page.locator('.msg-assistant', { hasText: 'This answer is cut short on its way.' }).waitFor();
}));

test('static serving: redirect, caching, gzip, traversal, HEAD, no key needed', async () => {
  const r1 = await fetch(`${srv.url}/playground`, { redirect: 'manual' });
  assert.equal(r1.status, 308);
  assert.equal(r1.headers.get('location'), '/playground/');
  const r2 = await fetch(base, { headers: { 'Accept-Encoding': 'identity' } });
  assert.equal(r2.status, 200);
  assert.equal(r2.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.equal(r2.headers.get('cache-control'), 'no-cache');
  const html = await r2.text();
  const js = /src="\.\/(assets\/[^"]+\.js)"/.exec(html)[1];
  // Revalidation: the page is "no-cache", so a browser asks again with the
  // ETag it has; an unchanged build answers 304 with no body.
  const etag = r2.headers.get('etag');
  assert.match(etag, /^"[0-9a-f]+-[0-9a-f]+"$/);
  const r2b = await fetch(base, { headers: { 'Accept-Encoding': 'identity', 'If-None-Match': `"x", W/${etag}` } });
  assert.equal(r2b.status, 304);
  assert.equal(r2b.headers.get('etag'), etag);
  assert.equal(r2b.headers.get('cache-control'), 'no-cache');
  // No body; a Content-Length only as the 200's (RFC 9110).
  assert.equal(r2b.headers.get('content-length'), r2.headers.get('content-length'));
  assert.equal(await r2b.text(), '');
  const r3 = await fetch(base + js);  // fetch sends Accept-Encoding: gzip and decodes
  assert.equal(r3.status, 200);
  assert.equal(r3.headers.get('content-encoding'), 'gzip');
  const gzTag = r3.headers.get('etag');
  assert.match(gzTag, /^"[0-9a-f]+-[0-9a-f]+-gz"$/);
  const r3b = await fetch(base + js, { headers: { 'If-None-Match': gzTag } });
  assert.equal(r3b.status, 304);
  assert.equal(r3b.headers.get('content-encoding'), null);
  // The plain file is another representation: its tag differs.
  const r3c = await fetch(base + js, { headers: { 'Accept-Encoding': 'identity', 'If-None-Match': gzTag } });
  assert.equal(r3c.status, 200);
  assert.notEqual(r3c.headers.get('etag'), gzTag);
  await r3c.arrayBuffer();
  assert.equal(r3.headers.get('cache-control'), 'public, max-age=31536000, immutable');
  assert.equal(r3.headers.get('content-type'), 'text/javascript; charset=utf-8');
  assert.equal((await r3.arrayBuffer()).byteLength, statSync(path.join(BUILD, 'playground', js)).size);
  const r4 = await fetch(base + js, { method: 'HEAD', headers: { 'Accept-Encoding': 'identity' } });
  assert.equal(r4.status, 200);
  assert.equal(Number(r4.headers.get('content-length')), statSync(path.join(BUILD, 'playground', js)).size);
  // Raw paths (fetch would resolve the dot segments itself).
  for (const p of ['assets/%2e%2e/index.html', '%2e%2e/%2e%2e/etc/passwd', 'assets/../index.html', '../healthz',
    'nope.js', '.hidden', 'assets', 'assets/', '%2e%2e%00/x', '..%00', '%ff', 'x%c3.js', 'caf%c3%a9.js']) {
    const r = await httpRequest(srv, { path: `/playground/${p}` });
    assert.equal(r.status, 404, p);
    const e = r.json.error;
    assert.deepEqual(Object.keys(e).sort(), ['code', 'message', 'param', 'type'], p);
    assert.match(e.message, /'\/playground\//, p);
  }
  // A tag that does not match, If-Modified-Since and Range (not supported):
  // the whole file, 200.
  const r6 = await fetch(base + js, { headers: { 'If-None-Match': '"x"', 'If-Modified-Since': new Date().toUTCString(), Range: 'bytes=0-9', 'Accept-Encoding': 'identity' } });
  assert.equal(r6.status, 200);
  assert.equal((await r6.arrayBuffer()).byteLength, statSync(path.join(BUILD, 'playground', js)).size);
  const r5 = await fetch(base, { method: 'POST' });
  assert.equal(r5.status, 405);
  // GET and HEAD are counted apart (one series per label set).
  const metrics = await (await fetch(`${srv.url}/metrics`)).text();
  assert.match(metrics, /assistd_http_requests_total\{route="playground",status="200"\} \d+/);
  assert.match(metrics, /assistd_http_requests_total\{route="playground.head",status="200"\} 1\n/);
  assert.match(metrics, /assistd_http_requests_total\{route="playground",status="308"\} 1\n/);

  // A large file goes out from its descriptor, whole, without a .gz.
  const pg = path.join(srv.dataDir, 'pg-large');
  mkdirSync(pg, { recursive: true });
  writeFileSync(path.join(pg, 'index.html'), '<!doctype html><title>x</title>');
  const BIG = 200 * 1024 * 1024;
  writeFileSync(path.join(pg, 'big.bin'), '');
  truncateSync(path.join(pg, 'big.bin'), BIG); // sparse: costs no disk
  const large = await startServer({ args: ['--playground-dir', pg] });
  try {
    const head = await fetch(`${large.url}/playground/big.bin`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers.get('content-length')), BIG);
    assert.equal(head.headers.get('content-type'), 'application/octet-stream');
    const r = await fetch(`${large.url}/playground/big.bin`);
    assert.equal(r.headers.get('content-encoding'), null);
    let n = 0;
    for await (const c of r.body) n += c.length;
    assert.equal(n, BIG);
  } finally {
    await large.stop();
  }

  // Without a built playground the server still starts and says how to build it.
  const other = await startServer({ args: ['--playground-dir', path.join(srv.dataDir, 'no-such-dir')] });
  try {
    const r = await fetch(`${other.url}/playground/`);
    assert.equal(r.status, 404);
    const e = (await r.json()).error;
    assert.equal(e.code, 'playground_not_built');
    assert.match(e.message, /Build it with `make`/);
    assert.equal((await fetch(`${other.url}/healthz`)).status, 200);
  } finally {
    await other.stop();
  }
});

test('first render: navigation start to a populated setup pane, median of 7 loads', async () => {
  const times = [];
  const context = await browser.newContext({ viewport: LAPTOP });
  await context.addInitScript((k) => sessionStorage.setItem('assistd.playground.key', k), KEY);
  try {
    for (let i = 0; i < 7; i++) {
      const page = await context.newPage();
      await page.goto(base);
      await page.waitForSelector('body[data-ready="1"]');
      times.push(await page.evaluate(() => window.__pgReady));
      await page.close();
    }
  } finally {
    await context.close();
  }
  const sorted = [...times].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  const dir = path.join(BUILD, 'playground', 'assets');
  const gz = readdirSync(dir).filter((f) => f.endsWith('.js.gz')).reduce((s, f) => s + statSync(path.join(dir, f)).size, 0);
  console.log(`playground first render: median ${median.toFixed(0)} ms over ${times.length} loads (${sorted.map((t) => t.toFixed(0)).join(', ')} ms); JS ${gz} bytes gzipped`);
  assert.ok(median < 1000, `first render ${median} ms`);
  assert.ok(gz < 300 * 1024, `JS ${gz} bytes gzipped`);
});
