// Every file type file_search reads, through the official SDK: each file
// (tests/fixtures/filetypes, built by make_fixtures.py there) is uploaded
// with vectorStores.files.uploadAndPoll and ends `completed`; a search for
// the one made-up word each file holds finds that file and only it; the
// chunk text returned (search results and the file's content) is the
// extracted text -- no HTML/XML tags, no PDF syntax, UTF-16 decoded. Files
// of unsupported types end `failed` with unsupported_file, broken files of
// supported types with invalid_file, and neither shows up in searches.
import test, { before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, openai, azure } from './lib/server.mjs';

const DIR = path.resolve(import.meta.dirname, '../fixtures/filetypes');
const INGEST = path.resolve(import.meta.dirname, '../fixtures/ingest');
const poll = { pollIntervalMs: 20 };

// [file, its unique word, text the extraction must contain, markup kind]
// markup: 'doc' files must come back with no tags or container syntax at
// all; source code keeps its own angle brackets (#include <stdio.h>).
const READABLE = [
  ['notes.txt', 'periwinkle', 'The quartermaster ordered periwinkle lanterns for the north pier.', 'doc'],
  ['guide.md', 'marzipan', 'A *blue-green* rollout flips the **marzipan switch** only after the canary is healthy.', 'doc'],
  ['config.json', 'tangerine', '"codename": "tangerine-falcon",', 'doc'],
  ['page.html', 'saffron', 'The saffron courier arrives at dawn & leaves at noon.', 'doc'],
  ['manual.pdf', 'obsidian', 'The obsidian turbine requires a quarterly inspection.', 'doc'],
  ['memo.docx', 'walrus', 'The walrus committee meets on Thursdays & Fridays.', 'doc'],
  ['slides.pptx', 'heliotrope', 'The heliotrope milestone ships in May.', 'doc'],
  ['sorter.py', 'gazpacho', 'def gazpacho_sort(items):\n    """Sorts the gazpacho orders."""', 'code'],
  ['app.js', 'kumquat', '// Counts the kumquat inventory.\nexport const kumquatCount = (xs) => xs.length;', 'code'],
  ['hello.c', 'quokka', '#include <stdio.h>\n\nint main(void)\n{\n    printf("quokka greeting\\n");', 'code'],
  ['server.go', 'narwhal', '// Serves the narwhal endpoint.', 'code'],
  ['deploy.sh', 'pangolin', 'systemctl restart pangolin', 'code'],
  ['utf16le.txt', 'Zugspitze', 'Die Zugspitze ist der h\u00f6chste Berg \u2014 \u96ea \u{1F3D4}', 'doc'],
  ['utf16be.txt', 'Matterhorn', 'Le Matterhorn est c\u00e9l\u00e8bre \u2014 \u5c71', 'doc'],
];
// No extension: the content is sniffed (a PDF here).
const SNIFFED = [path.join(INGEST, 'sample_noext'), 'Sniffed', 'Sniffed PDF text.'];

const FAILING = [
  ['photo.png', 'unsupported_file'],
  ['setup.exe', 'unsupported_file'],
  ['random_noext', 'unsupported_file'],
  ['broken.pdf', 'invalid_file'],
  ['truncated.docx', 'invalid_file'],
  ['notzip.pptx', 'invalid_file'],
  ['latin1.txt', 'invalid_file'],
  // From the extractor's own fixtures: no text at all, a lone UTF-16
  // surrogate, a ZIP entry whose CRC or declared size is wrong.
  ['../ingest/blank.pdf', 'invalid_file'],
  ['../ingest/empty.txt', 'invalid_file'],
  ['../ingest/bad_surrogate.txt', 'invalid_file'],
  ['../ingest/bad_crc.docx', 'invalid_file'],
  ['../ingest/liar.docx', 'invalid_file'],
];

const MARKUP = /<\/?[A-Za-z][\w:-]*(\s[^>]*)?\/?>|&amp;|&lt;|w:t|a:t|%PDF|endobj|\/FlateDecode|PK\u0003\u0004|\uFEFF|\uFFFD|\r/;

async function contentOf(c, vsId, fileId) {
  const parts = [];
  for await (const p of c.vectorStores.files.content(fileId, { vector_store_id: vsId })) parts.push(p);
  assert.ok(parts.every((p) => p.type === 'text'));
  return parts.map((p) => p.text).join('');
}

describe('file types', () => {
  let s;
  let c;
  before(async () => { s = await startServer(); c = openai(s); });
  after(async () => { await s.stop(); });

  test('every readable type: uploadAndPoll completes; search finds each file by its word; chunks are the extracted text', async () => {
    const vs = await c.vectorStores.create({ name: 'all types' });
    const ids = {};
    for (const [name] of READABLE) {
      const vf = await c.vectorStores.files.uploadAndPoll(vs.id, fs.createReadStream(path.join(DIR, name)), poll);
      assert.equal(vf.status, 'completed', `${name}: ${JSON.stringify(vf.last_error)}`);
      assert.equal(vf.last_error, null);
      assert.ok(vf.usage_bytes > 0, name);
      assert.equal((await c.files.retrieve(vf.id)).filename, name);
      ids[name] = vf.id;
    }
    // The SDK's other client shape, same store: the sniffed PDF.
    const sniffed = await azure(s).vectorStores.files.uploadAndPoll(vs.id, fs.createReadStream(SNIFFED[0]), poll);
    assert.equal(sniffed.status, 'completed', JSON.stringify(sniffed.last_error));
    const store = await c.vectorStores.retrieve(vs.id);
    const n = READABLE.length + 1;
    assert.deepEqual(store.file_counts, { in_progress: 0, completed: n, failed: 0, cancelled: 0, total: n });

    for (const [name, word, phrase, kind] of [...READABLE, ['sample_noext', SNIFFED[1], SNIFFED[2], 'doc']]) {
      const id = name === 'sample_noext' ? sniffed.id : ids[name];
      const page = await c.vectorStores.search(vs.id, { query: word });
      assert.ok(page.data.length >= 1, `${name}: nothing found for ${word}`);
      // The word is in this file alone: it ranks first, and every chunk that
      // contains it is this file's (pseudo-relevance feedback may add other
      // files' chunks below, found by related words).
      assert.equal(page.data[0].file_id, id, `${name}: its own chunk first`);
      const withWord = page.data.filter((r) => r.content.some((p) => p.text.toLowerCase().includes(word.toLowerCase())));
      assert.ok(withWord.length >= 1, `${name}: no result contains ${word}`);
      assert.deepEqual(withWord.map((r) => r.file_id), withWord.map(() => id), `${name}: only its own chunks contain ${word}`);
      const hit = page.data[0];
      assert.equal(hit.filename, name);
      assert.ok(hit.score > 0 && hit.score <= 1, `${name}: score ${hit.score}`);
      const chunk = hit.content.map((p) => p.text).join('');
      assert.ok(chunk.includes(phrase), `${name}: chunk ${JSON.stringify(chunk)} lacks ${JSON.stringify(phrase)}`);
      const whole = await contentOf(c, vs.id, id);
      assert.ok(whole.includes(phrase), `${name}: content ${JSON.stringify(whole)}`);
      if (kind === 'doc') {
        assert.doesNotMatch(chunk, MARKUP, `${name}: markup left in ${JSON.stringify(chunk)}`);
        assert.doesNotMatch(whole, MARKUP, `${name}: markup left in ${JSON.stringify(whole)}`);
      }
    }

    // What extraction drops and keeps, per format.
    const html = await contentOf(c, vs.id, ids['page.html']);
    assert.match(html, /Courier schedule/);
    assert.doesNotMatch(html, /scriptonly|commentonly|color: red/);
    const pdf = await contentOf(c, vs.id, ids['manual.pdf']);
    assert.match(pdf, /Turbine manual\.\s+The obsidian turbine requires a quarterly inspection\.\s+Replace the filter every spring\./);
    const docx = await contentOf(c, vs.id, ids['memo.docx']);
    assert.match(docx, /^Memo\s+The walrus committee/);
    const pptx = await contentOf(c, vs.id, ids['slides.pptx']);
    assert.match(pptx, /Roadmap\s+The heliotrope milestone ships in May\.\s+Questions\?/);
    // UTF-16 (both byte orders, with BOM) is decoded, CRLF becomes LF.
    assert.equal(await contentOf(c, vs.id, ids['utf16le.txt']), 'Die Zugspitze ist der h\u00f6chste Berg \u2014 \u96ea \u{1F3D4}\n');
    assert.equal(await contentOf(c, vs.id, ids['utf16be.txt']), 'Le Matterhorn est c\u00e9l\u00e8bre \u2014 \u5c71\n');
    // Plain text and source code come back byte for byte.
    for (const name of ['notes.txt', 'guide.md', 'config.json', 'sorter.py', 'app.js', 'hello.c', 'server.go', 'deploy.sh']) {
      assert.equal(await contentOf(c, vs.id, ids[name]), fs.readFileSync(path.join(DIR, name), 'utf8'), name);
    }
    // A non-ASCII word of a UTF-16 file is searchable too.
    const h = await c.vectorStores.search(vs.id, { query: 'h\u00f6chste' });
    assert.equal(h.data[0]?.file_id, ids['utf16le.txt']);
  });

  test('unsupported types end failed with unsupported_file, broken files with invalid_file; neither is searchable', async () => {
    const vs = await c.vectorStores.create({ name: 'bad files' });
    const good = await c.vectorStores.files.uploadAndPoll(vs.id, fs.createReadStream(path.join(DIR, 'notes.txt')), poll);
    assert.equal(good.status, 'completed');
    for (const [name, code] of FAILING) {
      const vf = await c.vectorStores.files.uploadAndPoll(vs.id, fs.createReadStream(path.join(DIR, name)), poll);
      assert.equal(vf.status, 'failed', `${name} ended ${vf.status}`);
      assert.equal(vf.last_error?.code, code, `${name}: ${JSON.stringify(vf.last_error)}`);
      assert.ok(vf.last_error.message.length > 0);
      // The file itself stays a valid File; only its indexing failed.
      assert.equal((await c.files.retrieve(vf.id)).filename, path.basename(name));
    }
    // The same, in one batch: counts are consistent.
    const batch = await c.vectorStores.fileBatches.uploadAndPoll(vs.id, {
      files: FAILING.map(([name]) => fs.createReadStream(path.join(DIR, name))),
    }, poll);
    assert.equal(batch.status, 'failed'); // every file of it failed (assistd's rule: status from its files)
    assert.deepEqual(batch.file_counts, { in_progress: 0, completed: 0, failed: FAILING.length, cancelled: 0, total: FAILING.length });
    const failed = [];
    for await (const f of c.vectorStores.fileBatches.listFiles(batch.id, { vector_store_id: vs.id, filter: 'failed' })) failed.push(f);
    const nameOf = async (id) => (await c.files.retrieve(id)).filename;
    const codes = {};
    for (const f of failed) codes[await nameOf(f.id)] = f.last_error.code;
    assert.deepEqual(codes, Object.fromEntries(FAILING.map(([name, code]) => [path.basename(name), code])));
    const store = await c.vectorStores.retrieve(vs.id);
    const total = 1 + 2 * FAILING.length;
    assert.deepEqual(store.file_counts, { in_progress: 0, completed: 1, failed: total - 1, cancelled: 0, total });
    // Nothing of the failed files is searchable: the PDF's catalog, the
    // pretend presentation and the Latin-1 text have words, none is found.
    for (const q of ['Catalog', 'pretending presentation', 'Latin', 'periwinkle']) {
      const page = await c.vectorStores.search(vs.id, { query: q });
      assert.ok(page.data.every((r) => r.file_id === good.id), `${q}: ${JSON.stringify(page.data.map((r) => r.filename))}`);
    }
  });
});
