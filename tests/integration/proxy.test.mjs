// `funcie proxy`, the proxy-only bootstrap (seed 003), run by `funcie emulate` as the
// function's runtime, with a real redis-server (with a password) and `funcie connect`:
//   funcie emulate -> funcie proxy -> redis-server -> funcie connect -> the local runtime.
// There is no function code in the cloud: nobody connected is the error Funcie.NoConsumer.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { childPids, ended, funcieBin, ricBin, startEmulate } from './lib/harness.mjs';
import { startCloud, startConnect, startRedis, where } from './lib/tunnel.mjs';

const password = 'hunter2-proxy';
let redis;
let appNumber = 0;
const nextApp = () => `proxy-${process.pid}-${++appNumber}`;

before(async () => { redis = await startRedis({ password }); });
after(async () => { await redis?.close(); });

/** `funcie emulate` running `command` (default `funcie proxy`) for a fresh app. */
async function proxyCloud(t, { command = [funcieBin, 'proxy'], env = {}, timeout = 30 } = {}) {
  const app = nextApp();
  const em = await startCloud({ url: redis.url, app, env, args: ['--timeout', String(timeout)], command });
  t.after(() => em.stop());
  return { app, em };
}

async function connect(t, app, options = {}) {
  const local = await startConnect({ url: redis.url, app, ...options });
  t.after(() => local.stop('SIGKILL'));
  return local;
}

function functionError(res) {
  assert.equal(res.status, 200, `a function error is still a 200: ${res.body}`);
  assert.equal(res.headers.get('x-amz-function-error'), 'Unhandled', res.body);
  return JSON.parse(res.body);
}

/** Invokes with nobody connected: Funcie.NoConsumer, fast, naming the app, no password. */
/**
 * One invocation answered Funcie.NoConsumer "at once": within `boundMs`, far below the
 * seconds a claim window or heartbeat would cost. The first invocation of an environment
 * also starts the runtime process (slow under sanitizers), so it gets a looser bound.
 */
const coldBoundMs = 2000;

async function assertNoConsumer(em, app, boundMs = 1000) {
  const start = performance.now();
  const res = await em.invoke({ where: true });
  const took = performance.now() - start;
  const error = functionError(res);
  assert.equal(error.errorType, 'Funcie.NoConsumer', res.body);
  assert.ok(error.errorMessage.includes(`app '${app}'`), res.body);
  assert.ok(error.errorMessage.includes(res.headers.get('x-amzn-requestid')), res.body);
  assert.match(error.errorMessage, /funcie connect --backend URL --app \S+/);
  assert.ok(error.errorMessage.includes(`127.0.0.1:${redis.port}`), res.body);
  assert.ok(!res.body.includes(password), `the password never reaches the caller: ${res.body}`);
  assert.ok(took < boundMs, `answered in ${took.toFixed(0)} ms (bound ${boundMs} ms)`);
  return took;
}

test('with a consumer connected, the local handler answers byte for byte, errors typed', async (t) => {
  const { app, em } = await proxyCloud(t);
  await connect(t, app);
  const events = [
    ' {"text":"z\\u00fcrich \\"quoted\\" \\n","emoji":"🦆","n":[1,2.50,-0e3]}  ',
    JSON.stringify({ big: 'x'.repeat(1 << 20) }),
  ];
  for (const event of events) {
    const res = await em.invoke(event);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-amz-function-error'), null, res.body.slice(0, 200));
    assert.ok(res.body === event, `the response differs from the event (${res.body.length} vs ${event.length} bytes)`);
  }
  assert.equal(await where(em), 'local');
  const error = functionError(await em.invoke({ throw: 'the local handler broke' }));
  assert.deepEqual(error, { errorMessage: 'the local handler broke', errorType: 'std::runtime_error', stackTrace: [] });
});

test('with nobody connected the caller gets Funcie.NoConsumer at once; a later connect gets the next one', async (t) => {
  const { app, em } = await proxyCloud(t);
  const times = [];
  for (let i = 0; i < 3; i++) times.push(await assertNoConsumer(em, app, i === 0 ? coldBoundMs : 1000));
  t.diagnostic(`Funcie.NoConsumer in ${times.map((ms) => ms.toFixed(1)).join(', ')} ms`);

  const local = await connect(t, app);
  assert.equal(await where(em), 'local', 'the first invocation after connect runs locally');
  assert.equal(await where(em), 'local');
  const { code } = await local.stop('SIGINT');
  assert.equal(code, 0);
  await assertNoConsumer(em, app);
  assert.ok(!em.stderr().includes(password), 'the password never shows in the function log');
});

test('no FUNCIE_BACKEND, or a bad FUNCIE_* value, is the init error Funcie.ConfigError', async (t) => {
  const em = await startEmulate({ command: [funcieBin, 'proxy'] });
  t.after(() => em.stop());
  for (let i = 0; i < 2; i++) {
    const error = functionError(await em.invoke({}));
    assert.equal(error.errorType, 'Funcie.ConfigError');
    assert.match(error.errorMessage, /FUNCIE_BACKEND is not set/);
  }

  const { em: bad } = await proxyCloud(t, { env: { FUNCIE_HEARTBEAT_MS: '5' } });
  const res = await bad.invoke({});
  const error = functionError(res);
  assert.equal(error.errorType, 'Funcie.ConfigError');
  assert.match(error.errorMessage, /FUNCIE_HEARTBEAT_MS/);
  assert.ok(!res.body.includes(password) && !bad.stderr().includes(password));
});

test('the binary named bootstrap, run with no arguments, is the proxy; SIGTERM ends it', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'funcie-proxy-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const bootstrap = path.join(dir, 'bootstrap');
  symlinkSync(funcieBin, bootstrap);
  const { app, em } = await proxyCloud(t, { command: [bootstrap] });
  await assertNoConsumer(em, app, coldBoundMs);
  await connect(t, app);
  assert.equal(await where(em), 'local');

  const [proxy] = await childPids(em.child.pid);
  assert.ok(proxy, 'emulate runs the proxy');
  process.kill(proxy, 'SIGTERM');
  assert.ok(await ended(proxy, 1000), 'SIGTERM ends the proxy');
  assert.equal(await where(em), 'local', 'emulate starts a new one');
});

test('connect --hold: the caller waits while the handler fails, and gets the fixed answer', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'funcie-proxy-hold-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const mode = path.join(dir, 'mode.txt');
  writeFileSync(mode, 'broken');
  writeFileSync(path.join(dir, 'handler.mjs'), `
import { readFileSync } from 'node:fs';
export const handler = async (event) => {
  if (readFileSync(${JSON.stringify(mode)}, 'utf8').trim() !== 'fixed') throw new TypeError('not fixed yet');
  return { fixed: true, n: event.n };
};
`);
  const { app, em } = await proxyCloud(t);
  const local = await connect(t, app, { command: [process.execPath, ricBin, 'handler.handler'], cwd: dir, args: ['--hold'] });
  let settled = false;
  const pending = em.invoke({ n: 7 }).finally(() => { settled = true; });
  await local.waitFor(/held TypeError/);
  await sleep(300);
  assert.equal(settled, false, 'the caller is still waiting while the request is held');
  writeFileSync(mode, 'fixed');
  process.kill(local.pid, 'SIGUSR1');
  const res = await pending;
  assert.equal(res.headers.get('x-amz-function-error'), null, res.body);
  assert.deepEqual(JSON.parse(res.body), { fixed: true, n: 7 });
});
