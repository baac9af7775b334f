// Seed 004 ("Streaming Architecture", "Complete Conversation Flow") through
// the official SDK, its code unchanged except for the client: a run created
// with stream: true and read with for-await, requires_action answered
// inside the loop with submitToolOutputs({ stream: true }) -- whose stream
// the seed never reads. OpenAI ended the first stream after
// requires_action and ran the rest of the run server-side whether or not
// anyone read the second stream; assistd must too: the unread stream must
// not hold the run (or the thread) up, and the next turn must work.
import test from 'node:test';
import assert from 'node:assert/strict';
import { setupRuns as setup } from './lib/runs.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The seed's tools, verbatim (004_…txt, "Implementing Custom Function Calling";
// assistants.test.mjs runs that snippet itself).
const tools = [
  {
    type: 'function',
    function: {
      name: 'get_order_status',
      description: 'Get the current status of an order by order ID',
      parameters: {
        type: 'object',
        properties: {
          orderId: { type: 'string', description: 'The order ID to look up' },
          email: { type: 'string', description: 'Customer email for verification' },
        },
        required: ['orderId', 'email'],
      },
    },
  },
  {
    type: 'function',
    function: {
      name: 'initiate_return',
      description: 'Start a return process for an order item',
      parameters: {
        type: 'object',
        properties: {
          orderId: { type: 'string' },
          itemId: { type: 'string' },
          reason: { type: 'string', enum: ['defective', 'wrong_item', 'not_needed', 'other'] },
        },
        required: ['orderId', 'itemId', 'reason'],
      },
    },
  },
];

// The application's order service the seed calls into (a test double).
function orderServiceFor(calls) {
  return {
    async getStatus(orderId, email) {
      calls.push(['getStatus', orderId, email]);
      return { orderId, status: 'shipped', carrier: 'UPS' };
    },
    async initiateReturn(args) {
      calls.push(['initiateReturn', args]);
      return { returnId: 'RET-77', ...args };
    },
  };
}

// The seed's handleToolCalls and chat(), TypeScript annotations removed.
function seedCode(openai, orderService) {
  async function handleToolCalls(requiredAction) {
    const toolOutputs = [];
    for (const toolCall of requiredAction.submit_tool_outputs.tool_calls) {
      const args = JSON.parse(toolCall.function.arguments);
      let output;
      switch (toolCall.function.name) {
        case 'get_order_status':
          output = await orderService.getStatus(args.orderId, args.email);
          break;
        case 'initiate_return':
          output = await orderService.initiateReturn(args);
          break;
      }
      toolOutputs.push({ tool_call_id: toolCall.id, output: JSON.stringify(output) });
    }
    return toolOutputs;
  }

  async function chat(assistantId, userMessage, threadId) {
    // Create or reuse thread
    if (!threadId) {
      const thread = await openai.beta.threads.create();
      threadId = thread.id;
    }

    // Add user message
    await openai.beta.threads.messages.create(threadId, {
      role: 'user',
      content: userMessage,
    });

    // Create and stream the run
    const stream = await openai.beta.threads.runs.create(threadId, {
      assistant_id: assistantId,
      stream: true,
    });

    const response = { text: '', threadId, toolCalls: [] };
    for await (const event of stream) {
      switch (event.event) {
        case 'thread.message.delta':
          const delta = event.data.delta.content?.[0];
          if (delta?.type === 'text') {
            response.text += delta.text.value;
          }
          break;
        case 'thread.run.requires_action':
          const outputs = await handleToolCalls(event.data.required_action);
          // Submit outputs and continue the stream
          await openai.beta.threads.runs.submitToolOutputs(
            event.data.id,
            { thread_id: threadId, tool_outputs: outputs, stream: true }
          );
          break;
        case 'thread.run.failed':
          throw new Error(`Run failed: ${event.data.last_error?.message}`);
      }
    }

    return response;
  }
  return { chat, handleToolCalls };
}

async function lastRun(client, threadId) {
  const runs = await client.beta.threads.runs.list(threadId, { limit: 1 });
  return runs.data[0];
}

async function waitDone(client, threadId, runId, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const r = await client.beta.threads.runs.retrieve(runId, { thread_id: threadId });
    if (!['queued', 'in_progress', 'requires_action', 'cancelling'].includes(r.status) || Date.now() > end) return r;
    await sleep(20);
  }
}

test("seed 004's chat(): streamed run, tool call answered in the loop, the unread second stream still completes the run", async () => {
  const t = await setup();
  try {
    const { client: openai, up } = t;
    const assistantWithFunctions = await openai.beta.assistants.create({
      name: 'Order Support Agent',
      instructions: 'You help customers check order status, process returns, and track shipments.',
      model: 'gpt-4o',
      tools,
    });
    const calls = [];
    const { chat } = seedCode(openai, orderServiceFor(calls));

    up.script(
      { text: 'Let me check that. ', tool_calls: [{ name: 'get_order_status', arguments: '{"orderId":"ORD-1001","email":"ann@example.com"}' }] },
      { text: 'Your order ORD-1001 has shipped with UPS.', chunks: ['Your order ', 'ORD-1001 has ', 'shipped with UPS.'] },
    );
    const r1 = await chat(assistantWithFunctions.id, 'Where is my order ORD-1001? My email is ann@example.com');
    // The first stream carried the text before the tool call and ended at
    // requires_action; the answer after it went to the stream the seed
    // never read.
    assert.equal(r1.text, 'Let me check that. ');
    assert.match(r1.threadId, /^thread_/);
    assert.deepEqual(calls, [['getStatus', 'ORD-1001', 'ann@example.com']]);

    // The run finished server-side anyway, with the answer stored.
    const run1 = await waitDone(openai, r1.threadId, (await lastRun(openai, r1.threadId)).id);
    assert.equal(run1.status, 'completed');
    const msgs = await openai.beta.threads.messages.list(r1.threadId, { run_id: run1.id, order: 'asc' });
    const texts = msgs.data.map((m) => m.content.map((c) => c.text.value).join(''));
    assert.deepEqual(texts, ['Let me check that. ', 'Your order ORD-1001 has shipped with UPS.']);

    // What the model read on the second call: the output of the seed's
    // handler under the call's id.
    assert.equal(up.requests.length, 2);
    const second = up.requests[1].body.messages;
    const toolMsg = second.find((m) => m.role === 'tool');
    assert.deepEqual(JSON.parse(toolMsg.content), { orderId: 'ORD-1001', status: 'shipped', carrier: 'UPS' });
    const callTurn = second.find((m) => m.role === 'assistant' && m.tool_calls);
    assert.equal(callTurn.tool_calls[0].id, toolMsg.tool_call_id);

    // The next turn on the same thread: no "already has an active run".
    up.script({ text: 'Happy to help!' });
    const r2 = await chat(assistantWithFunctions.id, 'Thanks!', r1.threadId);
    assert.equal(r2.text, 'Happy to help!');
    assert.equal(r2.threadId, r1.threadId);
    const run2 = await lastRun(openai, r1.threadId);
    assert.equal(run2.status, 'completed');
    assert.notEqual(run2.id, run1.id);
  } finally {
    await t.close();
  }
});

test("seed 004's chat(): two parallel calls (status, then a return) in one requires_action", async () => {
  const t = await setup();
  try {
    const { client: openai, up } = t;
    const a = await openai.beta.assistants.create({ name: 'Order Support Agent', model: 'gpt-4o', tools });
    const calls = [];
    const { chat } = seedCode(openai, orderServiceFor(calls));
    up.script(
      {
        tool_calls: [
          { name: 'get_order_status', arguments: '{"orderId":"ORD-7","email":"bo@example.com"}' },
          { name: 'initiate_return', arguments: '{"orderId":"ORD-7","itemId":"blue-shirt","reason":"wrong_item"}' },
        ],
      },
      { text: 'Return RET-77 started.' },
    );
    const r = await chat(a.id, 'I want to return the blue shirt from ORD-7 (bo@example.com).');
    assert.equal(r.text, '');
    assert.deepEqual(calls, [
      ['getStatus', 'ORD-7', 'bo@example.com'],
      ['initiateReturn', { orderId: 'ORD-7', itemId: 'blue-shirt', reason: 'wrong_item' }],
    ]);
    const run = await waitDone(openai, r.threadId, (await lastRun(openai, r.threadId)).id);
    assert.equal(run.status, 'completed');
    const steps = await openai.beta.threads.runs.steps.list(run.id, { thread_id: r.threadId, order: 'asc' });
    const toolStep = steps.data.find((s) => s.type === 'tool_calls');
    assert.equal(toolStep.step_details.tool_calls.length, 2);
    assert.deepEqual(JSON.parse(toolStep.step_details.tool_calls[1].function.output),
      { returnId: 'RET-77', orderId: 'ORD-7', itemId: 'blue-shirt', reason: 'wrong_item' });
    const [reply] = (await openai.beta.threads.messages.list(r.threadId, { limit: 1 })).data;
    assert.equal(reply.content[0].text.value, 'Return RET-77 started.');
  } finally {
    await t.close();
  }
});

test("seed 004's first snippet: a streamed text answer written out delta by delta", async () => {
  const t = await setup();
  try {
    const { client: openai, up } = t;
    const a = await openai.beta.assistants.create({ model: 'gpt-4o', tools });
    const threadId = (await openai.beta.threads.create({ messages: [{ role: 'user', content: 'Hello' }] })).id;
    const assistantId = a.id;
    up.script({ text: 'Hi! How can I help with your order?', chunks: ['Hi! ', 'How can I ', 'help with your order?'] });
    const out = [];
    const process = { stdout: { write: (s) => out.push(s) } };
    const handleToolCalls = async () => { throw new Error('no tool call expected'); };

    // The seed's code, unchanged.
    const stream = await openai.beta.threads.runs.create(threadId, {
      assistant_id: assistantId,
      stream: true,
    });

    for await (const event of stream) {
      switch (event.event) {
        case 'thread.message.delta':
          process.stdout.write(event.data.delta.content[0].text.value);
          break;
        case 'thread.run.requires_action':
          await handleToolCalls(event.data.required_action);
          break;
      }
    }

    assert.deepEqual(out, ['Hi! ', 'How can I ', 'help with your order?']);
    assert.equal((await lastRun(openai, threadId)).status, 'completed');
  } finally {
    await t.close();
  }
});
