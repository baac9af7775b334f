// The seed articles' file_search flows, run unchanged except for client
// construction (the seeds' AzureOpenAI / OpenAI clients pointed at assistd),
// against the real assistd with the scripted upstream playing the model:
//   * the vault runbook (seed 000, Node.js, AzureOpenAI): fileBatches.
//     uploadAndPoll of vault_info.txt, an assistant linked to the store,
//     createAndPoll, messages.list, the seed's citation-stripping regex;
//   * the monitoring guide (seed 001, Python AzureOpenAI, here its direct JS
//     equivalent): a PDF, a CSV and a Markdown file in a store created with
//     file_ids and NOT polled (the run waits for indexing), assistants.update
//     with tool_resources, runs.create and a retrieve loop;
//   * the Contoso sales JSON (seed 002, C#, here its JS equivalent):
//     monthly_sales.json through tool_resources.file_search.vector_stores,
//     createAndRun, messages in ascending order with their annotations.
// Checked: the answers, the file_citation annotations (file_id, exact
// start/end indexes verified by slicing the text), the run steps' results
// (scores in 0..1, content only with include[]), the stream's event order
// and its annotation deltas (each with its index, merged correctly by the
// SDK), and the numbered sources the model was sent.
//
// Annotation offsets and non-ASCII text: the spec (../shared/spec) defines
// start_index/end_index only as integers >= 0 and does not name a unit.
// OpenAI's service computed them in its Python backend, where string
// indexes are Unicode code points, and assistd follows that (README, "Runs":
// "start_index/end_index in Unicode code points, as OpenAI counted"). A
// JavaScript string indexes UTF-16 code units, so an astral-plane character
// (an emoji, a surrogate pair in JS) counts 1 here and 2 in String#slice;
// the tests slice with code points (cpSlice) and also check that the
// code-unit count differs, so they cannot pass by accident.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import OpenAI, { AzureOpenAI, toFile } from 'openai';
import { KEY, AZURE_API_VERSION } from './lib/server.mjs';
import { setupRuns } from './lib/runs.mjs';

// The Contoso seed also charts with code_interpreter when the sandbox
// (bubblewrap with every namespace unshared) can run on this machine.
const SANDBOX = spawnSync('bwrap', ['--unshare-all', '--die-with-parent', '--ro-bind', '/usr', '/usr',
  '--symlink', 'usr/bin', '/bin', '--symlink', 'usr/lib', '/lib', '--symlink', 'usr/lib64', '/lib64',
  '--proc', '/proc', '--dev', '/dev', '/usr/bin/true'], { timeout: 10000 }).status === 0;

const FIX = path.resolve(import.meta.dirname, '../fixtures/seeds');
const INCLUDE = 'step_details.tool_calls[*].file_search.results[*].content';
const LB = '\u3010';
const RB = '\u3011';
const DAGGER = '\u2020';

// The seeds' clients, with only the endpoint and key changed.
const azureClient = (s) => new AzureOpenAI({ endpoint: s.url, apiKey: KEY, apiVersion: AZURE_API_VERSION, maxRetries: 0 });
const openaiClient = (s) => new OpenAI({ baseURL: `${s.url}/v1`, apiKey: KEY, maxRetries: 0 });

// Code-point view of a string: OpenAI's (and assistd's) annotation unit.
const cps = (s) => Array.from(s);
const cpSlice = (s, a, b) => cps(s).slice(a, b).join('');
const cpIndexOf = (s, sub) => {
  const u = s.indexOf(sub);
  return u < 0 ? -1 : cps(s.slice(0, u)).length;
};

const fsCall = (...queries) => ({ tool_calls: [{ name: 'file_search', arguments: JSON.stringify({ queries }) }] });

// A scripted model step decided when its request arrives: make(req) returns
// the step's fields (text, tool_calls) from what assistd sent (req.body).
// The fixture reads step.wait when it consumes the step, right after
// logging the request, so the getter fills the step in from that request.
function dynamic(up, make) {
  const step = {};
  Object.defineProperty(step, 'wait', {
    enumerable: true,
    get() { Object.assign(step, make(up.requests.at(-1))); return Promise.resolve(); },
  });
  return step;
}

// The numbered sources the model was sent in the tool messages of a
// request: [{ marker, k, i, name, text }], in order.
function sourcesOf(req) {
  const out = [];
  for (const m of req.body.messages.filter((x) => x.role === 'tool')) {
    const re = /\u3010(\d+):(\d+)\u2020([^\u3011\n]+)\u3011\n/g;
    const heads = [...m.content.matchAll(re)];
    heads.forEach((h, j) => {
      // Sources are separated by a blank line: "\n\n" before each marker.
      const end = j + 1 < heads.length ? heads[j + 1].index - 2 : m.content.length;
      out.push({ marker: h[0].slice(0, -1), k: Number(h[1]), i: Number(h[2]), name: h[3], text: m.content.slice(h.index + h[0].length, end) });
    });
  }
  return out;
}
const markerFor = (req, name) => {
  const s = sourcesOf(req).find((x) => x.name === name);
  assert.ok(s, `no source named ${name} in ${JSON.stringify(sourcesOf(req).map((x) => x.marker))}`);
  return s.marker;
};

// Each annotation's text is exactly the text at [start_index, end_index)
// counted in code points, and the indexes are increasing.
function assertAnnotationsExact(text) {
  let prev = 0;
  for (const a of text.annotations) {
    assert.equal(cpSlice(text.value, a.start_index, a.end_index), a.text, JSON.stringify(a));
    assert.ok(a.start_index >= prev && a.end_index > a.start_index);
    prev = a.end_index;
  }
}

async function fileSearchStep(client, threadId, runId, include) {
  const steps = await client.beta.threads.runs.steps.list(runId, { thread_id: threadId, order: 'asc', ...(include ? { include: [INCLUDE] } : {}) });
  return steps.data.filter((s) => s.type === 'tool_calls');
}

test('seed 000, vault runbook (AzureOpenAI): uploadAndPoll, createAndPoll, cited answer, steps, stream', async () => {
  const t = await setupRuns();
  try {
    const { up, s } = t;
    const openai = azureClient(s);
    // ---- the seed's code (file_search.js) ----
    const vectorStore = await openai.vectorStores.create({
      name: 'Secure Knowledge Base',
    });
    const fileStream = fs.createReadStream(path.join(FIX, 'vault_info.txt'));
    const batch = await openai.vectorStores.fileBatches.uploadAndPoll(vectorStore.id, {
      files: [fileStream],
    });
    const assistant = await openai.beta.assistants.create({
      name: 'Security Guard',
      instructions: 'You are a secure document assistant. Use the file_search tool to answer questions.',
      model: 'gpt-4.1',
      tools: [{ type: 'file_search' }],
      tool_resources: {
        file_search: { vector_store_ids: [vectorStore.id] },
      },
    });
    const thread = await openai.beta.threads.create();
    // The seed's answer, marker and all: 【4:0†vault_info.txt】.
    const seedAnswer = 'Access to the vault is restricted to personnel with security clearance level 3 or\n'
      + 'above, and requires two-factor authentication for every session. All access\n'
      + 'attempts are logged and reviewed weekly\u30104:0\u2020vault_info.txt\u3011.';
    up.script(fsCall('who may access the vault'), { text: seedAnswer });
    await openai.beta.threads.messages.create(thread.id, { role: 'user', content: 'Who is allowed to access the vault?' });
    const run = await openai.beta.threads.runs.createAndPoll(thread.id, {
      assistant_id: assistant.id,
    });
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    const printed = [];
    if (run.status === 'completed') {
      const messages = await openai.beta.threads.messages.list(run.thread_id);
      for (const message of messages.data.reverse()) {
        if (message.role === 'assistant') printed.push(message.content[0].text.value);
      }
    }
    // ---- checks ----
    assert.equal(batch.status, 'completed');
    assert.deepEqual(batch.file_counts, { in_progress: 0, completed: 1, failed: 0, cancelled: 0, total: 1 });
    const [vf] = (await openai.vectorStores.files.list(vectorStore.id)).data;
    const fileId = vf.id;
    assert.equal((await openai.files.retrieve(fileId)).filename, 'vault_info.txt');
    assert.deepEqual(printed, [seedAnswer]);
    // The seed's UI clean-up regex leaves the plain answer.
    const clean = printed[0].replace(/【[^】]*】/g, '').trim();
    assert.ok(clean.endsWith('reviewed weekly.'), clean);
    assert.ok(!clean.includes(LB));

    // What the model was sent: the tool offered, then the numbered source.
    assert.deepEqual(up.requests[0].body.tools.map((x) => x.function.name), ['file_search']);
    assert.equal(up.requests[0].body.model, 'gpt-4.1');
    const src = sourcesOf(up.requests[1]);
    assert.equal(src.length, 1);
    assert.equal(src[0].marker, `${LB}0:0${DAGGER}vault_info.txt${RB}`);
    assert.match(src[0].text, /security clearance level 3 or above/);
    const toolMsg = up.requests[1].body.messages.find((m) => m.role === 'tool');
    assert.ok(toolMsg.content.startsWith(`${src[0].marker}\n`));

    // The seed's 【4:0†…】 names no result by number (the run made one
    // search, K=0) but names the file: it is still cited, exactly.
    const msg = (await openai.beta.threads.messages.list(thread.id, { run_id: run.id })).data[0];
    const text = msg.content[0].text;
    assert.equal(text.annotations.length, 1);
    const ann = text.annotations[0];
    assert.equal(ann.type, 'file_citation');
    assert.equal(ann.text, `${LB}4:0${DAGGER}vault_info.txt${RB}`);
    assert.deepEqual(ann.file_citation, { file_id: fileId });
    assert.equal(ann.start_index, seedAnswer.indexOf(LB)); // ASCII before it: all units agree
    assert.equal(ann.end_index, seedAnswer.length - 1);
    assertAnnotationsExact(text);

    // The run step: ranking options and results; content only on request.
    const [st] = await fileSearchStep(openai, thread.id, run.id);
    const call = st.step_details.tool_calls[0];
    assert.equal(call.type, 'file_search');
    assert.equal(call.id, up.requests[1].body.messages.find((m) => m.tool_calls).tool_calls[0].id);
    assert.equal(call.file_search.results.length, 1);
    const res = call.file_search.results[0];
    assert.equal(res.file_id, fileId);
    assert.equal(res.file_name, 'vault_info.txt');
    assert.ok(res.score > 0 && res.score <= 1, String(res.score));
    assert.equal(res.content, undefined);
    const [stc] = await fileSearchStep(openai, thread.id, run.id, true);
    const quote = stc.step_details.tool_calls[0].file_search.results[0].content;
    assert.equal(quote.length, 1);
    assert.equal(quote[0].type, 'text');
    assert.equal(quote[0].text, src[0].text, 'the quote is the chunk the model read');
    const one = await openai.beta.threads.runs.steps.retrieve(st.id, { thread_id: thread.id, run_id: run.id, include: [INCLUDE] });
    assert.deepEqual(one.step_details.tool_calls[0].file_search.results[0].content, quote);

    // Streamed follow-up through the SDK helper: two citations (two
    // results of one search, by their numbers), event order, annotation
    // deltas with their index, and the SDK's merged snapshot equal to the
    // stored message.
    up.script(fsCall('vault sealed unsealed schedule', 'vault access clearance'), dynamic(up, (req) => {
      const m = markerFor(req, 'vault_info.txt');
      return { text: `Sealed at 23:00 ${m} and unsealed at 07:00 by the duty officer ${m}.` };
    }));
    await openai.beta.threads.messages.create(thread.id, { role: 'user', content: 'When is the vault sealed?' });
    const events = [];
    const stream = openai.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id });
    // Cloned on arrival: the SDK's snapshot reuses (and later grows) the
    // arrays of the first delta it saw.
    stream.on('event', (e) => events.push(structuredClone(e)));
    const finalRun = await stream.finalRun();
    const [snapshot] = await stream.finalMessages();
    assert.equal(finalRun.status, 'completed', JSON.stringify(finalRun.last_error));
    const names = events.map((e) => e.event).filter((n, i, a) => !(n.endsWith('.delta') && a[i - 1] === n));
    assert.deepEqual(names, [
      'thread.run.created', 'thread.run.queued', 'thread.run.in_progress',
      'thread.run.step.created', 'thread.run.step.in_progress', 'thread.run.step.delta', 'thread.run.step.completed',
      'thread.run.step.created', 'thread.run.step.in_progress',
      'thread.message.created', 'thread.message.in_progress', 'thread.message.delta', 'thread.message.completed',
      'thread.run.step.completed', 'thread.run.completed',
    ]);
    const firstStep = events.find((e) => e.event === 'thread.run.step.created').data;
    assert.equal(firstStep.type, 'tool_calls');
    const stepDelta = events.find((e) => e.event === 'thread.run.step.delta').data;
    assert.equal(stepDelta.delta.step_details.tool_calls[0].type, 'file_search');
    assert.equal(stepDelta.delta.step_details.tool_calls[0].index, 0);
    const annDeltas = events.filter((e) => e.event === 'thread.message.delta')
      .flatMap((e) => e.data.delta.content.flatMap((c) => c.text?.annotations ?? []));
    const stored = (await openai.beta.threads.messages.retrieve(snapshot.id, { thread_id: thread.id })).content[0].text;
    assert.equal(stored.annotations.length, 2);
    assert.deepEqual(annDeltas.map((a) => a.index), [0, 1], 'each annotation once, with its index');
    annDeltas.forEach((a, i) => {
      const { index, ...rest } = a;
      assert.equal(index, i);
      assert.deepEqual(rest, stored.annotations[i]);
    });
    const completedAt = events.findIndex((e) => e.event === 'thread.message.completed');
    assert.ok(events.findLastIndex((e) => e.event === 'thread.message.delta' && e.data.delta.content[0].text?.annotations?.length) < completedAt);
    // The SDK keeps each annotation's delta index in its snapshot.
    const noIndex = (x) => x.annotations.map(({ index, ...r }) => r);
    assert.equal(snapshot.content[0].text.value, stored.value);
    assert.deepEqual(noIndex(snapshot.content[0].text), stored.annotations, 'the SDK-merged snapshot equals the stored message');
    assertAnnotationsExact(stored);
    for (const a of stored.annotations) assert.deepEqual(a.file_citation, { file_id: fileId });
    // The step event carried no content; the step with include[] does.
    const doneStep = events.find((e) => e.event === 'thread.run.step.completed' && e.data.type === 'tool_calls').data;
    assert.equal(doneStep.step_details.tool_calls[0].file_search.results[0].content, undefined);
    assert.ok(doneStep.step_details.tool_calls[0].file_search.results.every((r) => r.score >= 0 && r.score <= 1));
  } finally {
    await t.close();
  }
});

test('seed 001, monitoring guide (Azure, JS equivalent): PDF + CSV + Markdown, unpolled store, runs.create and retrieve loop', async () => {
  const t = await setupRuns();
  try {
    const { up, s } = t;
    const client = azureClient(s);
    const assistantFirst = await client.beta.assistants.create({
      name: 'Data Analysis Assistant',
      instructions: `You are a data analysis assistant for a monitoring company.
    You help users understand their data by searching through uploaded documents
    and performing calculations. When asked about data, first check the uploaded
    files for relevant information. When calculations or charts are needed, use
    the code interpreter. Always explain your reasoning and show your work.`,
      model: 'gpt-4o',
      tools: [{ type: 'file_search' }, { type: 'code_interpreter' }],
    });
    const uploadedFiles = [];
    const file1 = await client.files.create({ file: fs.createReadStream(path.join(FIX, 'monitoring-guide.pdf')), purpose: 'assistants' });
    uploadedFiles.push(file1.id);
    const file2 = await client.files.create({ file: fs.createReadStream(path.join(FIX, 'monthly-metrics.csv')), purpose: 'assistants' });
    uploadedFiles.push(file2.id);
    const file3 = await client.files.create({ file: fs.createReadStream(path.join(FIX, 'q4-incident-report.md')), purpose: 'assistants' });
    uploadedFiles.push(file3.id);
    // The seed creates the store with file_ids and does not wait for it.
    const vectorStore = await client.vectorStores.create({ name: 'Company Knowledge Base', file_ids: uploadedFiles });
    assert.ok(['in_progress', 'completed'].includes(vectorStore.status));
    assert.equal(vectorStore.file_counts.total, 3);
    const assistant = await client.beta.assistants.update(assistantFirst.id, {
      tool_resources: { file_search: { vector_store_ids: [vectorStore.id] } },
    });
    assert.deepEqual(assistant.tool_resources.file_search.vector_store_ids, [vectorStore.id]);

    const thread = await client.beta.threads.create();
    await client.beta.threads.messages.create(thread.id, {
      role: 'user',
      content: 'What are the recommended alert thresholds for HTTP monitoring according to our documentation?',
    });
    let answer;
    up.script(fsCall('recommended HTTP alert thresholds', 'HTTP alert threshold incident'), dynamic(up, (req) => {
      const pdf = markerFor(req, 'monitoring-guide.pdf');
      const md = markerFor(req, 'q4-incident-report.md');
      answer = `The guide recommends a warning above 500 ms and paging above 2 seconds ${pdf}. `
        + `After INC-2024-117 the checkout threshold is to be lowered to 1.5 seconds ${md}.`;
      return { text: answer };
    }));
    const run = await client.beta.threads.runs.create(thread.id, { assistant_id: assistant.id });
    // wait_for_run, as in the seed (polling every 0.2 s instead of 2 s).
    let completedRun;
    for (;;) {
      const r = await client.beta.threads.runs.retrieve(run.id, { thread_id: thread.id });
      if (['completed', 'failed', 'requires_action', 'cancelling', 'cancelled', 'expired'].includes(r.status)) { completedRun = r; break; }
      await new Promise((res) => setTimeout(res, 200));
    }
    assert.equal(completedRun.status, 'completed', JSON.stringify(completedRun.last_error));
    assert.ok(completedRun.usage.prompt_tokens > 0);
    const messages = await client.beta.threads.messages.list(thread.id, { order: 'desc', limit: 1 });
    const sources = [];
    let printed;
    for (const message of messages.data) {
      if (message.role === 'assistant') {
        for (const block of message.content) {
          if (block.type === 'text') {
            printed = block.text.value;
            for (const annotation of block.text.annotations) {
              if (annotation.type === 'file_citation') sources.push(annotation.file_citation.file_id);
            }
          }
        }
      }
    }
    assert.equal(printed, answer);
    assert.deepEqual(sources, [file1.id, file3.id]);
    assertAnnotationsExact(messages.data[0].content[0].text);

    // The store had been indexed by the time of the search (the run waited),
    // and the PDF reached the model as its text, not as PDF syntax.
    const store = await client.vectorStores.retrieve(vectorStore.id);
    assert.deepEqual(store.file_counts, { in_progress: 0, completed: 3, failed: 0, cancelled: 0, total: 3 });
    const src = sourcesOf(up.requests[1]);
    const pdfSrc = src.find((x) => x.name === 'monitoring-guide.pdf');
    assert.match(pdfSrc.text, /warn when the response\s+time exceeds 500 ms/);
    assert.doesNotMatch(pdfSrc.text, /endobj|\/Type|%PDF/);
    // One search with two queries: every result numbered under K=0.
    assert.ok(src.every((x) => x.k === 0));
    assert.deepEqual(src.map((x) => x.i), src.map((_, i) => i));
    // The step's results are the sources, in the same order.
    const [st] = await fileSearchStep(client, thread.id, run.id, true);
    const results = st.step_details.tool_calls[0].file_search.results;
    assert.deepEqual(results.map((r) => r.file_name), src.map((x) => x.name));
    assert.deepEqual(results.map((r) => r.content[0].text), src.map((x) => x.text));
    for (let i = 1; i < results.length; i++) assert.ok(results[i - 1].score >= results[i].score, 'best first');
  } finally {
    await t.close();
  }
});

test('seed 002, Contoso sales RAG (JS equivalent): monthly_sales.json via vector_stores helper, createAndRun, annotations', async () => {
  const t = await setupRuns();
  try {
    const { up, s } = t;
    const client = azureClient(s);
    const document = `{
    "description": "This document contains the sale history data for Contoso products.",
    "sales": [
        {
            "month": "January",
            "by_product": {
                "113043": 15,
                "113045": 12,
                "113049": 2
            }
        },
        {
            "month": "February",
            "by_product": {
                "113045": 22
            }
        },
        {
            "month": "March",
            "by_product": {
                "113045": 16,
                "113055": 5
            }
        }
    ]
}`;
    const salesFile = await client.files.create({ file: await toFile(Buffer.from(document), 'monthly_sales.json'), purpose: 'assistants' });
    const assistant = await client.beta.assistants.create({
      model: 'gpt-4o',
      name: 'Example: Contoso sales RAG',
      instructions: 'You are an assistant that looks up sales data and helps visualize the information based'
        + ' on user queries. When asked to generate a graph, chart, or other visualization, use'
        + ' the code interpreter tool to do so.',
      tools: [{ type: 'file_search' }, { type: 'code_interpreter' }],
      tool_resources: { file_search: { vector_stores: [{ file_ids: [salesFile.id] }] } },
    });
    const [storeId] = assistant.tool_resources.file_search.vector_store_ids;
    assert.match(storeId, /^vs_/);
    let answer;
    // The model searches, charts what it read (when the sandbox can run),
    // then answers citing the file.
    const plot = 'import matplotlib.pyplot as plt\nplt.plot(["January", "February", "March"], [12, 22, 16], marker="o")\n'
      + 'plt.title("Product 113045 sales")\nprint(max([12, 22, 16]))';
    up.script(fsCall('product 113045 sales by month'), ...(SANDBOX ? [{ tool_calls: [{ name: 'code_interpreter', arguments: JSON.stringify({ code: plot }) }] }] : []), dynamic(up, (req) => {
      const m = markerFor(req, 'monthly_sales.json');
      answer = `Product 113045 sold 22 units in February ${m}, up from 12 in January and ahead of March (16) ${m}.`;
      return { text: answer };
    }));
    let threadRun = await client.beta.threads.createAndRun({
      assistant_id: assistant.id,
      thread: { messages: [{ role: 'user', content: 'How well did product 113045 sell in February? Graph its trend over time.' }] },
    });
    do {
      await new Promise((r) => setTimeout(r, 100));
      threadRun = await client.beta.threads.runs.retrieve(threadRun.id, { thread_id: threadRun.thread_id });
    } while (!['completed', 'failed', 'cancelled', 'expired', 'incomplete', 'requires_action'].includes(threadRun.status));
    assert.equal(threadRun.status, 'completed', JSON.stringify(threadRun.last_error));

    // The C# program's printing loop: text, a blank line and the
    // annotations, and each image downloaded and named.
    let out = '';
    const images = [];
    for await (const message of client.beta.threads.messages.list(threadRun.thread_id, { order: 'asc' })) {
      out += `[${message.role.toUpperCase()}]: `;
      for (const contentItem of message.content) {
        if (contentItem.type === 'text') {
          out += `${contentItem.text.value}\n`;
          if (contentItem.text.annotations.length > 0) out += '\n';
          for (const annotation of contentItem.text.annotations) {
            if (annotation.type === 'file_citation') out += `* File citation, file ID: ${annotation.file_citation.file_id}\n`;
            if (annotation.type === 'file_path') out += `* File output, new file ID: ${annotation.file_path.file_id}\n`;
          }
        }
        if (contentItem.type === 'image_file') {
          const imageFile = await client.files.retrieve(contentItem.image_file.file_id);
          const imageBytes = Buffer.from(await (await client.files.content(contentItem.image_file.file_id)).arrayBuffer());
          images.push(imageBytes);
          out += `<image: ${imageFile.filename}.png>\n`;
        }
      }
      out += '\n';
    }
    const imageLine = SANDBOX ? /<image: [^>\n]+\.png>\n/.exec(out)?.[0] : '';
    assert.ok(imageLine !== undefined, out);
    assert.equal(out, '[USER]: How well did product 113045 sell in February? Graph its trend over time.\n\n'
      + `[ASSISTANT]: ${imageLine}${answer}\n\n`
      + `* File citation, file ID: ${salesFile.id}\n* File citation, file ID: ${salesFile.id}\n\n`);
    if (SANDBOX) {
      assert.equal(images.length, 1);
      assert.deepEqual([...images[0].subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      // The chart's code ran on what the search returned: its output went back.
      const ciOut = up.requests[2].body.messages.filter((m) => m.role === 'tool').at(-1).content;
      assert.match(ciOut, /^22\n/);
      assert.match(ciOut, /figure was shown to the user/);
    }
    // The model read the JSON text of the file, numbered 【0:0†monthly_sales.json】.
    const src = sourcesOf(up.requests[1]);
    assert.equal(src[0].marker, `${LB}0:0${DAGGER}monthly_sales.json${RB}`);
    assert.match(src[0].text, /"February",\s+"by_product": \{\s+"113045": 22/);
    const msgs = await client.beta.threads.messages.list(threadRun.thread_id, { order: 'desc', limit: 1 });
    assertAnnotationsExact(msgs.data[0].content.find((c) => c.type === 'text').text);
    const store = await client.vectorStores.retrieve(storeId);
    assert.deepEqual(store.file_counts, { in_progress: 0, completed: 1, failed: 0, cancelled: 0, total: 1 });
  } finally {
    await t.close();
  }
});

test('annotation offsets with non-ASCII text: emoji (surrogate pairs), CJK and combining marks before and between markers', async () => {
  const t = await setupRuns();
  try {
    const { up, s } = t;
    const client = openaiClient(s);
    const vault = await client.files.create({ file: fs.createReadStream(path.join(FIX, 'vault_info.txt')), purpose: 'assistants' });
    const cv = await client.files.create({ file: await toFile(Buffer.from('Lebenslauf: Zoë Ångström, Köchin in Zürich. 履歴書の例です。\n'), 'résumé_中文.txt'), purpose: 'assistants' });
    const vs = await client.vectorStores.create({ name: 'ünïcödé 📚', file_ids: [vault.id, cv.id] });
    for (let i = 0; i < 300 && (await client.vectorStores.retrieve(vs.id)).status !== 'completed'; i++) await new Promise((r) => setTimeout(r, 25));
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'file_search' }], tool_resources: { file_search: { vector_store_ids: [vs.id] } } });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Wer ist Zoë? 🤔' }] });
    // Two searches in one run: the second's sources are numbered K=1.
    const e = 'e\u0301'; // e + COMBINING ACUTE ACCENT: 2 code points, 1 grapheme
    let answer;
    up.script(fsCall('Zoë Ångström Köchin'), fsCall('vault clearance level'), dynamic(up, (req) => {
      const m1 = markerFor(req, 'résumé_中文.txt');
      const m2 = markerFor(req, 'vault_info.txt');
      answer = `😀 Zoë 👩‍👩‍👧 ist Köchin in 中文 Zürich ${m1}; caf${e}${e} 𝄞${m2}🎉 end ${m1}`;
      return { text: answer };
    }));
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 25 });
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    const src = sourcesOf(up.requests[2]);
    assert.equal(src.find((x) => x.name === 'résumé_中文.txt').marker, `${LB}0:0${DAGGER}résumé_中文.txt${RB}`);
    assert.equal(src.find((x) => x.name === 'vault_info.txt').marker, `${LB}1:0${DAGGER}vault_info.txt${RB}`);
    const text = (await client.beta.threads.messages.list(thread.id, { run_id: run.id })).data[0].content[0].text;
    assert.equal(text.value, answer);
    assert.equal(text.annotations.length, 3);
    const m1 = `${LB}0:0${DAGGER}résumé_中文.txt${RB}`;
    const m2 = `${LB}1:0${DAGGER}vault_info.txt${RB}`;
    const first = cpIndexOf(answer, m1);
    const second = cpIndexOf(answer, m2);
    const third = cps(answer).length - cps(m1).length;
    assert.deepEqual(text.annotations.map((x) => [x.start_index, x.end_index, x.file_citation.file_id]), [
      [first, first + cps(m1).length, cv.id],
      [second, second + cps(m2).length, vault.id],
      [third, third + cps(m1).length, cv.id],
    ]);
    // Code points, not UTF-16 units (JS length) nor UTF-8 bytes: the prefix
    // holds astral characters, so the three counts differ.
    assert.notEqual(first, answer.indexOf(m1));
    assert.notEqual(first, Buffer.byteLength(answer.slice(0, answer.indexOf(m1))));
    assert.equal(first, 36); // 😀·Zoë·👩‍👩‍👧(5 code points)·ist·Köchin·in·中文·Zürich· (40 UTF-16 units, 59 bytes)
    assertAnnotationsExact(text);
    // The streamed deltas carry the same indexes.
    up.script(fsCall('Zoë'), dynamic(up, (req) => ({ text: `🧑‍🍳 ${markerFor(req, 'résumé_中文.txt')} ✓` })));
    await client.beta.threads.messages.create(thread.id, { role: 'user', content: 'Nochmal 🙂' });
    const stream = client.beta.threads.runs.stream(thread.id, { assistant_id: a.id });
    const deltas = [];
    stream.on('event', (ev) => { if (ev.event === 'thread.message.delta') deltas.push(...structuredClone(ev.data.delta.content[0].text?.annotations ?? [])); });
    const [msg] = await stream.finalMessages();
    assert.equal(deltas.length, 1);
    assert.equal(deltas[0].start_index, 4); // 🧑‍🍳 is 3 code points (5 UTF-16 units), then a space
    assert.equal(deltas[0].end_index, 4 + cps(m1).length);
    assert.deepEqual(msg.content[0].text.annotations[0], deltas[0]); // the SDK's snapshot keeps index
    assertAnnotationsExact(msg.content[0].text);
  } finally {
    await t.close();
  }
});

test('two file_search calls in one model turn: sources numbered K=0 and K=1, both cited, the step lists both calls', async () => {
  const t = await setupRuns();
  try {
    const { up, s } = t;
    const client = openaiClient(s);
    const vault = await client.files.create({ file: fs.createReadStream(path.join(FIX, 'vault_info.txt')), purpose: 'assistants' });
    const report = await client.files.create({ file: fs.createReadStream(path.join(FIX, 'q4-incident-report.md')), purpose: 'assistants' });
    const vs = await client.vectorStores.create({ file_ids: [vault.id, report.id] });
    for (let i = 0; i < 300 && (await client.vectorStores.retrieve(vs.id)).status !== 'completed'; i++) await new Promise((r) => setTimeout(r, 25));
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'file_search' }], tool_resources: { file_search: { vector_store_ids: [vs.id] } } });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Vault hours and the checkout incident?' }] });
    up.script({ tool_calls: [
      { name: 'file_search', arguments: JSON.stringify({ queries: ['vault sealed unsealed'] }) },
      { name: 'file_search', arguments: JSON.stringify({ queries: ['checkout incident latency'] }) },
    ] }, dynamic(up, (req) => ({
      text: `Sealed at 23:00 ${markerFor(req, 'vault_info.txt')}; checkout p95 hit 2.4 s ${markerFor(req, 'q4-incident-report.md')}.`,
    })));
    const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: a.id }, { pollIntervalMs: 25 });
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    const tools = up.requests[1].body.messages.filter((m) => m.role === 'tool');
    assert.equal(tools.length, 2);
    assert.match(tools[0].content, /^\u30100:0\u2020vault_info\.txt\u3011\n/);
    assert.match(tools[1].content, /^\u30101:0\u2020q4-incident-report\.md\u3011\n/);
    const text = (await client.beta.threads.messages.list(thread.id, { run_id: run.id })).data[0].content[0].text;
    assert.deepEqual(text.annotations.map((x) => x.file_citation.file_id), [vault.id, report.id]);
    assertAnnotationsExact(text);
    const [st] = await fileSearchStep(client, thread.id, run.id);
    assert.deepEqual(st.step_details.tool_calls.map((c) => c.file_search.results[0].file_name), ['vault_info.txt', 'q4-incident-report.md']);
  } finally {
    await t.close();
  }
});

// createRun documents include[] as "additional fields to include in the
// response"; with stream:true the response is the stream, so its step
// events should carry the result content, as listRunSteps/getRunStep do.
test('include[] on a streamed createRun: the streamed file_search step carries the result content', async () => {
  const t = await setupRuns();
  try {
    const { up, s } = t;
    const client = openaiClient(s);
    const vault = await client.files.create({ file: fs.createReadStream(path.join(FIX, 'vault_info.txt')), purpose: 'assistants' });
    const vs = await client.vectorStores.create({ file_ids: [vault.id] });
    for (let i = 0; i < 300 && (await client.vectorStores.retrieve(vs.id)).status !== 'completed'; i++) await new Promise((r) => setTimeout(r, 25));
    const a = await client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'file_search' }], tool_resources: { file_search: { vector_store_ids: [vs.id] } } });
    const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: 'Who may enter the vault?' }] });
    up.script(fsCall('vault access'), { text: `Clearance level 3 ${LB}0:0${DAGGER}vault_info.txt${RB}.` });
    const events = [];
    const stream = client.beta.threads.runs.stream(thread.id, { assistant_id: a.id, include: [INCLUDE] });
    stream.on('event', (e) => events.push(structuredClone(e)));
    const finalRun = await stream.finalRun();
    assert.equal(finalRun.status, 'completed');
    const done = events.find((e) => e.event === 'thread.run.step.completed' && e.data.type === 'tool_calls').data;
    const result = done.step_details.tool_calls[0].file_search.results[0];
    assert.ok(Array.isArray(result.content), JSON.stringify(result));
    assert.match(result.content[0].text, /security clearance level 3/);
    // Step deltas keep file_search as {} (the spec: "always going to be an
    // empty object"); results come with step.completed. A stream without
    // include[] gets them without content.
    const fsDeltas = events.filter((e) => e.event === 'thread.run.step.delta').map((e) => e.data.delta.step_details.tool_calls[0]);
    assert.ok(fsDeltas.length >= 1);
    for (const d of fsDeltas) assert.deepEqual(d.file_search, {}, JSON.stringify(d));
    await client.beta.threads.messages.create(thread.id, { role: 'user', content: 'And again?' });
    up.script(fsCall('vault access'), { text: 'Level 3.' });
    const plain = [];
    const s2 = client.beta.threads.runs.stream(thread.id, { assistant_id: a.id });
    s2.on('event', (e) => plain.push(structuredClone(e)));
    assert.equal((await s2.finalRun()).status, 'completed');
    const done2 = plain.find((e) => e.event === 'thread.run.step.completed' && e.data.type === 'tool_calls').data;
    assert.equal(done2.step_details.tool_calls[0].file_search.results[0].content, undefined);
  } finally {
    await t.close();
  }
});
