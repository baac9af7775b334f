// Assistants through the official SDK (OpenAI and AzureOpenAI classes) and
// raw HTTP: every field on create, retrieve, modify (present fields replace,
// absent ones are kept), delete, the seeds' own creation code, the exact
// JSON shape of the object, and request validation as the server reports it.
import test, { before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer, openai, azure, raw, errorOf, KEY } from './lib/server.mjs';
import { startUpstream } from './lib/upstream.mjs';

let s;
before(async () => { s = await startServer({ args: ['--models', 'gpt-4o,gpt-4o-mini,gpt-4.1,gpt-4.1-mini'] }); });
after(async () => { await s.stop(); });

const ASSISTANT_KEYS = ['id', 'object', 'created_at', 'name', 'description', 'model', 'instructions',
  'tools', 'tool_resources', 'metadata', 'temperature', 'top_p', 'response_format'];

const fnTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Weather for a city',
    parameters: {
      type: 'object',
      properties: {
        city: { type: 'string', description: 'City name' },
        unit: { type: 'string', enum: ['c', 'f'] },
        days: { type: 'integer', minimum: 1, maximum: 7 },
        tags: { type: 'array', items: { type: 'string' } },
      },
      required: ['city'],
      additionalProperties: false,
    },
  },
};

const fullParams = {
  model: 'gpt-4o',
  name: 'Full Assistant',
  description: 'Has every field',
  instructions: 'You are thorough. Ünïcødé ✓ and "quotes" and \\ backslashes.',
  tools: [
    { type: 'code_interpreter' },
    { type: 'file_search', file_search: { max_num_results: 7, ranking_options: { ranker: 'default_2024_08_21', score_threshold: 0.5 } } },
    fnTool,
    { type: 'function', function: { name: 'strict_fn', parameters: { type: 'object', properties: {} }, strict: true } },
  ],
  metadata: { team: 'core', 'empty-value': '' },
  temperature: 0.25,
  top_p: 0.5,
  response_format: { type: 'json_object' },
};

// What the server returns for fullParams: function.strict defaults to false.
function expectedFull(a) {
  const tools = structuredClone(fullParams.tools);
  tools[2].function.strict = false;
  return { id: a.id, object: 'assistant', created_at: a.created_at, ...fullParams, tools, tool_resources: {} };
}

for (const [label, client] of [['OpenAI', () => openai(s)], ['AzureOpenAI', () => azure(s)]]) {
  describe(`assistants via ${label}`, () => {
    test('create with every field, retrieve, list, delete', async () => {
      const c = client();
      const a = await c.beta.assistants.create(fullParams);
      assert.match(a.id, /^asst_[A-Za-z0-9]{24}$/);
      assert.deepEqual(a, expectedFull(a));
      assert.ok(Number.isInteger(a.created_at));
      assert.ok(Math.abs(a.created_at - Date.now() / 1000) < 10);

      assert.deepEqual(await c.beta.assistants.retrieve(a.id), a);
      const { data, request_id, response } = await c.beta.assistants.retrieve(a.id).withResponse();
      assert.deepEqual(data, a);
      assert.match(request_id, /^req_/);
      assert.equal(response.headers.get('content-type'), 'application/json');
      const page = await c.beta.assistants.list({ limit: 100 });
      assert.deepEqual(page.data.find((x) => x.id === a.id), a);

      const del = await c.beta.assistants.delete(a.id);
      assert.deepEqual(del, { id: a.id, object: 'assistant.deleted', deleted: true });
      await assert.rejects(c.beta.assistants.retrieve(a.id), (e) => {
        assert.equal(e.status, 404);
        assert.equal(e.error.message, `No assistant found with id '${a.id}'.`);
        return true;
      });
      await assert.rejects(c.beta.assistants.delete(a.id), (e) => e.status === 404);
      await assert.rejects(c.beta.assistants.update(a.id, { name: 'x' }), (e) => e.status === 404);
    });

    test('modify replaces present fields and keeps absent ones', async () => {
      const c = client();
      const a = await c.beta.assistants.create(fullParams);
      const m = await c.beta.assistants.update(a.id, {
        name: 'Renamed',
        tools: [{ type: 'code_interpreter' }],
        metadata: { only: 'this' },
        temperature: 1.5,
      });
      const want = { ...expectedFull(a), name: 'Renamed', tools: [{ type: 'code_interpreter' }], metadata: { only: 'this' }, temperature: 1.5 };
      assert.deepEqual(m, want);
      assert.deepEqual(await c.beta.assistants.retrieve(a.id), want);

      // Empty modify changes nothing; nulls clear nullable fields.
      assert.deepEqual(await c.beta.assistants.update(a.id, {}), want);
      const cleared = await c.beta.assistants.update(a.id, { description: null, instructions: null, name: null, tools: [], metadata: {} });
      assert.deepEqual(cleared, { ...want, description: null, instructions: null, name: null, tools: [], metadata: {} });
      const nulled = await c.beta.assistants.update(a.id, { temperature: null, top_p: null, response_format: null, metadata: null });
      assert.equal(nulled.temperature, 1);
      assert.equal(nulled.top_p, 1);
      assert.equal(nulled.response_format, 'auto');
      assert.deepEqual(nulled.metadata, {});
      // The model may change; created_at and id never do.
      const mm = await c.beta.assistants.update(a.id, { model: 'gpt-4o-mini' });
      assert.equal(mm.model, 'gpt-4o-mini');
      assert.equal(mm.id, a.id);
      assert.equal(mm.created_at, a.created_at);
    });

    test('response_format variants round-trip', async () => {
      const c = client();
      const schema = { name: 'answer', description: 'An answer', schema: { type: 'object', properties: { x: { type: 'number' } }, required: ['x'], additionalProperties: false }, strict: true };
      for (const rf of ['auto', { type: 'text' }, { type: 'json_object' }, { type: 'json_schema', json_schema: schema }]) {
        const a = await c.beta.assistants.create({ model: 'gpt-4o', response_format: rf });
        assert.deepEqual(a.response_format, rf);
        assert.deepEqual((await c.beta.assistants.retrieve(a.id)).response_format, rf);
      }
    });
  });
}

test('seed code: Math Tutor, data analyst, function-calling tools (unchanged but for the client)', async () => {
  // 000 (node, Azure): the Math Tutor.
  const openaiClient = azure(s);
  {
    const openai = openaiClient;
    const assistant = await openai.beta.assistants.create({
      name: "Math Tutor",
      instructions: "You are a helpful math tutor. Write and run code to answer math questions.",
      model: "gpt-4.1",
      tools: [{ type: "code_interpreter" }],
    });
    assert.equal(assistant.name, 'Math Tutor');
    assert.deepEqual(assistant.tools, [{ type: 'code_interpreter' }]);
    assert.equal(assistant.model, 'gpt-4.1');
  }
  // 000: the vulnerability-count function tool.
  {
    const tool = {
      type: "function",
      function: {
        name: "getVulnerabilityCount",
        description: "Returns the number of vulnerabilities found in a specific environment.",
        parameters: {
          type: "object",
          properties: {
            systemName: {
              type: "string",
              enum: ["production", "staging", "legacy"]
            }
          },
          required: ["systemName"]
        }
      }
    };
    const assistant = await openaiClient.beta.assistants.create({
      name: "Security Ops",
      instructions: "You are a security operations assistant.",
      model: "gpt-4.1",
      tools: [tool],
    });
    assert.deepEqual(assistant.tools, [{ ...tool, function: { ...tool.function, strict: false } }]);
  }
  // 002 (node quickstart): options object passed as is.
  {
    const assistantsClient = azure(s);
    const azureOpenAIDeployment = 'gpt-4o';
    const options = {
      model: azureOpenAIDeployment, // Deployment name seen in Azure AI Foundry portal
      name: "Math Tutor",
      instructions:
        "You are a personal math tutor. Write and run JavaScript code to answer math questions.",
      tools: [{ type: "code_interpreter" }],
    };
    const assistantResponse = await assistantsClient.beta.assistants.create(
      options
    );
    assert.equal(JSON.parse(JSON.stringify(assistantResponse)).instructions, options.instructions);
  }
  // 004 (node, OpenAI): data analyst and order-support function tools.
  {
    const openai = openaiClientFor();
    const assistant = await openai.beta.assistants.create({
      name: 'Data Analyst',
      instructions: `You are a senior data analyst. When users upload CSV files or describe datasets, use code interpreter to:
    - Analyze the data and compute statistics
    - Generate visualizations (charts, graphs)
    - Perform trend analysis and forecasting
    - Always explain your methodology and findings clearly`,
      model: 'gpt-4o',
      tools: [{ type: 'code_interpreter' }],
    });
    assert.match(assistant.instructions, /^You are a senior data analyst\.[\s\S]*findings clearly$/);

    const assistantWithFunctions = await openai.beta.assistants.create({
      name: 'Order Support Agent',
      instructions: 'You help customers check order status, process returns, and track shipments.',
      model: 'gpt-4o',
      tools: [
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
      ],
    });
    assert.deepEqual(assistantWithFunctions.tools.map((t) => [t.function.name, t.function.strict]),
      [['get_order_status', false], ['initiate_return', false]]);
    assert.deepEqual(assistantWithFunctions.tools[1].function.parameters.properties.reason.enum,
      ['defective', 'wrong_item', 'not_needed', 'other']);
    assert.deepEqual(await openai.beta.assistants.retrieve(assistantWithFunctions.id), assistantWithFunctions);
  }
});

function openaiClientFor() {
  // The seeds build `new OpenAI()` from the environment; same here, pointed at the server.
  return new OpenAI({ apiKey: KEY, baseURL: `${s.url}/v1`, maxRetries: 0 });
}

test('raw JSON: every AssistantObject key, explicit nulls, metadata {}, integer seconds', async () => {
  const before = Math.floor(Date.now() / 1000);
  const r = await raw(s, 'POST', '/v1/assistants', { body: { model: 'gpt-4o' } });
  const afterT = Math.floor(Date.now() / 1000);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'application/json');
  assert.match(r.headers.get('x-request-id'), /^req_/);
  const a = r.json;
  assert.deepEqual(Object.keys(a).sort(), [...ASSISTANT_KEYS].sort());
  assert.equal(a.name, null);
  assert.equal(a.description, null);
  assert.equal(a.instructions, null);
  assert.deepEqual(a.tools, []);
  assert.deepEqual(a.metadata, {});
  assert.equal(a.temperature, 1);
  assert.equal(a.top_p, 1);
  assert.equal(a.response_format, 'auto');
  assert.equal(a.object, 'assistant');
  assert.ok(Number.isInteger(a.created_at) && a.created_at >= before && a.created_at <= afterT);
  assert.match(r.text, /"created_at":\d+,/); // not a float, not a string

  const g = await raw(s, 'GET', `/v1/assistants/${a.id}`);
  assert.equal(g.status, 200);
  assert.equal(g.text, r.text); // stored JSON comes back byte for byte
  const d = await raw(s, 'DELETE', `/v1/assistants/${a.id}`);
  assert.equal(d.text, `{"id":"${a.id}","object":"assistant.deleted","deleted":true}`);
});

// Reals come back as the client wrote them: "0.7", not the nearest double
// spelled out ("0.69999999999999996"), on the assistant, on a run made from
// it, and in the request to the model.
test('raw JSON: temperature 0.7 and top_p 0.1 are written "0.7" and "0.1"', async () => {
  const r = await raw(s, 'POST', '/v1/assistants', { body: { model: 'gpt-4o', temperature: 0.7, top_p: 0.1 } });
  assert.equal(r.status, 200);
  assert.match(r.text, /"top_p":0\.1,"temperature":0\.7,/);
  const g = await raw(s, 'GET', `/v1/assistants/${r.json.id}`);
  assert.equal(g.text, r.text);
  const m = await raw(s, 'POST', `/v1/assistants/${r.json.id}`, { body: { temperature: 1.3 } });
  assert.match(m.text, /"top_p":0\.1,"temperature":1\.3,/);
});

test('tool_resources: missing file or vector store ids are 400', async () => {
  const c = openai(s);
  await assert.rejects(c.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'code_interpreter' }], tool_resources: { code_interpreter: { file_ids: ['file-doesnotexist'] } } }), (e) => {
    assert.equal(e.status, 400);
    assert.deepEqual(e.error, {
      message: "Invalid 'tool_resources.code_interpreter.file_ids[0]': no file found with id 'file-doesnotexist'.",
      type: 'invalid_request_error', param: 'tool_resources.code_interpreter.file_ids[0]', code: 'invalid_value',
    });
    return true;
  });
  await assert.rejects(c.beta.assistants.create({ model: 'gpt-4o', tool_resources: { file_search: { vector_store_ids: ['vs_doesnotexist'] } } }), (e) => {
    assert.equal(e.status, 400);
    assert.equal(e.error.param, 'tool_resources.file_search.vector_store_ids[0]');
    return true;
  });
  // Empty lists are fine and come back as given.
  const a = await c.beta.assistants.create({ model: 'gpt-4o', tool_resources: { code_interpreter: { file_ids: [] }, file_search: { vector_store_ids: [] } } });
  assert.deepEqual(a.tool_resources, { code_interpreter: { file_ids: [] }, file_search: { vector_store_ids: [] } });
  // Modify with a missing file id fails and leaves the assistant unchanged.
  const r = await raw(s, 'POST', `/v1/assistants/${a.id}`, { body: { name: 'changed', tool_resources: { code_interpreter: { file_ids: ['file-nope'] } } } });
  assert.equal(r.status, 400);
  assert.equal((await c.beta.assistants.retrieve(a.id)).name, null);
});

// ---- validation ----

async function createErr(body, path = '/v1/assistants') {
  const r = await raw(s, 'POST', path, { body });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.headers.get('content-type'), 'application/json');
  return errorOf(r);
}

const ire = (message, param, code) => ({ message, type: 'invalid_request_error', param, code });

test('validation: unknown parameters, missing and mistyped fields', async () => {
  assert.deepEqual(await createErr({ model: 'gpt-4o', foo: 1 }), ire("Unknown parameter: 'foo'.", 'foo', 'unknown_parameter'));
  assert.deepEqual(await createErr({ model: 'gpt-4o', tools: [{ type: 'code_interpreter', extra: true }] }),
    ire("Unknown parameter: 'tools[0].extra'.", 'tools[0].extra', 'unknown_parameter'));
  assert.deepEqual(await createErr({ name: 'x' }), ire("Missing required parameter: 'model'.", 'model', 'missing_required_parameter'));
  assert.deepEqual(await createErr({}), ire("Missing required parameter: 'model'.", 'model', 'missing_required_parameter'));
  assert.deepEqual(await createErr({ model: 5 }), ire("Invalid type for 'model': expected a string, but got an integer instead.", 'model', 'invalid_type'));
  assert.deepEqual(await createErr({ model: 'gpt-4o', name: 5 }), ire("Invalid type for 'name': expected a string, but got an integer instead.", 'name', 'invalid_type'));
  assert.deepEqual(await createErr({ model: 'gpt-4o', tools: {} }), ire("Invalid type for 'tools': expected an array, but got an object instead.", 'tools', 'invalid_type'));
  assert.deepEqual(await createErr({ model: 'gpt-4o', metadata: [] }), ire("Invalid type for 'metadata': expected an object, but got an array instead.", 'metadata', 'invalid_type'));
  assert.deepEqual(await createErr({ model: 'gpt-4o', temperature: '1' }), ire("Invalid type for 'temperature': expected a decimal, but got a string instead.", 'temperature', 'invalid_type'));
  assert.deepEqual(await createErr({ model: 'gpt-4o', tools: [{ type: 'bogus' }] }),
    ire("Invalid value: 'bogus'. Supported values are: 'code_interpreter', 'file_search', and 'function'.", 'tools[0].type', 'invalid_value'));
  // Modify has the same rules, model optional.
  const a = await openai(s).beta.assistants.create({ model: 'gpt-4o' });
  assert.deepEqual(await createErr({ nope: true }, `/v1/assistants/${a.id}`), ire("Unknown parameter: 'nope'.", 'nope', 'unknown_parameter'));
  assert.deepEqual(await createErr({ name: [] }, `/v1/assistants/${a.id}`), ire("Invalid type for 'name': expected a string, but got an array instead.", 'name', 'invalid_type'));
});

test('validation: lengths and limits', async () => {
  const long = (n) => 'a'.repeat(n);
  assert.deepEqual(await createErr({ model: 'gpt-4o', name: long(257) }),
    ire("Invalid 'name': string too long. Expected a string with maximum length 256, but got a string with length 257 instead.", 'name', 'string_above_max_length'));
  assert.deepEqual(await createErr({ model: 'gpt-4o', description: long(513) }),
    ire("Invalid 'description': string too long. Expected a string with maximum length 512, but got a string with length 513 instead.", 'description', 'string_above_max_length'));
  assert.deepEqual(await createErr({ model: 'gpt-4o', instructions: long(256001) }),
    ire("Invalid 'instructions': string too long. Expected a string with maximum length 256000, but got a string with length 256001 instead.", 'instructions', 'string_above_max_length'));
  const tools = Array.from({ length: 129 }, () => ({ type: 'code_interpreter' }));
  assert.deepEqual(await createErr({ model: 'gpt-4o', tools }),
    ire("Invalid 'tools': array too long. Expected an array with maximum length 128, but got an array with length 129 instead.", 'tools', 'array_above_max_length'));
  const meta17 = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']));
  assert.deepEqual(await createErr({ model: 'gpt-4o', metadata: meta17 }),
    ire("Invalid 'metadata': too many properties. Expected an object with at most 16 properties, but got an object with 17 properties instead.", 'metadata', 'object_above_max_properties'));
  assert.equal((await createErr({ model: 'gpt-4o', metadata: { [long(65)]: 'v' } })).code, 'string_above_max_length');
  assert.deepEqual(await createErr({ model: 'gpt-4o', metadata: { a: long(513) } }),
    ire("Invalid 'metadata.a': string too long. Expected a string with maximum length 512, but got a string with length 513 instead.", 'metadata.a', 'string_above_max_length'));
  assert.deepEqual(await createErr({ model: 'gpt-4o', temperature: 3 }),
    ire("Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 3 instead.", 'temperature', 'decimal_above_max_value'));
  assert.deepEqual(await createErr({ model: 'gpt-4o', tools: [{ type: 'file_search', file_search: { max_num_results: 51 } }] }),
    ire("Invalid 'tools[0].file_search.max_num_results': integer above maximum value. Expected a value <= 50, but got 51 instead.", 'tools[0].file_search.max_num_results', 'integer_above_max_value'));

  // The limits themselves are accepted (code points, not bytes).
  const ok = await openai(s).beta.assistants.create({
    model: 'gpt-4o', name: 'é'.repeat(256), description: long(512), instructions: long(256000),
    tools: Array.from({ length: 128 }, () => ({ type: 'code_interpreter' })),
    metadata: { ...Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`k${i}`, 'v'])), [long(64)]: long(512) },
    temperature: 2, top_p: 0,
  });
  assert.equal(ok.name.length, 256);
  assert.equal(ok.instructions.length, 256000);
  assert.equal(ok.tools.length, 128);
  assert.equal(Object.keys(ok.metadata).length, 16);
  assert.deepEqual(await openai(s).beta.assistants.retrieve(ok.id), ok);
});

test('model: configured list rejects unknown models with model_not_found', async () => {
  assert.deepEqual(await createErr({ model: 'gpt-nope' }),
    ire("The requested model 'gpt-nope' does not exist.", 'model', 'model_not_found'));
  const a = await openai(s).beta.assistants.create({ model: 'gpt-4o' });
  assert.deepEqual(await createErr({ model: 'gpt-nope' }, `/v1/assistants/${a.id}`),
    ire("The requested model 'gpt-nope' does not exist.", 'model', 'model_not_found'));
  assert.equal((await openai(s).beta.assistants.retrieve(a.id)).model, 'gpt-4o');

  const custom = await startServer({ args: ['--models', 'my-deployment'] });
  try {
    const az = azure(custom);
    const b = await az.beta.assistants.create({ model: 'my-deployment' });
    assert.equal(b.model, 'my-deployment');
    await assert.rejects(az.beta.assistants.create({ model: 'gpt-4o' }), (e) => e.status === 400 && e.error.code === 'model_not_found');
  } finally {
    await custom.stop();
  }
});

test("zero configuration accepts any model name and lists the upstream's models", async () => {
  const up = await startUpstream({ apiKey: 'up-key' });
  up.models(['llama3.1', 'qwen2.5']);
  const any = await startServer({ env: { OPENAI_BASE_URL: up.url, OPENAI_API_KEY: 'up-key' } });
  try {
    const a = await azure(any).beta.assistants.create({ model: 'gpt-4-preview' });
    assert.equal(a.model, 'gpt-4-preview');
    // The list is fetched in the background at start-up; it appears shortly.
    let models;
    for (let i = 0; i < 100; i++) {
      models = await raw(any, 'GET', '/v1/models', { beta: false });
      if (models.json?.data?.length) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(models.status, 200);
    assert.deepEqual(models.json.data.map((m) => m.id), ['llama3.1', 'qwen2.5']);
    const one = await openai(any).models.retrieve('qwen2.5');
    assert.equal(one.id, 'qwen2.5');
    await assert.rejects(openai(any).models.retrieve('nope'), (e) => e.status === 404);
    const fetched = up.modelRequests.find((r) => r.path === '/v1/models');
    assert.equal(fetched.headers.authorization, 'Bearer up-key');
  } finally {
    await any.stop();
    await up.close();
  }
});

test('zero configuration with an unreachable upstream lists no models and stops promptly', async () => {
  const any = await startServer({ env: { OPENAI_BASE_URL: 'http://127.0.0.1:9/v1' } });
  try {
    const models = await raw(any, 'GET', '/v1/models', { beta: false });
    assert.equal(models.status, 200);
    assert.deepEqual(models.json, { object: 'list', data: [] });
  } finally {
    const t0 = Date.now();
    await any.stop();
    assert.ok(Date.now() - t0 < 5000);
  }
});

test('models endpoint lists the configured models', async () => {
  const list = await openai(s).models.list();
  assert.deepEqual(list.data.map((m) => m.id), ['gpt-4o', 'gpt-4o-mini', 'gpt-4.1', 'gpt-4.1-mini']);
  const m = await openai(s).models.retrieve('gpt-4.1');
  assert.deepEqual(Object.keys(m).sort(), ['created', 'id', 'object', 'owned_by']);
  assert.equal(m.object, 'model');
  await assert.rejects(openai(s).models.retrieve('nope'), (e) => e.status === 404 && e.error.code === 'model_not_found');
});
