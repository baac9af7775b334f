// Hostile code through the official SDK: the scripted model submits code
// that attacks the sandbox -- a fork bomb, a memory bomb, an endless loop
// (also one that ignores SIGINT), a disk filler, network access, reading
// host files and other sessions' files, ptrace/mount/unshare, killing its
// parent, writing outside /mnt/data, a gigabyte to stdout, closing or
// flooding the protocol pipes. Each time the run completes, the model is
// told what happened (the tool message it reads next), the server stays
// healthy, and a bystander thread's session keeps its variables and files.
// The executions are logged and counted in /metrics by exit reason. A second
// server shows the reset notice when an evicted session's thread comes back.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { raw } from './lib/server.mjs';
import { setupRuns } from './lib/runs.mjs';

const poll = { pollIntervalMs: 25 };
const code = (src) => ({ tool_calls: [{ name: 'code_interpreter', arguments: JSON.stringify({ code: src }) }] });

// Runs `src` as the model's code in `threadId`; returns what the model was
// told (the tool message of its next call) and the step's outputs.
async function runCode(t, asst, threadId, src) {
  const { client, up } = t;
  up.script(code(src), { text: 'Noted.' });
  await client.beta.threads.messages.create(threadId, { role: 'user', content: 'Run it.' });
  const run = await client.beta.threads.runs.createAndPoll(threadId, { assistant_id: asst.id }, poll);
  assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
  const last = up.requests.at(-1).body.messages;
  const told = last.filter((m) => m.role === 'tool').at(-1).content;
  const steps = await client.beta.threads.runs.steps.list(run.id, { thread_id: threadId });
  const ci = steps.data.find((s) => s.type === 'tool_calls').step_details.tool_calls[0].code_interpreter;
  return { told, outputs: ci.outputs };
}

describe('hostile code', () => {
  let t;
  let asst;
  let bystander;
  before(async () => {
    t = await setupRuns({
      args: ['--sandbox-timeout', '2', '--sandbox-disk', '16M', '--sandbox-file-size', '8M',
        '--sandbox-max-sessions', '16', '--sandbox-spares', '1'],
    });
    asst = await t.client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'code_interpreter' }] });
    bystander = (await t.client.beta.threads.create()).id;
    const r = await runCode(t, asst, bystander, 'canary = 12345\nopen("/mnt/data/canary.txt", "w").write("mine")\nprint("set")');
    assert.match(r.told, /^set\n/);
  });
  after(async () => { await t.close(); });

  // After every attack: the server answers, the bystander's session kept its
  // variable and its file.
  async function unaffected() {
    const h = await raw(t.s, 'GET', '/healthz', { key: null, beta: false });
    assert.equal(h.status, 200);
    const r = await runCode(t, asst, bystander, 'print(canary, open("/mnt/data/canary.txt").read())');
    assert.equal(r.told.trim(), '12345 mine');
  }
  async function attack(src) {
    const th = (await t.client.beta.threads.create()).id;
    const r = await runCode(t, asst, th, src);
    return { ...r, thread: th };
  }

  test('fork bomb: process creation fails with EAGAIN at the per-session limit', async () => {
    const r = await attack('import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n'
      + '            time.sleep(3); os._exit(0)\n        n += 1\nexcept OSError as e:\n    print("fork refused after", n, "errno", e.errno)\n');
    const m = /fork refused after (\d+) errno 11/.exec(r.told);
    assert.ok(m, r.told);
    assert.ok(Number(m[1]) < 64, r.told);
    await unaffected();
  });

  test('memory bomb: MemoryError, exit reason killed-memory told to the model, the session lives on', async () => {
    const r = await attack('keep = 1\nblob = bytearray(3 * 1024**3)');
    assert.match(r.told, /MemoryError/);
    assert.match(r.told, /ran out of memory/);
    assert.equal(r.outputs[0].type, 'logs');
    assert.match(r.outputs[0].logs, /MemoryError/);
    const again = await runCode(t, asst, r.thread, 'print(keep)');
    assert.equal(again.told.trim(), '1');
    await unaffected();
  });

  test('endless loop: interrupted at the timeout with its state kept; one that ignores SIGINT is killed and the restart is announced', async () => {
    const r = await attack('survivor = 7\nwhile True:\n    pass\n');
    assert.match(r.told, /KeyboardInterrupt/);
    assert.match(r.told, /interrupted after 2 s/);
    assert.match(r.told, /timed out/);
    let again = await runCode(t, asst, r.thread, 'print(survivor)');
    assert.equal(again.told.trim(), '7');
    const r2 = await runCode(t, asst, r.thread, 'import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n');
    assert.match(r2.told, /timed out after 2 s and the Python process was stopped/);
    again = await runCode(t, asst, r.thread, 'print("survivor" in globals())');
    assert.match(again.told, /session was restarted/);
    assert.match(again.told, /False/);
    await unaffected();
  });

  test('disk filler: stopped at the quota, its files removed, the model told', async () => {
    const r = await attack('i = 0\nwhile True:\n    open("/mnt/data/f%d" % i, "wb").write(b"x" * (1 << 20)); i += 1\n');
    assert.match(r.told, /exceeded its 16777216-byte quota/);
    const again = await runCode(t, asst, r.thread, 'import os\nprint(sum(os.path.getsize("/mnt/data/" + f) for f in os.listdir("/mnt/data")) <= 16 << 20)');
    assert.match(again.told, /True/);
    await unaffected();
  });

  test('network: sockets, connect and DNS fail', async () => {
    const r = await attack('import socket\n'
      + 'try:\n    socket.create_connection(("1.1.1.1", 80), timeout=2); print("CONNECTED")\nexcept OSError as e:\n    print("connect blocked", e.errno)\n'
      + 'try:\n    socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); print("SOCKET")\nexcept OSError as e:\n    print("socket blocked", e.errno)\n'
      + 'try:\n    socket.getaddrinfo("example.com", 443); print("RESOLVED")\nexcept OSError as e:\n    print("dns blocked")\n');
    assert.match(r.told, /connect blocked 1\nsocket blocked 1\ndns blocked/);
    assert.doesNotMatch(r.told, /CONNECTED|SOCKET|RESOLVED/);
    await unaffected();
  });

  test('host files: /etc/shadow, the data directory and other sessions\' files are not there', async () => {
    const dataDir = t.s.dataDir;
    const r = await attack('import os\n'
      + `for p in ["/etc/shadow", "/etc/passwd", ${JSON.stringify(dataDir)}, ${JSON.stringify(`${dataDir}/assistd.db`)}, ${JSON.stringify(`${dataDir}/sandbox`)}, "/root", "/home", "/proc/1/root/etc/shadow"]:\n`
      + '    try:\n        open(p, "rb").read(1); print("READ", p)\n    except OSError as e:\n        print("no", type(e).__name__)\n'
      + 'found = [f for top in ("/mnt", "/tmp", "/run", "/var", "/srv") for d, _, fs in os.walk(top) for f in fs if f == "canary.txt"]\n'
      + 'print("mine:", os.listdir("/mnt/data"), "found:", found, "top:", sorted(os.listdir("/")))\n');
    assert.doesNotMatch(r.told, /READ/);
    assert.match(r.told, /mine: \[\] found: \[\] top: /);
    assert.doesNotMatch(r.told, /'(root|home|work|var|srv|opt)'/);
    await unaffected();
  });

  test('ptrace, mount and unshare fail with EPERM', async () => {
    const r = await attack('import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n'
      + 'print("ptrace", libc.ptrace(16, 1, None, None), ctypes.get_errno())\n'
      + 'print("mount", libc.mount(b"none", b"/mnt", b"tmpfs", 0, None), ctypes.get_errno())\n'
      + 'print("unshare", libc.unshare(0x10000000), ctypes.get_errno())\n');
    assert.match(r.told, /ptrace -1 1\nmount -1 1\nunshare -1 1/);
    await unaffected();
  });

  test('killing its parent: the server is out of reach, the run completes', async () => {
    const r = await attack('import os, signal, time\n'
      + 'for p in (os.getppid(), 1):\n    try:\n        os.kill(p, signal.SIGKILL)\n    except OSError as e:\n        print("kill", p, e.errno)\n'
      + 'time.sleep(0.3)\nprint("still here")\n');
    // Whatever became of the interpreter, the model was told and the next
    // execution of that thread works.
    assert.ok(r.told.length > 0);
    const again = await runCode(t, asst, r.thread, 'print("next")');
    assert.match(again.told, /next/);
    await unaffected();
  });

  // The bwrap root and /dev are tmpfs mounts remounted read-only once the
  // tree is built: only /mnt/data, /tmp and /dev/shm (bounded mounts of
  // their own) take writes.
  test('writing outside /mnt/data: read-only or refused everywhere else, /mnt/data and /tmp writable', async () => {
    const paths = ['/usr/x', '/etc/x', '/x', '/bin/x', '/mnt/x', '/dev/x', '/usr/lib/python3/x', '/etc/passwd'];
    const r = await attack('import os\n'
      + `for p in ${JSON.stringify(paths)}:\n`
      + '    try:\n        open(p, "a").write("pwned"); print("WROTE", p)\n'
      + '    except OSError as e:\n        print("refused", p, e.errno)\n'
      + 'open("/mnt/data/t", "w").write("d"); open("/tmp/t", "w").write("t")\n'
      + 'print("wrote", open("/mnt/data/t").read(), open("/tmp/t").read())\n');
    assert.match(r.told, /^wrote d t$/m);
    await unaffected();
    assert.doesNotMatch(r.told, /WROTE/);
    for (const p of paths) {
      // EROFS (30) or EACCES (13): a read-only mount or no permission.
      assert.match(r.told, new RegExp(`^refused ${p} (30|13)$`, 'm'), r.told);
    }
  });

  test('1 GB to stdout: the model gets a bounded, truncated log with a notice; the server\'s memory stays bounded', async () => {
    const rss = () => {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${t.s.proc.pid}/status`, 'utf8'));
      return Number(m[1]) * 1024;
    };
    const before = rss();
    const r = await attack('import sys\nsys.stdout.write("FIRST\\n")\n'
      + 'for _ in range(1024):\n    sys.stdout.write("x" * (1 << 20))\nprint("\\nTHE END")\n');
    const grown = rss() - before;
    // src/sandbox keeps the first 48 KiB and the last 16 KiB of a cell's
    // output, with a "[... N bytes truncated ...]" marker between them.
    assert.ok(r.told.length < 70 * 1024, `told ${r.told.length} chars`);
    assert.match(r.told, /^FIRST\n/);
    const m = /\[\.\.\. (\d+) bytes truncated \.\.\.\]/.exec(r.told);
    assert.ok(m, r.told.slice(0, 200));
    // Warm, the gigabyte takes about 1.6 s here (ASan build), close to this
    // server's 2 s timeout: on a loaded machine the cell may be interrupted
    // instead, which must then be said -- either way the log stays bounded.
    if (/execution interrupted after 2 s/.test(r.told)) {
      assert.match(r.told, /KeyboardInterrupt/);
      assert.ok(Number(m[1]) > 64 * 1024 * 1024, m[0]);
    } else {
      assert.match(r.told, /THE END\n?$/);
      assert.ok(Number(m[1]) > 1000 * 1024 * 1024, m[0]);
    }
    assert.equal(r.outputs[0].type, 'logs');
    assert.ok(r.outputs[0].logs.length < 70 * 1024);
    assert.ok(grown < 200 * 1024 * 1024, `server RSS grew by ${grown} bytes`);
    const again = await runCode(t, asst, r.thread, 'print("next")');
    assert.equal(again.told.trim(), 'next');
    await unaffected();
  });

  test('closing every descriptor (the protocol pipes included): the model is told the session ended, the next execution restarts it', async () => {
    const r = await attack('lost = 1\nimport os, time\nos.closerange(0, 4096)\ntime.sleep(0.3)\n');
    assert.match(r.told, /Python process ended unexpectedly/);
    assert.match(r.told, /next execution starts a new session/);
    const again = await runCode(t, asst, r.thread, 'print("lost" in globals())');
    assert.match(again.told, /session was restarted/);
    assert.match(again.told, /^False$/m);
    await unaffected();
  });

  test('flooding the protocol socket with a huge frame header and garbage: this session ends, the next execution restarts it', async () => {
    const r = await attack('lost = 1\nimport os, stat, time\n'
      + 'hit = 0\nfor fd in range(3, 64):\n    try:\n'
      + '        if stat.S_ISSOCK(os.fstat(fd).st_mode):\n'
      + '            os.write(fd, b"I 999999999999\\n" + b"x" * (1 << 20)); hit += 1\n'
      + '    except OSError:\n        pass\n'
      + 'time.sleep(0.5)\nprint("hit", hit)\n');
    assert.match(r.told, /Python process ended unexpectedly/);
    const again = await runCode(t, asst, r.thread, 'print("lost" in globals())');
    assert.match(again.told, /session was restarted/);
    assert.match(again.told, /^False$/m);
    await unaffected();
  });

  test('observability: every execution logged with its duration and exit reason, and counted in /metrics', async () => {
    const m = await raw(t.s, 'GET', '/metrics', { key: null, beta: false });
    assert.equal(m.status, 200);
    const count = (reason) => Number(new RegExp(`assistd_sandbox_executions_total\\{reason="${reason}"\\} (\\d+)`).exec(m.text)[1]);
    assert.ok(count('ok') >= 10, m.text);
    assert.equal(count('killed-memory'), 1);
    assert.ok(count('timeout') >= 2);
    assert.equal(count('killed-disk'), 1);
    const total = ['ok', 'error', 'timeout', 'killed-memory', 'killed-disk', 'crashed'].reduce((a, r) => a + count(r), 0);
    assert.match(m.text, new RegExp(`assistd_sandbox_execution_seconds_count ${total}\\n`));
    assert.match(m.text, /assistd_sandbox_spare_handouts_total [1-9]/);
    const log = t.s.logs();
    for (const reason of ['ok', 'timeout', 'killed-memory', 'killed-disk']) {
      assert.match(log, new RegExp(`sandbox: session thread_\\w+ exec \\d+\\.\\d ms exit=${reason} `), reason);
    }
  });
});

test('an evicted session: the next run of its thread is told the execution state was reset', async () => {
  const t = await setupRuns({ args: ['--sandbox-max-sessions', '1', '--sandbox-spares', '0'] });
  try {
    const asst = await t.client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'code_interpreter' }] });
    const a = (await t.client.beta.threads.create()).id;
    const b = (await t.client.beta.threads.create()).id;
    assert.equal((await runCode(t, asst, a, 'x = 5\nx')).told.trim(), '5');
    assert.equal((await runCode(t, asst, b, 'y = 6\ny')).told.trim(), '6'); // evicts a's session
    const r = await runCode(t, asst, a, 'x');
    assert.match(r.told, /code execution state was reset/);
    assert.match(r.told, /NameError/);
    assert.match(r.outputs[0].logs, /^\[sandbox: code execution state was reset/);
    assert.match(t.s.logs(), /evicted \(least recently used\)/);
  } finally {
    await t.close();
  }
});
