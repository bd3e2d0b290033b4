// The local console (docs/console.md) over plain HTTP: funcie connect records what the cloud
// sends through a real redis-server, `funcie connect --ui` serves it on 127.0.0.1 behind a
// token with Host and Origin checked, pushes new invocations as server-sent events, replays
// one against the local handler and saves it as a fixture; `funcie invoke` runs events
// without any broker.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import { funcieBin } from './lib/harness.mjs';
import { eventually, startCloud, startRedis } from './lib/tunnel.mjs';
import { apiOf, request, startConnectUi, tempDir, writeHandler } from './lib/console.mjs';

const execFileP = promisify(execFile);
let redis, cloud, connect, dir, handler, api;
const app = 'console-http';

before(async () => {
  dir = tempDir();
  handler = writeHandler(dir);
  redis = await startRedis();
  cloud = await startCloud({ url: redis.url, app });
  connect = await startConnectUi({ redis, app, dir, handler });
  api = apiOf(connect.page);
});

after(async () => {
  await connect?.stop();
  await cloud?.stop();
  await redis?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const seen = new Set();

/** Invokes through the cloud and resolves its answer and the row recorded for it (found by
 * its event, each test sending events of its own). */
async function invokeAndFind(event) {
  const r = await cloud.invoke(event);
  const text = JSON.stringify(event);
  const row = await eventually(async () => {
    const { invocations } = await api(`/api/invocations?limit=20&q=${encodeURIComponent(text)}`);
    return invocations.find((e) => e.source === 'tunnel' && !seen.has(e.id));
  }, { ms: 5000, what: `the row of ${text}` });
  seen.add(row.id);
  return { response: r, row };
}

test('a request without the token, with a foreign Host or a foreign Origin is refused', async () => {
  const { port, token } = connect.page;
  for (const target of ['/', '/api/invocations', '/api/invocations/1', '/api/events']) {
    assert.equal((await request(port, { target })).status, 401, target);
    assert.equal((await request(port, { target: `${target}?token=${'0'.repeat(32)}` })).status, 401, target);
  }
  const withToken = { 'X-Funcie-Token': token };
  assert.equal((await request(port, { target: '/api/invocations', headers: withToken })).status, 200);
  assert.equal((await request(port, { target: `/?token=${token}` })).status, 200);
  // DNS rebinding: the right token, a foreign Host.
  const rebound = await request(port, { target: '/api/invocations', headers: { ...withToken, Host: `evil.example:${port}` } });
  assert.equal(rebound.status, 403);
  assert.match(rebound.body, /Host/);
  // A page on another origin (its fetch carries Origin), or one the browser marks cross-site.
  assert.equal((await request(port, { target: '/api/invocations', headers: { ...withToken, Origin: 'http://evil.example' } })).status, 403);
  assert.equal((await request(port, {
    method: 'POST', target: '/api/replay',
    headers: { ...withToken, Origin: 'http://evil.example', 'Content-Type': 'application/json' }, body: '{"id":1}',
  })).status, 403);
  assert.equal((await request(port, { target: '/api/invocations', headers: { ...withToken, 'Sec-Fetch-Site': 'cross-site' } })).status, 403);
  // The page's own origin passes, and answers are not to be framed or cached.
  const own = await request(port, { target: '/api/invocations', headers: { ...withToken, Origin: `http://127.0.0.1:${port}` } });
  assert.equal(own.status, 200);
  assert.equal(own.headers['x-frame-options'], 'DENY');
  assert.equal(own.headers['cache-control'], 'no-store');
});

test('an invocation from the cloud is recorded whole: event, response, logs, timing', async () => {
  const { response, row } = await invokeAndFind({ order: 7, note: 'first' });
  const detail = await api(`/api/invocations/${row.id}`);
  assert.deepEqual(JSON.parse(detail.event), { order: 7, note: 'first' });
  assert.equal(detail.response, response.body);
  assert.deepEqual(JSON.parse(detail.response), { answer: { order: 7, note: 'first' }, by: 'local' });
  assert.match(detail.logs, new RegExp(`handling ${detail.request_id}: \\{"order":7`));
  assert.equal(detail.outcome, 'ok');
  assert.equal(detail.trigger, 'direct');
  assert.equal(detail.session.length > 0, true);
  assert.match(detail.environment, new RegExp(`^${app}#1$`));
  assert.ok(detail.duration_us > 0);

  const failed = await invokeAndFind({ fail: true });
  assert.equal(failed.response.headers.get('x-amz-function-error'), 'Unhandled');
  const f = await api(`/api/invocations/${failed.row.id}`);
  assert.equal(f.outcome, 'error');
  assert.equal(f.error_type, 'Test.Failure');
  assert.equal(f.error_message, 'asked to fail');
  assert.match(f.response, /bootstrap:10/);
  // Filters.
  const { invocations } = await api(`/api/invocations?outcome=error&app=${app}`);
  assert.deepEqual(invocations.map((e) => e.id), [failed.row.id]);
  const { invocations: found } = await api('/api/invocations?q=first');
  assert.deepEqual(found.map((e) => e.id), [row.id]);
});

test('new invocations are pushed as server-sent events within a second', async () => {
  const { port, token } = connect.page;
  const { last_id: lastId } = await api('/api/invocations?limit=1');
  const events = [];
  let notify;
  const req = http.get({ host: '127.0.0.1', port, path: `/api/events?token=${token}&after=${lastId}`, headers: { Host: `127.0.0.1:${port}` } });
  const res = await new Promise((resolve, reject) => { req.on('response', resolve); req.on('error', reject); });
  assert.equal(res.statusCode, 200);
  assert.match(res.headers['content-type'], /text\/event-stream/);
  let text = '';
  res.setEncoding('utf8');
  res.on('data', (d) => {
    text += d;
    for (let end; (end = text.indexOf('\n\n')) >= 0;) {
      const block = text.slice(0, end);
      text = text.slice(end + 2);
      const data = block.split('\n').find((l) => l.startsWith('data: '));
      if (data) { events.push({ at: Date.now(), row: JSON.parse(data.slice(6)) }); notify?.(); }
    }
  });
  try {
    const r = await cloud.invoke({ order: 8 });
    const answered = Date.now();
    assert.equal(r.status, 200);
    while (events.length === 0) {
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no event within 5 s')), 5000);
        notify = () => { clearTimeout(timer); resolve(); };
      });
    }
    const pushed = events[0];
    assert.equal(pushed.row.id, lastId + 1);
    const after = pushed.at - answered;
    console.log(`pushed ${after} ms after the cloud's answer`);
    assert.ok(after < 1000, `pushed ${after} ms after the answer`);
  } finally {
    req.destroy();
  }
});

test('Replay runs the recorded (or edited) event against the local handler as a new entry', async () => {
  const { row } = await invokeAndFind({ order: 9 });
  const replayed = await api('/api/replay', { method: 'POST', body: { id: row.id } });
  assert.equal(replayed.source, 'replay');
  assert.equal(replayed.replay_of, row.id);
  assert.ok(replayed.id > row.id);
  assert.deepEqual(JSON.parse(replayed.response), { answer: { order: 9 }, by: 'local' });
  assert.match(replayed.logs, /handling [0-9a-f-]+: \{"order":9\}/);
  const edited = await api('/api/replay', { method: 'POST', body: { id: row.id, event: '{"order":10}' } });
  assert.deepEqual(JSON.parse(edited.response), { answer: { order: 10 }, by: 'local' });
  // An edit that broke the JSON is refused, as Lambda refuses such a payload: the handler
  // never gets it and no entry is added.
  for (const target of ['/api/replay', '/api/fixtures']) {
    const broken = await request(connect.page.port, {
      method: 'POST', target, headers: { 'X-Funcie-Token': connect.page.token, 'Content-Type': 'application/json' },
      body: JSON.stringify({ id: row.id, event: '{"order":', name: 'broken' }),
    });
    assert.equal(broken.status, 400, `${target}: ${broken.body}`);
    assert.match(broken.body, /not valid JSON/);
  }
  assert.equal(existsSync(path.join(dir, 'events', 'broken.json')), false);
  const { invocations } = await api('/api/invocations?limit=5');
  assert.ok(invocations.some((e) => e.id === edited.id && e.source === 'replay'));
});

test('Save as fixture writes events/NAME.json, never over a file unasked', async () => {
  const { row } = await invokeAndFind({ order: 11, items: [1, 2] });
  const saved = await api('/api/fixtures', { method: 'POST', body: { id: row.id, name: 'order-11' } });
  const file = path.join(dir, 'events', 'order-11.json');
  assert.equal(saved.path, file);
  assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { order: 11, items: [1, 2] });
  const again = await request(connect.page.port, {
    method: 'POST', target: '/api/fixtures', headers: { 'X-Funcie-Token': connect.page.token, 'Content-Type': 'application/json' },
    body: JSON.stringify({ id: row.id, name: 'order-11' }),
  });
  assert.equal(again.status, 409);
  const bad = await request(connect.page.port, {
    method: 'POST', target: '/api/fixtures', headers: { 'X-Funcie-Token': connect.page.token, 'Content-Type': 'application/json' },
    body: JSON.stringify({ id: row.id, name: '../escape' }),
  });
  assert.equal(bad.status, 400);
  assert.equal(existsSync(path.join(dir, 'escape.json')), false);

  // funcie invoke takes the fixture, with no broker at all.
  const history = path.join(dir, 'invoke-history.sqlite3');
  const ok = await execFileP(funcieBin, ['invoke', '--history', history, '--event', file, '--', 'bash', handler], { cwd: dir });
  assert.deepEqual(JSON.parse(ok.stdout), { answer: { order: 11, items: [1, 2] }, by: 'local' });
  assert.match(ok.stderr, /handling [0-9a-f-]+: \{"order":11/);
});

test('funcie invoke: stdin, a function error exits 1, --from-history runs a recorded event', async () => {
  const history = path.join(dir, 'invoke-history.sqlite3');
  const run = (args, input, { from = history } = {}) => new Promise((resolve) => {
    const child = execFile(funcieBin, ['invoke', '--history', from, ...args], { cwd: dir }, (error, stdout, stderr) => {
      resolve({ code: error ? error.code : 0, stdout, stderr });
    });
    if (input !== undefined) child.stdin.end(input);
  });
  const fromStdin = await run(['--event', '-', '--', 'bash', handler], '{"n":1}');
  assert.equal(fromStdin.code, 0, fromStdin.stderr);
  assert.deepEqual(JSON.parse(fromStdin.stdout), { answer: { n: 1 }, by: 'local' });
  const failed = await run(['--event', '-', '--', 'bash', handler], '{"fail":1}');
  assert.equal(failed.code, 1);
  assert.equal(JSON.parse(failed.stdout).errorType, 'Test.Failure');
  assert.match(failed.stderr, /Test\.Failure: asked to fail/);
  // The connect session's history: replay a cloud invocation by its request id.
  const { row } = await invokeAndFind({ order: 12 });
  const replay = await run(['--from-history', row.request_id, '--', 'bash', handler], undefined, { from: connect.history });
  assert.equal(replay.code, 0, replay.stderr);
  assert.deepEqual(JSON.parse(replay.stdout), { answer: { order: 12 }, by: 'local' });
  // A project's function by name, from its funcie.toml (no command on the line), with an
  // event saved by the page before.
  const project = tempDir();
  try {
    writeFileSync(path.join(project, 'funcie.toml'),
      `[functions.shop]\ncommand = ["bash", ${JSON.stringify(handler)}]\nenv = { STAGE = "dev" }\n`);
    const fixture = path.join(dir, 'events', 'order-11.json');
    const byName = await new Promise((resolve) => execFile(funcieBin, ['invoke', '--history', history, '--app', 'shop', '--event', fixture],
      { cwd: project }, (error, stdout, stderr) => resolve({ code: error ? error.code : 0, stdout, stderr })));
    assert.equal(byName.code, 0, byName.stderr);
    assert.deepEqual(JSON.parse(byName.stdout), { answer: { order: 11, items: [1, 2] }, by: 'local' });
    const unknownApp = await new Promise((resolve) => execFile(funcieBin, ['invoke', '--no-history', '--app', 'nope', '--event', fixture],
      { cwd: project }, (error, stdout, stderr) => resolve({ code: error ? error.code : 0, stdout, stderr })));
    assert.equal(unknownApp.code, 2);
    assert.match(unknownApp.stderr, /--app nope: .* has no such function \(it has shop\)/);
  } finally {
    rmSync(project, { recursive: true, force: true });
  }
  // Bad input: a clear line, exit 2.
  const missing = await run(['--event', path.join(dir, 'nope.json'), '--', 'bash', handler]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--event: cannot read/);
  const unknown = await run(['--from-history', 'ffffffff-0000', '--', 'bash', handler]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /no such invocation/);
});

test('funcie ui in another process shows what funcie connect records, as it comes', async () => {
  const { spawn } = await import('node:child_process');
  const child = spawn(funcieBin, ['ui', '--history', connect.history, '--app', app, '--', 'bash', handler], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    let out = '';
    const url = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`funcie ui printed no URL: ${out}`)), 10000);
      child.stdout.on('data', (d) => {
        out += d;
        const m = out.match(/console (http:\/\/127\.0\.0\.1:(\d+)\/\?token=([0-9a-f]{32}))/);
        if (m) { clearTimeout(timer); resolve({ url: m[1], port: Number(m[2]), token: m[3] }); }
      });
      child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`funcie ui exited ${code}: ${out}`)); });
    });
    assert.notEqual(url.token, connect.page.token);  // a new token per server
    const uiApi = apiOf(url);
    const before = await uiApi('/api/invocations?limit=1000');
    assert.ok(before.invocations.length >= 5);
    const r = await cloud.invoke({ order: 13 });
    assert.equal(r.status, 200);
    const row = await eventually(async () => (await uiApi('/api/invocations?q=%7B%22order%22%3A13%7D')).invocations[0], { ms: 5000 });
    assert.equal(row.app, app);
    // Its Replay runs the command it was given.
    const replayed = await uiApi('/api/replay', { method: 'POST', body: { id: row.id } });
    assert.deepEqual(JSON.parse(replayed.response), { answer: { order: 13 }, by: 'local' });
  } finally {
    child.kill('SIGINT');
    await new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)));
  }
});
