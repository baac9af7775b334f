// Cursor pagination of GET /assistants: defaults, limits, order, after and
// before in both orders, the exact empty page, bad parameters, and the SDK's
// auto-pagination (which pages with after = last id) -- including while
// every object is being deleted under it.
import test, { before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openai, azure, raw, errorOf } from './lib/server.mjs';

let s;
before(async () => { s = await startServer(); });
after(async () => { await s.stop(); });

const list = async (q = '', srv = s) => {
  const r = await raw(srv, 'GET', `/v1/assistants${q}`);
  assert.equal(r.headers.get('content-type'), 'application/json');
  return r;
};

test('empty list is exactly the documented envelope', async () => {
  const r = await list();
  assert.equal(r.status, 200);
  assert.equal(r.text, '{"object":"list","data":[],"first_id":null,"last_id":null,"has_more":false}');
  for (const q of ['?order=asc', '?limit=1', '?limit=100&order=desc']) {
    assert.equal((await list(q)).text, '{"object":"list","data":[],"first_id":null,"last_id":null,"has_more":false}');
  }
});

describe('with 45 assistants', () => {
  const ids = []; // creation order
  before(async () => {
    const c = openai(s);
    // Sequential: creation order is the order of the ids array.
    for (let i = 0; i < 45; i++) ids.push((await c.beta.assistants.create({ model: 'gpt-4o', name: `a${i}` })).id);
  });
  const desc = () => [...ids].reverse();

  test('default: limit 20, newest first', async () => {
    const r = (await list()).json;
    assert.deepEqual(Object.keys(r), ['object', 'data', 'first_id', 'last_id', 'has_more']);
    assert.equal(r.object, 'list');
    assert.deepEqual(r.data.map((a) => a.id), desc().slice(0, 20));
    assert.equal(r.first_id, desc()[0]);
    assert.equal(r.last_id, desc()[19]);
    assert.equal(r.has_more, true);
    assert.equal(r.data[0].object, 'assistant');
  });

  test('order=asc and explicit desc', async () => {
    const asc = (await list('?order=asc')).json;
    assert.deepEqual(asc.data.map((a) => a.id), ids.slice(0, 20));
    assert.equal(asc.first_id, ids[0]);
    assert.equal(asc.last_id, ids[19]);
    const d = (await list('?order=desc')).json;
    assert.deepEqual(d.data.map((a) => a.id), desc().slice(0, 20));
  });

  test('limit 1 and 100', async () => {
    const one = (await list('?limit=1')).json;
    assert.deepEqual(one.data.map((a) => a.id), [ids[44]]);
    assert.equal(one.first_id, ids[44]);
    assert.equal(one.last_id, ids[44]);
    assert.equal(one.has_more, true);
    const all = (await list('?limit=100')).json;
    assert.deepEqual(all.data.map((a) => a.id), desc());
    assert.equal(all.has_more, false);
    const exact = (await list('?limit=45&order=asc')).json;
    assert.deepEqual(exact.data.map((a) => a.id), ids);
    assert.equal(exact.has_more, false);
    const fortyFour = (await list('?limit=44&order=asc')).json;
    assert.equal(fortyFour.has_more, true);
  });

  test('after and before, in both orders', async () => {
    // desc: after = older than the cursor; before = newer than the cursor.
    const d = desc();
    let r = (await list(`?after=${d[9]}&limit=5`)).json;
    assert.deepEqual(r.data.map((a) => a.id), d.slice(10, 15));
    assert.equal(r.has_more, true);
    r = (await list(`?before=${d[9]}&limit=5`)).json;
    assert.deepEqual(r.data.map((a) => a.id), d.slice(4, 9));
    assert.equal(r.has_more, true);
    r = (await list(`?before=${d[3]}`)).json;
    assert.deepEqual(r.data.map((a) => a.id), d.slice(0, 3));
    assert.equal(r.has_more, false);
    r = (await list(`?after=${d[44]}`)).json;
    assert.deepEqual(r, { object: 'list', data: [], first_id: null, last_id: null, has_more: false });
    // asc: after = newer than the cursor; before = older.
    r = (await list(`?order=asc&after=${ids[9]}&limit=5`)).json;
    assert.deepEqual(r.data.map((a) => a.id), ids.slice(10, 15));
    r = (await list(`?order=asc&before=${ids[9]}&limit=5`)).json;
    assert.deepEqual(r.data.map((a) => a.id), ids.slice(4, 9));
    assert.equal(r.has_more, true);
    r = (await list(`?order=asc&after=${ids[40]}`)).json;
    assert.deepEqual(r.data.map((a) => a.id), ids.slice(41));
    assert.equal(r.has_more, false);
    // Both cursors: the window between them.
    r = (await list(`?order=asc&after=${ids[10]}&before=${ids[20]}`)).json;
    assert.deepEqual(r.data.map((a) => a.id), ids.slice(11, 20));
    r = (await list(`?after=${d[10]}&before=${d[20]}&limit=3`)).json;
    assert.deepEqual(r.data.map((a) => a.id), d.slice(11, 14));
    assert.equal(r.has_more, true);
  });

  test('manual paging with after = last_id visits everything once', async () => {
    for (const order of ['asc', 'desc']) {
      const seen = [];
      let after = '';
      for (;;) {
        const r = (await list(`?order=${order}&limit=10${after ? `&after=${after}` : ''}`)).json;
        seen.push(...r.data.map((a) => a.id));
        if (!r.has_more) break;
        after = r.last_id;
      }
      assert.deepEqual(seen, order === 'asc' ? ids : desc());
    }
  });

  test('paging backwards with before = first_id visits everything once, no gaps', async () => {
    for (const order of ['asc', 'desc']) {
      const full = order === 'asc' ? ids : desc();
      const pages = [];
      let before = full[full.length - 1];
      let seen = [before];
      for (;;) {
        const r = (await list(`?order=${order}&limit=10&before=${before}`)).json;
        pages.push(r.data.length);
        seen = [...r.data.map((a) => a.id), ...seen]; // each page is still in the requested order
        if (!r.has_more) break;
        before = r.first_id;
      }
      assert.deepEqual(seen, full, order);
      assert.deepEqual(pages, [10, 10, 10, 10, 4]);
    }
  });

  test('SDK auto-pagination visits each assistant exactly once, both orders and both clients', async () => {
    for (const c of [openai(s), azure(s)]) {
      for (const order of ['asc', 'desc']) {
        const seen = [];
        for await (const a of c.beta.assistants.list({ limit: 7, order })) seen.push(a.id);
        assert.deepEqual(seen, order === 'asc' ? ids : desc(), order);
      }
    }
  });
});

test('bad parameters: exact messages', async () => {
  const cases = [
    ['?limit=0', { message: 'Invalid \'limit\': integer below minimum value. Expected a value >= 1, but got 0 instead.', type: 'invalid_request_error', param: 'limit', code: 'integer_below_min_value' }],
    ['?limit=-5', { message: 'Invalid \'limit\': integer below minimum value. Expected a value >= 1, but got -5 instead.', type: 'invalid_request_error', param: 'limit', code: 'integer_below_min_value' }],
    ['?limit=101', { message: 'Invalid \'limit\': integer above maximum value. Expected a value <= 100, but got 101 instead.', type: 'invalid_request_error', param: 'limit', code: 'integer_above_max_value' }],
    ['?limit=abc', { message: "Invalid type for 'limit': expected an integer, but got a string instead.", type: 'invalid_request_error', param: 'limit', code: 'invalid_type' }],
    ['?limit=1.5', { message: "Invalid type for 'limit': expected an integer, but got a string instead.", type: 'invalid_request_error', param: 'limit', code: 'invalid_type' }],
    ['?limit=99999999999999999999999', { message: "Invalid type for 'limit': expected an integer, but got a string instead.", type: 'invalid_request_error', param: 'limit', code: 'invalid_type' }],
    ['?order=sideways', { message: "Invalid value: 'sideways'. Supported values are: 'asc' and 'desc'.", type: 'invalid_request_error', param: 'order', code: 'invalid_value' }],
    ['?order=ASC', { message: "Invalid value: 'ASC'. Supported values are: 'asc' and 'desc'.", type: 'invalid_request_error', param: 'order', code: 'invalid_value' }],
  ];
  for (const [q, want] of cases) {
    const r = await list(q);
    assert.equal(r.status, 400, q);
    assert.deepEqual(errorOf(r), want, q);
  }
  // Unknown cursor.
  const r = await list('?after=asst_doesnotexist');
  assert.equal(r.status, 400);
  assert.equal(errorOf(r).param, 'after');
  const r2 = await list('?before=asst_doesnotexist');
  assert.equal(r2.status, 400);
  assert.equal(errorOf(r2).param, 'before');
  // The SDK surfaces these as BadRequestError.
  await assert.rejects(openai(s).beta.assistants.list({ limit: 0 }), (e) => e.status === 400 && e.error.param === 'limit');
});

test('deleting every assistant while auto-paginating (cursor names a deleted object)', async () => {
  const srv = await startServer();
  try {
    const c = openai(srv);
    const made = [];
    for (let i = 0; i < 25; i++) made.push((await c.beta.assistants.create({ model: 'gpt-4o' })).id);
    for (const order of ['desc', 'asc']) {
      const seen = [];
      for await (const a of c.beta.assistants.list({ limit: 4, order })) {
        seen.push(a.id);
        await c.beta.assistants.delete(a.id); // the page's last id is deleted before the next request
      }
      if (order === 'desc') {
        assert.deepEqual(seen, [...made].reverse());
        // Refill for the asc pass.
        made.length = 0;
        for (let i = 0; i < 25; i++) made.push((await c.beta.assistants.create({ model: 'gpt-4o' })).id);
      } else {
        assert.deepEqual(seen, made);
      }
    }
    assert.equal((await list('', srv)).text, '{"object":"list","data":[],"first_id":null,"last_id":null,"has_more":false}');
    // A deleted id still works as a cursor.
    const x = await c.beta.assistants.create({ model: 'gpt-4o' });
    const y = await c.beta.assistants.create({ model: 'gpt-4o' });
    await c.beta.assistants.delete(x.id);
    const r = (await list(`?order=asc&after=${x.id}`, srv)).json;
    assert.deepEqual(r.data.map((a) => a.id), [y.id]);
    // Deleted objects never appear and do not count towards has_more.
    const r2 = (await list('?limit=1', srv)).json;
    assert.deepEqual(r2.data.map((a) => a.id), [y.id]);
    assert.equal(r2.has_more, false);
  } finally {
    await srv.stop();
  }
});
