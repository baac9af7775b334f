// code_interpreter inside runs, with the seeds' examples: the model's code
// runs in the thread's sandboxed Python session, the output goes back to
// the model, the step shows input and outputs (streamed as step deltas),
// figures become image_file parts, generated files become Files with
// file_path annotations, and variables persist across runs of one thread
// but not between threads.
import test from 'node:test';
import assert from 'node:assert/strict';
import { toFile } from 'openai';
import { raw } from './lib/server.mjs';
import { setupRuns, parseSSE } from './lib/runs.mjs';

const poll = { pollIntervalMs: 25 };
const code = (src) => ({ tool_calls: [{ name: 'code_interpreter', arguments: JSON.stringify({ code: src }) }] });

async function codeStep(client, threadId, runId) {
  const steps = await client.beta.threads.runs.steps.list(runId, { thread_id: threadId, order: 'asc' });
  return steps.data.find((s) => s.type === 'tool_calls');
}

test('math tutor: the code runs, the model reads its output, the step has input and logs', async () => {
  const t = await setupRuns();
  try {
    const { client, up } = t;
    const a = await client.beta.assistants.create({
      model: 'gpt-4o', name: 'Math Tutor', tools: [{ type: 'code_interpreter' }],
      instructions: 'You are a personal math tutor. Write and run code to answer math questions.',
    });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'I need to solve the equation `3x + 11 = 14`. Can you help me?' }] });
    up.script(code('x = (14 - 11) / 3\nx'), { text: 'The solution is x = 1.' });
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, poll);
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    assert.deepEqual(up.requests[0].body.tools.map((x) => x.function.name), ['code_interpreter']);
    const tool = up.requests[1].body.messages.find((m) => m.role === 'tool');
    assert.equal(tool.content.trim(), '1.0');
    const st = await codeStep(client, thread.id, run.id);
    assert.equal(st.status, 'completed');
    const ci = st.step_details.tool_calls[0];
    assert.equal(ci.type, 'code_interpreter');
    assert.equal(ci.code_interpreter.input, 'x = (14 - 11) / 3\nx');
    assert.deepEqual(ci.code_interpreter.outputs, [{ type: 'logs', logs: '1.0\n' }]);

    // The seed's integral, with sympy; state kept: x is still 1.0 first.
    up.script(code('print(x)\nimport sympy as sp\nv = sp.symbols("v")\nsp.integrate(v**2, (v, 0, 3))'), { text: 'It is 9.' });
    await client.beta.threads.messages.create(thread.id, { role: 'user', content: 'Integrate x^2 from 0 to 3.' });
    const run2 = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, poll);
    assert.equal(run2.status, 'completed');
    const st2 = await codeStep(client, thread.id, run2.id);
    assert.equal(st2.step_details.tool_calls[0].code_interpreter.outputs[0].logs, '1.0\n9\n');

    // Another thread has its own session.
    const other = await client.beta.threads.create({ messages: [{ role: 'user', content: 'x?' }] });
    up.script(code('x'), { text: 'x is not defined.' });
    const run3 = await client.beta.threads.runs.createAndPoll(other.id, { assistant_id: a.id }, poll);
    const logs = (await codeStep(client, other.id, run3.id)).step_details.tool_calls[0].code_interpreter.outputs[0].logs;
    assert.match(logs, /NameError: name 'x' is not defined/);
  } finally {
    await t.close();
  }
});

test('sales chart: a figure becomes an image output, an image_file part of the reply, and a PNG file', async () => {
  const t = await setupRuns();
  try {
    const { client, up } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'code_interpreter' }] });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Chart the sales.' }] });
    up.script(code('import matplotlib.pyplot as plt\nplt.bar(["Q1","Q2"], [10, 14])\nplt.title("Sales")'), { text: 'Here is the chart.' });
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, poll);
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    const ci = (await codeStep(client, thread.id, run.id)).step_details.tool_calls[0].code_interpreter;
    const img = ci.outputs.find((o) => o.type === 'image');
    assert.ok(img, JSON.stringify(ci.outputs));
    const msgs = await client.beta.threads.messages.list(thread.id, { run_id: run.id });
    const content = msgs.data[0].content;
    assert.deepEqual(content[0], { type: 'image_file', image_file: { file_id: img.image.file_id, detail: 'auto' } });
    assert.equal(content[1].type, 'text');
    assert.equal(content[1].text.value, 'Here is the chart.');
    const f = await client.files.retrieve(img.image.file_id);
    assert.equal(f.purpose, 'assistants_output');
    const bytes = Buffer.from(await (await client.files.content(img.image.file_id)).arrayBuffer());
    assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  } finally {
    await t.close();
  }
});

test('CSV in, analysis, CSV out: input files under their names, the output a file_path annotation that downloads', async () => {
  const t = await setupRuns();
  try {
    const { client, up, s } = t;
    const csv = await client.files.create({ file: await toFile(Buffer.from('region,amount\nnorth,10\nsouth,5\nnorth,7\n'), 'sales.csv'), purpose: 'assistants' });
    const a = await client.beta.assistants.create({
      model: 'gpt-4o', tools: [{ type: 'code_interpreter' }],
      tool_resources: { code_interpreter: { file_ids: [csv.id] } },
    });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Total by region, as a CSV.' }] });
    const src = 'import pandas as pd\ndf = pd.read_csv("/mnt/data/sales.csv")\nt = df.groupby("region").amount.sum()\nt.to_csv("/mnt/data/totals.csv")\nprint(t.to_dict())';
    const answer = 'Done: [totals.csv](sandbox:/mnt/data/totals.csv).';
    up.script({ tool_calls: [{ name: 'code_interpreter', arguments: JSON.stringify({ code: src }) }] }, { text: answer });
    // Streamed: the input arrives as the model writes it, outputs after.
    const r = await raw(s, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: a.id, stream: true } });
    const ev = parseSSE(r.text);
    assert.equal(ev.at(-2).event, 'thread.run.completed', JSON.stringify(ev.at(-2).data.last_error));
    const deltas = ev.filter((e) => e.event === 'thread.run.step.delta').map((e) => e.data.delta.step_details.tool_calls[0]);
    assert.equal(deltas[0].type, 'code_interpreter');
    assert.equal(deltas[0].code_interpreter.input, '');
    const streamed = deltas.map((d) => d.code_interpreter?.input ?? '').join('');
    assert.equal(streamed, src);
    const out = deltas.find((d) => d.code_interpreter?.outputs?.length);
    assert.deepEqual(out.code_interpreter.outputs, [{ index: 0, type: 'logs', logs: "{'north': 17, 'south': 5}\n" }]);

    const run = ev.at(-2).data;
    const msgs = await client.beta.threads.messages.list(thread.id, { run_id: run.id });
    const text = msgs.data[0].content[0].text;
    assert.equal(text.value, answer);
    assert.equal(text.annotations.length, 1);
    const ann = text.annotations[0];
    assert.equal(ann.type, 'file_path');
    assert.equal(ann.text, 'sandbox:/mnt/data/totals.csv');
    assert.equal(text.value.slice(ann.start_index, ann.end_index), ann.text);
    const body = await (await client.files.content(ann.file_path.file_id)).text();
    assert.equal(body, 'region,amount\nnorth,17\nsouth,5\n');
    const f = await client.files.retrieve(ann.file_path.file_id);
    assert.equal(f.filename, 'totals.csv');
    // The model was told where the file is.
    assert.match(up.requests[1].body.messages.find((m) => m.role === 'tool').content, /sandbox:\/mnt\/data\/totals\.csv/);
  } finally {
    await t.close();
  }
});

test('input files whose names are no single path component still arrive (last component, else the file id)', async () => {
  const t = await setupRuns();
  try {
    const { client, up } = t;
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'code_interpreter' }] });
    const nested = await client.files.create({ file: await toFile(Buffer.from('a,b\n1,2\n'), 'exports/q1/data.csv'), purpose: 'assistants' });
    const dots = await client.files.create({ file: await toFile(Buffer.from('dots\n'), '..'), purpose: 'assistants' });
    const thread = await client.beta.threads.create({
      messages: [{
        role: 'user', content: 'Read them.',
        attachments: [nested.id, dots.id].map((file_id) => ({ file_id, tools: [{ type: 'code_interpreter' }] })),
      }],
    });
    up.script(code(`print(open("/mnt/data/data.csv").read().strip())\nprint(open("/mnt/data/${dots.id}").read().strip())`), { text: 'Read.' });
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, poll);
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    const ci = (await codeStep(client, thread.id, run.id)).step_details.tool_calls[0].code_interpreter;
    assert.deepEqual(ci.outputs, [{ type: 'logs', logs: 'a,b\n1,2\ndots\n' }]);
  } finally {
    await t.close();
  }
});
