// The seed articles' code_interpreter flows (issue #5), run unchanged except
// for client construction, against the real assistd and its real sandbox,
// with the scripted upstream writing the model's code and answers:
//   * the math tutor of seed 002 (Node.js, AzureOpenAI): "3x + 11 = 14",
//     createAndPoll with pollIntervalMs 500, then the follow-up question;
//   * the math tutor of seed 000 (Node.js chat loop): the definite integral
//     of x^2 from 0 to 3 with sympy; the sandbox's real output holds 9;
//   * state: a variable defined in one run is there in the next run of the
//     thread, and not in another thread (NameError);
//   * input files: the assistant's and the thread's
//     tool_resources.code_interpreter.file_ids and message attachments
//     (seed 001's data-analysis message) are in /mnt/data under their
//     original names; the chart comes back as an image_file;
//   * file_path annotations after non-ASCII text (emoji, CJK, combining
//     marks), with start/end counted in code points as OpenAI did (see the
//     note in seeds-file-search.test.mjs).
// Skipped only when bubblewrap cannot create its namespaces on this machine.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import OpenAI, { AzureOpenAI, toFile } from 'openai';
import { KEY, AZURE_API_VERSION } from './lib/server.mjs';
import { setupRuns } from './lib/runs.mjs';

// The sandbox is bwrap with every namespace unshared: if that cannot even
// run /usr/bin/true here (no user namespaces, no bwrap), skip.
function bwrapProblem() {
  const r = spawnSync('bwrap', ['--unshare-all', '--die-with-parent', '--ro-bind', '/usr', '/usr',
    '--symlink', 'usr/bin', '/bin', '--symlink', 'usr/lib', '/lib', '--symlink', 'usr/lib64', '/lib64',
    '--proc', '/proc', '--dev', '/dev', '/usr/bin/true'], { timeout: 10000 });
  if (r.error) return `bwrap cannot run: ${r.error.message}`;
  return r.status === 0 ? false : `bwrap cannot run here: ${String(r.stderr).trim()}`;
}
const skip = bwrapProblem();

const azureClient = (s) => new AzureOpenAI({ endpoint: s.url, apiKey: KEY, apiVersion: AZURE_API_VERSION, maxRetries: 0 });
const openaiClient = (s) => new OpenAI({ baseURL: `${s.url}/v1`, apiKey: KEY, maxRetries: 0 });
const code = (src) => ({ tool_calls: [{ name: 'code_interpreter', arguments: JSON.stringify({ code: src }) }] });
const cps = (s) => Array.from(s);
const cpSlice = (s, a, b) => cps(s).slice(a, b).join('');
const cpIndexOf = (s, sub, from = 0) => {
  const u = s.indexOf(sub, from);
  return u < 0 ? -1 : cps(s.slice(0, u)).length;
};

async function codeCalls(client, threadId, runId) {
  const steps = await client.beta.threads.runs.steps.list(runId, { thread_id: threadId, order: 'asc' });
  return steps.data.filter((s) => s.type === 'tool_calls').flatMap((s) => s.step_details.tool_calls);
}
const toolMessages = (req) => req.body.messages.filter((m) => m.role === 'tool').map((m) => m.content);

test('seed 002 math tutor (AzureOpenAI): 3x + 11 = 14 runs as code, then the follow-up', { skip }, async () => {
  const t = await setupRuns();
  try {
    const { up, s } = t;
    const assistantsClient = azureClient(s);
    // ---- the seed's code (index.js) ----
    const options = {
      model: 'gpt-4o', // Deployment name seen in Azure AI Foundry portal
      name: 'Math Tutor',
      instructions:
        'You are a personal math tutor. Write and run JavaScript code to answer math questions.',
      tools: [{ type: 'code_interpreter' }],
    };
    const role = 'user';
    const message = 'I need to solve the equation `3x + 11 = 14`. Can you help me?';
    const assistantResponse = await assistantsClient.beta.assistants.create(options);
    const assistantThread = await assistantsClient.beta.threads.create({});
    await assistantsClient.beta.threads.messages.create(assistantThread.id, { role, content: message });
    up.script(code('# calculation\nx = (14 - 11) / 3\nx'), { text: 'The solution to the equation (3x + 11 = 14) is (x = 1).' });
    const runResponse = await assistantsClient.beta.threads.runs.createAndPoll(
      assistantThread.id,
      { assistant_id: assistantResponse.id },
      { pollIntervalMs: 500 },
    );
    const printed = [];
    const runMessages = await assistantsClient.beta.threads.messages.list(assistantThread.id);
    for await (const runMessageDatum of runMessages) {
      for (const item of runMessageDatum.content) {
        if (item.type === 'text') printed.push(item.text?.value);
      }
    }
    // ---- checks ----
    assert.equal(runResponse.status, 'completed', JSON.stringify(runResponse.last_error));
    assert.deepEqual(printed, ['The solution to the equation (3x + 11 = 14) is (x = 1).', message]);
    // The sandbox really ran it: the trailing expression's value, as a
    // notebook shows it, went to the model and into the step.
    assert.deepEqual(toolMessages(up.requests[1]).map((c) => c.trim()), ['1.0']);
    const [ci] = await codeCalls(assistantsClient, assistantThread.id, runResponse.id);
    assert.equal(ci.code_interpreter.input, '# calculation\nx = (14 - 11) / 3\nx');
    assert.deepEqual(ci.code_interpreter.outputs, [{ type: 'logs', logs: '1.0\n' }]);

    // The seed's follow-up: "Show me the code you ran to get this solution."
    // The model is shown its earlier call and output in the history.
    up.script({ text: 'Sure. The code is very straightforward\n# calculation\nx = (14 - 11) / 3\nx' });
    await assistantsClient.beta.threads.messages.create(assistantThread.id, { role, content: 'Show me the code you ran to get this solution.' });
    const run2 = await assistantsClient.beta.threads.runs.createAndPoll(assistantThread.id, { assistant_id: assistantResponse.id }, { pollIntervalMs: 500 });
    assert.equal(run2.status, 'completed');
    const history = JSON.stringify(up.requests[2].body.messages);
    assert.match(history, /3x \+ 11 = 14/);
    assert.match(history, /The solution to the equation/);
    const latest = (await assistantsClient.beta.threads.messages.list(assistantThread.id, { limit: 1 })).data[0];
    assert.match(latest.content[0].text.value, /x = \(14 - 11\) \/ 3/);
  } finally {
    await t.close();
  }
});

// Seed 002's follow-up, "Show me the code you ran to get this solution.",
// was answered on OpenAI with the exact cell, comment included ("# calculation
// / x = (14 - 11) / 3 / x"): the model saw its earlier run's call. assistd
// sends a later run the thread's messages with the tool calls earlier runs
// made before their answers (src/run/prompt.c, history_units).
test('a later run shows the model the code_interpreter calls and outputs of the thread\'s earlier runs', {
  skip,
}, async () => {
  const t = await setupRuns();
  try {
    const { up, s } = t;
    const client = openaiClient(s);
    const a = await client.beta.assistants.create({ model: 'gpt-4o', name: 'Math Tutor', tools: [{ type: 'code_interpreter' }] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'I need to solve the equation `3x + 11 = 14`. Can you help me?' }] });
    up.script(code('# calculation\nx = (14 - 11) / 3\nx'), { text: 'x = 1' });
    await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 25 });
    up.script({ text: 'Sure.' });
    await client.beta.threads.messages.create(thread.id, { role: 'user', content: 'Show me the code you ran to get this solution.' });
    const r2 = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 25 });
    assert.equal(r2.status, 'completed');
    const sent = up.requests[2].body.messages;
    const call = sent.find((m) => m.role === 'assistant' && m.tool_calls);
    assert.ok(call, JSON.stringify(sent));
    assert.match(call.tool_calls[0].function.arguments, /# calculation/);
    assert.equal(sent.find((m) => m.role === 'tool')?.content.trim(), '1.0');
    // In the order the model produced them: question, call, output, answer, follow-up.
    assert.deepEqual(sent.map((m) => m.role + (m.tool_calls ? '+calls' : '')),
      ['user', 'assistant+calls', 'tool', 'assistant', 'user']);
    assert.equal(sent[2].tool_call_id, call.tool_calls[0].id);
    assert.equal(sent[3].content, 'x = 1');
  } finally {
    await t.close();
  }
});

test('seed 000 math tutor: the integral of x² from 0 to 3 is 9, computed by sympy in the sandbox', { skip }, async () => {
  const t = await setupRuns();
  try {
    const { up, s } = t;
    const openai = openaiClient(s);
    const assistant = await openai.beta.assistants.create({
      name: 'Math Tutor',
      instructions: 'You are a helpful math tutor. Write and run code to answer math questions.',
      model: 'gpt-4.1',
      tools: [{ type: 'code_interpreter' }],
    });
    const thread = await openai.beta.threads.create();
    const seedCode = "import math\nfrom sympy import *\nx = symbols('x')\nresult = integrate(x**2, (x, 0, 3))\nprint(result) # → 9";
    up.script(code(seedCode), {
      text: 'The definite integral of x² from 0 to 3 is 9.\n\nAnalytically: [x³/3] from 0 to 3 = 27/3 - 0 = 9. ✓',
    });
    // One turn of the seed's chat loop.
    const out = [];
    const userMessage = 'What is the definite integral of x² from 0 to 3?';
    await openai.beta.threads.messages.create(thread.id, { role: 'user', content: userMessage });
    const run = await openai.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id });
    if (run.status === 'completed') {
      const messages = await openai.beta.threads.messages.list(run.thread_id);
      for (const m of messages.data.reverse()) {
        if (m.role === 'assistant') out.push(m.content[0].text.value);
      }
    }
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    assert.deepEqual(out, ['The definite integral of x² from 0 to 3 is 9.\n\nAnalytically: [x³/3] from 0 to 3 = 27/3 - 0 = 9. ✓']);
    const [ci] = await codeCalls(openai, thread.id, run.id);
    assert.equal(ci.type, 'code_interpreter');
    assert.equal(ci.code_interpreter.input, seedCode);
    assert.deepEqual(ci.code_interpreter.outputs, [{ type: 'logs', logs: '9\n' }]);
    assert.deepEqual(toolMessages(up.requests[1]).map((c) => c.trim()), ['9']);
  } finally {
    await t.close();
  }
});

test('state persists across two runs of a thread and is not shared with another thread', { skip }, async () => {
  const t = await setupRuns();
  try {
    const { up, s } = t;
    const client = openaiClient(s);
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'code_interpreter' }] });
    const one = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Remember 1000 at 5 %.' }] });
    const two = await client.beta.threads.create({ messages: [{ role: 'user', content: 'What is the balance?' }] });
    up.script(code('principal = 1000\nrate = 0.05\nprint("stored")'), { text: 'Stored.' });
    const r1 = await client.beta.threads.runs.createAndPoll(one.id, { assistant_id: a.id }, { pollIntervalMs: 25 });
    assert.equal(r1.status, 'completed', JSON.stringify(r1.last_error));
    // Run 2 in the same thread uses the variables of run 1.
    up.script(code('round(principal * (1 + rate) ** 2, 2)'), { text: 'After two years: 1102.5.' });
    await client.beta.threads.messages.create(one.id, { role: 'user', content: 'And after two years?' });
    const r2 = await client.beta.threads.runs.createAndPoll(one.id, { assistant_id: a.id }, { pollIntervalMs: 25 });
    assert.equal(r2.status, 'completed');
    assert.deepEqual((await codeCalls(client, one.id, r2.id))[0].code_interpreter.outputs, [{ type: 'logs', logs: '1102.5\n' }]);
    // Another thread has its own interpreter: the name does not exist there.
    up.script(code('principal'), { text: 'Nothing is stored in this conversation.' });
    const r3 = await client.beta.threads.runs.createAndPoll(two.id, { assistant_id: a.id }, { pollIntervalMs: 25 });
    assert.equal(r3.status, 'completed');
    const logs = (await codeCalls(client, two.id, r3.id))[0].code_interpreter.outputs[0].logs;
    assert.match(logs, /NameError: name 'principal' is not defined/);
    assert.match(toolMessages(up.requests.at(-1))[0], /NameError/);
    // ... and defining it there leaves the first thread's value alone.
    up.script(code('principal = 5\nprincipal'), { text: '5' }, code('principal'), { text: '1000' });
    await client.beta.threads.messages.create(two.id, { role: 'user', content: 'Set 5.' });
    await client.beta.threads.runs.createAndPoll(two.id, { assistant_id: a.id }, { pollIntervalMs: 25 });
    await client.beta.threads.messages.create(one.id, { role: 'user', content: 'Principal?' });
    const r5 = await client.beta.threads.runs.createAndPoll(one.id, { assistant_id: a.id }, { pollIntervalMs: 25 });
    assert.deepEqual((await codeCalls(client, one.id, r5.id))[0].code_interpreter.outputs, [{ type: 'logs', logs: '1000\n' }]);
  } finally {
    await t.close();
  }
});

test('input files of the assistant, the thread and message attachments are in /mnt/data under their names; the chart is an image_file', { skip }, async () => {
  const t = await setupRuns();
  try {
    const { up, s } = t;
    const client = azureClient(s);
    const up1 = async (text, name) => client.files.create({ file: await toFile(Buffer.from(text), name), purpose: 'assistants' });
    const fa = await up1('server,hour,ms\nweb1,9,120\nweb1,10,180\nweb2,9,90\nweb2,10,240\n', 'server-metrics-february.csv');
    const fb = await up1('Nota bene: les données sont en millisecondes.\n', 'notes_équipe.txt');
    const fc = await up1('{"peak_hour": 10, "城市": "東京"}\n', 'données.json');
    const assistant = await client.beta.assistants.create({
      model: 'gpt-4o', tools: [{ type: 'code_interpreter' }],
      tool_resources: { code_interpreter: { file_ids: [fa.id] } },
    });
    const thread = await client.beta.threads.create({ tool_resources: { code_interpreter: { file_ids: [fb.id] } } });
    // Seed 001, step 5: the message with the file attached for code_interpreter.
    await client.beta.threads.messages.create(thread.id, {
      role: 'user',
      content: "I've uploaded server metrics for February. Can you analyze the data, "
        + 'find the peak usage hours, calculate the average response time by server, '
        + 'and create a chart showing response time trends?',
      attachments: [{ file_id: fc.id, tools: [{ type: 'code_interpreter' }] }],
    });
    const src = [
      'import os, json',
      'import pandas as pd',
      'import matplotlib.pyplot as plt',
      "print(sorted(os.listdir('/mnt/data')))",
      "print(open('/mnt/data/notes_équipe.txt', encoding='utf-8').read().strip())",
      "print(json.load(open('/mnt/data/données.json', encoding='utf-8'))['城市'])",
      "df = pd.read_csv('/mnt/data/server-metrics-february.csv')",
      "print(df.groupby('server').ms.mean().to_dict())",
      "_ = df.pivot(index='hour', columns='server', values='ms').plot(title='Response time')",
    ].join('\n');
    up.script(code(src), { text: 'web2 is slower on average; the chart shows the trend.' });
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, { pollIntervalMs: 25 });
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    const [ci] = await codeCalls(client, thread.id, run.id);
    const logs = ci.code_interpreter.outputs.find((o) => o.type === 'logs')?.logs;
    assert.equal(logs, [
      "['données.json', 'notes_équipe.txt', 'server-metrics-february.csv']",
      'Nota bene: les données sont en millisecondes.',
      '東京',
      "{'web1': 150.0, 'web2': 165.0}",
      '',
    ].join('\n'), JSON.stringify(ci.code_interpreter.outputs));
    // Seed 001: the reply's image_file is the chart, downloadable as PNG.
    const img = ci.code_interpreter.outputs.find((o) => o.type === 'image');
    assert.ok(img, JSON.stringify(ci.code_interpreter.outputs));
    const messages = await client.beta.threads.messages.list(thread.id, { order: 'desc', limit: 1 });
    const blocks = messages.data[0].content;
    const imageBlock = blocks.find((b) => b.type === 'image_file');
    assert.equal(imageBlock.image_file.file_id, img.image.file_id);
    const imageData = await client.files.content(imageBlock.image_file.file_id);
    const bytes = Buffer.from(await imageData.arrayBuffer());
    assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.equal(blocks.find((b) => b.type === 'text').text.value, 'web2 is slower on average; the chart shows the trend.');
    // The inputs were copies: the originals are unchanged and not outputs.
    assert.equal((await client.files.retrieve(fa.id)).purpose, 'assistants');
  } finally {
    await t.close();
  }
});

test('file_path annotations after emoji, CJK and combining marks: indexes in code points, the file downloads', { skip }, async () => {
  const t = await setupRuns();
  try {
    const { up, s } = t;
    const client = openaiClient(s);
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'code_interpreter' }] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Écris un CSV 📄' }] });
    const name = 'résumé_中文.csv';
    up.script(code(`open('/mnt/data/${name}', 'w', encoding='utf-8').write('clé,値\\n1,😀\\n')`));
    const link = `sandbox:/mnt/data/${name}`;
    const e = 'e\u0301';
    const answer = `😀 Voilà 👩‍👩‍👧 le fichier 中文 caf${e}: [${name}](${link}) 🎉 ${e}${e} et encore ${link}.`;
    up.script({ text: answer });
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 25 });
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    const text = (await client.beta.threads.messages.list(thread.id, { run_id: run.id })).data[0].content[0].text;
    assert.equal(text.value, answer);
    assert.equal(text.annotations.length, 2, JSON.stringify(text.annotations));
    const first = cpIndexOf(answer, link);
    const second = cpIndexOf(answer, link, answer.indexOf(link) + 1);
    const L = cps(link).length;
    assert.deepEqual(text.annotations.map((x) => [x.type, x.text, x.start_index, x.end_index]), [
      ['file_path', link, first, first + L],
      ['file_path', link, second, second + L], // the sentence's full stop is not part of it
    ]);
    for (const x of text.annotations) assert.equal(cpSlice(answer, x.start_index, x.end_index), link);
    // Code points, not UTF-16 units: the emoji before the link differ.
    assert.notEqual(first, answer.indexOf(link));
    assert.equal(text.annotations[0].file_path.file_id, text.annotations[1].file_path.file_id);
    const f = await client.files.retrieve(text.annotations[0].file_path.file_id);
    assert.equal(f.filename, name);
    assert.equal(f.purpose, 'assistants_output');
    assert.equal(await (await client.files.content(f.id)).text(), 'clé,値\n1,😀\n');

    // Streamed: the annotation arrives once, in a message delta with its
    // index and the same code-point offsets; the changed file is a new File.
    // The cell also draws a figure: the image_file part comes first, so the
    // text (and its annotation deltas) is content part 1.
    up.script(code(`open('/mnt/data/${name}', 'a', encoding='utf-8').write('2,🎉\\n')\nimport matplotlib.pyplot as plt\n_ = plt.plot([1, 2])`), { text: `🧑‍🍳 ${link} ✓` });
    await client.beta.threads.messages.create(thread.id, { role: 'user', content: 'Ajoute une ligne ➕' });
    const deltas = [];
    const stream = client.beta.threads.runs.stream(thread.id, { assistant_id: a.id });
    const parts = [];
    stream.on('event', (ev) => {
      if (ev.event !== 'thread.message.delta') return;
      for (const x of structuredClone(ev.data.delta.content)) {
        parts.push([x.index, x.type]);
        deltas.push(...(x.text?.annotations ?? []).map((an) => ({ ...an, part: x.index })));
      }
    });
    const [msg] = await stream.finalMessages();
    assert.deepEqual(msg.content.map((x) => x.type), ['image_file', 'text']);
    assert.deepEqual([...new Set(parts.map((x) => x.join(':')))], ['0:image_file', '1:text']);
    assert.equal(deltas.length, 1, JSON.stringify(deltas));
    const { part, ...d } = deltas[0];
    assert.equal(part, 1);
    assert.deepEqual([d.index, d.type, d.text, d.start_index, d.end_index], [0, 'file_path', link, 4, 4 + L]); // 🧑‍🍳 = 3 code points, 5 UTF-16 units
    const stored = (await client.beta.threads.messages.retrieve(msg.id, { thread_id: thread.id })).content[1].text;
    assert.deepEqual(stored.annotations, [(({ index, ...r }) => r)(d)]);
    assert.deepEqual(msg.content[1].text.annotations, [d]); // the SDK's merged snapshot
    assert.notEqual(d.file_path.file_id, f.id);
    assert.equal(await (await client.files.content(d.file_path.file_id)).text(), 'clé,値\n1,😀\n2,🎉\n');
  } finally {
    await t.close();
  }
});
