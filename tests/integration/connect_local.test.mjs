// The local side as a developer uses it (docs/local.md), end to end with the real binaries
// and a real redis-server: hot reload, hold and replay, debugging, the console a person
// reads (through a pty), the project file, and the function's credentials staying put.
//   funcie emulate -> funcie wrap -> redis-server -> funcie connect -> the local runtime.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { echoBin, funcieBin, repoRoot, ricBin } from './lib/harness.mjs';
import { eventually, startCloud, startConnect, startRedis, where } from './lib/tunnel.mjs';
import { connectInPty } from './lib/terminal.mjs';

const sanitized = Boolean(process.env.ASAN_OPTIONS);
let redis;
let appNumber = 0;
const nextApp = () => `local-${process.pid}-${++appNumber}`;
const esc = '\u001b';
const plain = (text) => text.replace(/\u001b\[[0-9;]*m/g, '');

before(async () => { redis = await startRedis(); });
after(async () => { await redis?.close(); });

/** A temp project dir with src/handler.mjs (watched) and state/ (not watched). */
function nodeProject(t) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'funcie-local-'));
  mkdirSync(path.join(dir, 'src'));
  mkdirSync(path.join(dir, 'state'));
  writeFileSync(path.join(dir, 'state/mode.txt'), 'ok');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const runs = () => (existsSync(path.join(dir, 'state/runs.log')) ? readFileSync(path.join(dir, 'state/runs.log'), 'utf8').trim().split('\n') : []);
  return {
    dir,
    src: path.join(dir, 'src'),
    runs,
    /** Writes the handler: `behaviour` is 'ok', 'throw', 'crash' or 'mode' (reads state/mode.txt). */
    write({ version, behaviour = 'ok' }) {
      writeFileSync(path.join(dir, 'src/handler.mjs'), `
import { appendFileSync, readFileSync } from 'node:fs';
const state = ${JSON.stringify(path.join(dir, 'state'))};
export const handler = async (event, context) => {
  appendFileSync(state + '/runs.log', context.awsRequestId + '\\n');
  const behaviour = ${JSON.stringify(behaviour)} === 'mode' ? readFileSync(state + '/mode.txt', 'utf8').trim() : ${JSON.stringify(behaviour)};
  if (behaviour === 'throw') throw new TypeError('not fixed yet');
  if (behaviour === 'crash') process.exit(3);
  if (event.sleep) await new Promise((r) => setTimeout(r, event.sleep));
  console.log('handled ' + event.n);
  return { statusCode: 200, version: ${version}, n: event.n, remaining: context.getRemainingTimeInMillis(), pid: process.pid };
};
`);
    },
    setMode(mode) { writeFileSync(path.join(dir, 'state/mode.txt'), mode); },
  };
}

const ric = (handler = 'handler.handler') => [process.execPath, ricBin, handler];

/** The cloud and a consumer for a fresh app; both stopped after the test. */
async function tunnel(t, { cloudTimeout = 30, cloudEnv = {}, cloudCommand, connect = {} } = {}) {
  const app = nextApp();
  const em = await startCloud({ url: redis.url, app, env: cloudEnv, args: ['--timeout', String(cloudTimeout)], command: cloudCommand });
  t.after(() => em.stop());
  let local = null;
  if (connect) {
    local = await startConnect({ url: redis.url, app, ...connect });
    t.after(() => local.stop('SIGKILL'));
  }
  return { app, em, local };
}

const parse = (r) => ({ error: r.headers.get('x-amz-function-error'), body: JSON.parse(r.body) });

test('--watch: a saved change reloads the runtimes, in-flight work finishes, the session stays', async (t) => {
  const p = nodeProject(t);
  p.write({ version: 1 });
  const { em, local } = await tunnel(t, { connect: { command: ric(), cwd: p.src, args: ['--watch', p.src] } });
  assert.equal(parse(await em.invoke({ n: 1 })).body.version, 1);

  // A slow invocation is running when the code changes: it finishes on the old code.
  const slow = em.invoke({ n: 2, sleep: 1500 });
  // Running (it has logged its start) before the change: no fixed pause a loaded machine
  // could outlast.
  await eventually(async () => p.runs().length === 2, { what: 'the slow invocation running' });
  const mark = local.length();
  p.write({ version: 2 });
  await local.waitFor(/reloaded \(.*handler\.mjs changed\)/, { from: mark });
  const old = parse(await slow);
  assert.equal(old.error, null);
  assert.equal(old.body.version, 1, 'the invocation in flight finished on the code it started with');
  const fresh = parse(await em.invoke({ n: 3 }));
  assert.equal(fresh.body.version, 2, 'the next invocation runs the saved code');
  assert.notEqual(fresh.body.pid, old.body.pid, 'a new runtime process');

  // A burst of saves is one reload (debounced).
  const before = (local.out.all.match(/reloaded \(/g) ?? []).length;
  for (let i = 0; i < 20; ++i) p.write({ version: 3 });
  await local.waitFor(/reloaded \(/, { from: local.length() - 1 }).catch(() => {});
  await sleep(800);
  const reloads = (local.out.all.match(/reloaded \(/g) ?? []).length - before;
  assert.equal(reloads, 1, local.out.all);
  assert.equal(parse(await em.invoke({ n: 4 })).body.version, 3);
  // One session all along: no reconnect, the same consumer.
  assert.doesNotMatch(local.out.stdout, /reconnected/);
  assert.equal((local.out.stdout.match(/serving app/g) ?? []).length, 1);
});

test('--hold: a failing handler does not fail the caller; the fixed code runs the same request', async (t) => {
  const p = nodeProject(t);
  p.write({ version: 1, behaviour: 'throw' });
  const { em, local } = await tunnel(t, { connect: { command: ric(), cwd: p.src, args: ['--hold', '--watch', p.src] } });
  let settled = false;
  const pending = em.invoke({ n: 7 }).finally(() => { settled = true; });
  await local.waitFor(/held TypeError/);
  await sleep(300);
  assert.equal(settled, false, 'the caller is still waiting while the request is held');
  p.write({ version: 2 });
  const r = parse(await pending);
  assert.equal(r.error, null, JSON.stringify(r.body));
  assert.deepEqual([r.body.version, r.body.n], [2, 7]);
  const runs = p.runs();
  assert.equal(runs.length, 2, 'ran twice: failed, then fixed');
  assert.equal(runs[0], runs[1], 'the same request id both times');
  assert.match(plain(local.out.stderr), /running 1 held request\(s\) again/);
});

test('--hold: a crash is held too, and kill -USR1 runs it again', async (t) => {
  const p = nodeProject(t);
  p.write({ version: 1, behaviour: 'mode' });
  p.setMode('crash');
  const { em, local } = await tunnel(t, { connect: { command: ric(), cwd: p.src, args: ['--hold'] } });
  const pending = em.invoke({ n: 8 });
  await local.waitFor(/held Runtime\.ExitError/);
  p.setMode('ok');
  process.kill(local.pid, 'SIGUSR1');
  const r = parse(await pending);
  assert.equal(r.error, null, JSON.stringify(r.body));
  assert.equal(r.body.n, 8);
  assert.match(local.out.stderr, /reloaded \(SIGUSR1\)/);
  // SIGHUP is no reload: it means the terminal closed, and funcie connect leaves as on Ctrl-C.
  process.kill(local.pid, 'SIGHUP');
  const [code] = await local.exited;
  assert.equal(code, 0);
  assert.match(local.out.stderr, /hangup \(the terminal closed\): leaving the tunnel/);
});

test('--hold gives the caller the last error before the deadline; without --hold errors return at once', async (t) => {
  const p = nodeProject(t);
  p.write({ version: 1, behaviour: 'throw' });
  {
    const { em, local } = await tunnel(t, { cloudTimeout: 4, connect: { command: ric(), cwd: p.src, args: ['--hold'] } });
    const started = Date.now();
    const r = parse(await em.invoke({ n: 1 }));
    const took = Date.now() - started;
    assert.equal(r.error, 'Unhandled');
    assert.equal(r.body.errorType, 'TypeError', 'the handler\'s own error, not a timeout');
    // The deadline's clock starts once the cloud runtime is up: under ASan that takes ~1 s,
    // and on a loaded machine the cold start of funcie wrap takes its time too.
    const coldStart = sanitized ? 3000 : 1500;
    assert.ok(took > 2500 && took < 4000 + coldStart, `answered after ${took} ms: held, then before the 4 s deadline`);
    await local.waitFor(/held until the cloud's deadline neared/);
  }
  {
    const { em } = await tunnel(t, { cloudTimeout: 4, connect: { command: ric(), cwd: p.src } });
    await em.invoke({ n: 0 });  // warm
    const started = Date.now();
    const r = parse(await em.invoke({ n: 2 }));
    assert.equal(r.body.errorType, 'TypeError');
    // At once, far from the 3.5 s a held one waits (room for a loaded machine).
    assert.ok(Date.now() - started < 2500, 'returned as Lambda would, at once');
  }
});

// The second invocation is made once the first runs (not after a fixed pause), so the order
// holds under ASan and on a loaded machine too.
test('queued beyond --concurrency, a request the cloud stopped waiting for never runs late', async (t) => {
  const p = nodeProject(t);
  p.write({ version: 1 });
  const { em } = await tunnel(t, { cloudTimeout: 4, connect: { command: ric(), cwd: p.src, args: ['--concurrency', '1'] } });
  await em.invoke({ n: 0 });  // warm
  // The one environment is busy past both callers' limits (deadline minus the 500 ms margin),
  // even when a busy machine makes the second caller 2 s late (6 s under ASan, where CI saw it
  // made 3.3 s after the first began).
  const busyMs = sanitized ? 10000 : 6000;
  const first = em.invoke({ n: 1, sleep: busyMs });
  // The first is running before the second is made (no fixed pause: a loaded machine may
  // take longer than any to hand it over).
  await eventually(async () => p.runs().length === 2, { what: 'the first invocation running' });
  const second = await em.invoke({ n: 2 });
  // The consumer says why, just before the forwarder would have given up.
  assert.equal(parse(second).body.errorType, 'Sandbox.Timedout', second.body);
  assert.match(parse(second).body.errorMessage, /waited for a free execution environment .*all 1 busy; more with --concurrency/);
  assert.equal(parse(await first).body.errorType, 'Funcie.Timeout');
  await sleep(busyMs - 2000);  // the environment is free again by now (busyMs after the first began)
  const runs = p.runs();
  assert.equal(runs.length, 2, `warm + first only: ${runs}`);
  assert.ok(!runs.includes(second.headers.get('x-amzn-requestid')), 'the queued request never ran after its caller was answered');
});

test('debugging with gdb: the handler sees the cloud deadline and a paused one is warned about', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'funcie-gdb-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const script = path.join(dir, 'pause.gdb');
  const go = path.join(dir, 'go');
  // Each time the handler is entered, "the developer" looks around until told to go on (the
  // file `go` exists): no fixed pause that a loaded machine could make too long or too short.
  writeFileSync(script, `set pagination off\nset confirm off\nbreak handle\ncommands\nsilent\nshell until [ -e ${go} ]; do sleep 0.05; done\ncontinue\nend\nrun\n`);
  const timeoutS = 21;  // the forwarder waits 20.5 s: warned 5 s before, at ~15.5 s
  const { em, local } = await tunnel(t, {
    cloudTimeout: timeoutS,
    connect: { command: ['gdb', '-q', '-batch', '-x', script, '--args', echoBin, 'local'], args: ['--concurrency', '1'] },
  });
  // Warm: gdb and the runtime start (slow on a loaded machine) before the timed invocation.
  writeFileSync(go, '');
  assert.equal(await where(em), 'local');
  rmSync(go);

  const started = Date.now();
  const pending = em.invoke({ context: true });
  // Paused at the breakpoint: the warning comes a quarter of the time (at most 5 s) before
  // the forwarder's limit; then the developer continues, in time.
  await local.waitFor(/still running, \d+\.\d s before the cloud stops waiting/, { ms: 30000 });
  const warnedAfter = Date.now() - started;
  writeFileSync(go, '');
  const r = await pending;
  assert.equal(r.headers.get('x-amz-function-error'), null, r.body);
  const ctx = JSON.parse(r.body);
  assert.ok(warnedAfter >= 10000, `warned after ${warnedAfter} ms: the breakpoint held the invocation`);
  // The cloud's deadline reached the handler: the timeout after the cloud invoked it.
  assert.ok(ctx.deadline_ms >= started + timeoutS * 1000 - 50 && ctx.deadline_ms < started + timeoutS * 1000 + 5000, JSON.stringify(ctx));
  assert.ok(ctx.remaining_ms > 0 && ctx.remaining_ms < timeoutS * 1000);
});

test('debugging Node with --inspect: the inspector is reachable and the handler sees the deadline', async (t) => {
  const p = nodeProject(t);
  p.write({ version: 1 });
  const { em, local } = await tunnel(t, {
    cloudTimeout: 20,
    connect: { command: [process.execPath, '--inspect=127.0.0.1:0', ricBin, 'handler.handler'], cwd: p.src, args: ['--concurrency', '1'] },
  });
  const r = parse(await em.invoke({ n: 5 }));
  assert.equal(r.error, null);
  assert.ok(r.body.remaining > 0 && r.body.remaining <= 20000, `remaining ${r.body.remaining}`);
  const m = await local.waitFor(/\[\S+#1(?: [0-9a-f]{8})?\] Debugger listening on ws:\/\/127\.0\.0\.1:(\d+)\//);
  const targets = await (await fetch(`http://127.0.0.1:${m[1]}/json/list`)).json();
  assert.ok(targets.length >= 1 && targets[0].webSocketDebuggerUrl, JSON.stringify(targets));
});

test('on a terminal: coloured lines, the trigger and status, handler output prefixed, r reloads', async (t) => {
  const app = nextApp();
  const em = await startCloud({ url: redis.url, app, args: ['--timeout', '30'] });
  t.after(() => em.stop());
  const p = nodeProject(t);
  p.write({ version: 1 });
  // aws-lambda-ric finds handler.handler in the working directory.
  const pty = connectInPty(t, ['--backend', redis.url, '--app', app, '--', ...ric()], { cwd: p.src });
  await pty.waitFor(/serving app/);
  await pty.waitFor(/r reloads/);
  const event = readFileSync(path.join(repoRoot, 'examples/events/apigw-http-get.json'), 'utf8');
  assert.equal((await em.invoke(event)).status, 200);
  // A terminal ends lines with \r\n.
  const m = await pty.waitFor(/\d\d:\d\d:\d\d\.\d{3}[^\n]*API Gateway v2[^\n]*\n/);
  assert.ok(m[0].includes(esc), 'coloured on a terminal');
  assert.match(plain(m[0]), /\d\d:\d\d:\d\d\.\d{3} [0-9a-f]{8} API Gateway v2 GET \/\S*\s+\d+ms ok 200/);
  pty.child.stdin.write('r');
  await pty.waitFor(/reloaded \(r pressed\)/);
  pty.child.kill('SIGINT');
});

test('on a terminal with --hold: the r key runs a held request again', async (t) => {
  const app = nextApp();
  const em = await startCloud({ url: redis.url, app, args: ['--timeout', '30'] });
  t.after(() => em.stop());
  const p = nodeProject(t);
  p.write({ version: 1, behaviour: 'mode' });
  p.setMode('throw');
  const pty = connectInPty(t, ['--backend', redis.url, '--app', app, '--hold', '--', ...ric()], { cwd: p.src });
  await pty.waitFor(/r reloads/);
  const pending = em.invoke({ n: 9 });
  await pty.waitFor(/held[^\n]*TypeError: not fixed yet[\s\S]*press r/);
  p.setMode('ok');
  pty.child.stdin.write('r');
  const r = parse(await pending);
  assert.equal(r.error, null, JSON.stringify(r.body));
  assert.equal(r.body.n, 9);
  await pty.waitFor(/reloaded \(r pressed\): running 1 held request\(s\) again/);
  pty.child.kill('SIGINT');
});

test('piped: plain lines, the trigger, the handler\'s output prefixed per environment, --verbose payloads', async (t) => {
  const { em, local } = await tunnel(t, { connect: { args: ['--verbose'] } });
  const event = readFileSync(path.join(repoRoot, 'examples/events/apigw-http-get.json'), 'utf8');
  await em.invoke(event);
  await em.invoke({ log: 'hello from the handler' });
  await local.waitFor(/hello from the handler \(on stderr\)/);
  await eventually(async () => (local.out.stderr.match(/ms ok/g) ?? []).length >= 2, { what: 'two lines' });
  const err = local.out.stderr;
  assert.ok(!err.includes(esc), 'no escape codes when piped');
  assert.match(err, /^\d\d:\d\d:\d\d\.\d{3} [0-9a-f]{8} API Gateway v2 GET \/\S*\s+\d+ms ok/m);
  assert.match(err, /^\d\d:\d\d:\d\d\.\d{3} [0-9a-f]{8} direct\s+\d+ms ok/m);
  // Each of the handler's lines carries its invocation's request id; the invocation's own
  // line comes after them.
  const line = err.match(/^\d\d:\d\d:\d\d\.\d{3} ([0-9a-f]{8}) direct\s+\d+ms ok$/m);
  const id = line[1];
  const own = err.search(new RegExp(`#1 ${id}\\] hello from the handler \\(on stderr\\)$`, 'm'));
  assert.match(err, new RegExp(`\\[local-\\S+#1 ${id}\\] hello from the handler$`, 'm'));
  assert.ok(own !== -1 && own < line.index, 'the handler\'s output, then the invocation\'s line');
  assert.match(err, /\n\s+"log": "hello from the handler"/, 'the event pretty-printed under --verbose');
});

test('parallel invocations: each handler line names its invocation, each invocation\'s line follows its own output', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'funcie-parallel-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'handler.mjs'), `
export const handler = async (event) => {
  process.stdout.write('start ' + event.n + '\\n');
  await new Promise((r) => setTimeout(r, 1500));
  process.stdout.write('end ' + event.n + '\\n');
  return { n: event.n };
};
`);
  const { em, local } = await tunnel(t, { connect: { command: ric(), cwd: dir, args: ['--concurrency', '2'] } });
  await Promise.all([em.invoke({ n: 0 }), em.invoke({ n: 9 })]);  // two warm environments
  const mark = local.length();
  const [a, b] = await Promise.all([em.invoke({ n: 1 }), em.invoke({ n: 2 })]);
  const ids = [a, b].map((r) => r.headers.get('x-amzn-requestid').slice(0, 8));
  assert.notEqual(ids[0], ids[1]);
  await eventually(async () => ids.every((id) => new RegExp(`^\\S+ ${id} direct +\\S+ ok$`, 'm').test(local.out.all.slice(mark))), { what: 'both lines' });
  const lines = local.out.all.slice(mark).split('\n');
  for (const [k, id] of ids.entries()) {
    const n = k + 1;
    const start = lines.findIndex((l) => l.endsWith(` ${id}] start ${n}`));
    const end = lines.findIndex((l) => l.endsWith(` ${id}] end ${n}`));
    const summary = lines.findIndex((l) => new RegExp(`^\\S+ ${id} direct +\\S+ ok$`).test(l));
    assert.ok(start >= 0 && end > start && summary > end, `invocation ${n} (${id}): start ${start}, end ${end}, line ${summary}\n${lines.join('\n')}`);
  }
  // They ran at the same time: both started before either ended.
  const firstEnd = Math.min(...ids.map((id, k) => lines.findIndex((l) => l.endsWith(` ${id}] end ${k + 1}`))));
  assert.ok(ids.every((id, k) => lines.findIndex((l) => l.endsWith(` ${id}] start ${k + 1}`)) < firstEnd), lines.join('\n'));
});

test('funcie.toml: one process serves every function of the project', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'funcie-project-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const a = nextApp();
  const b = nextApp();
  const emA = await startCloud({ url: redis.url, app: a, args: ['--timeout', '30'] });
  t.after(() => emA.stop());
  const emB = await startCloud({ url: redis.url, app: b, args: ['--timeout', '30'] });
  t.after(() => emB.stop());
  writeFileSync(path.join(dir, 'funcie.toml'), `backend = "${redis.url}"
concurrency = 2

[functions.orders]
app = "${a}"
command = ["${echoBin}", "orders-local"]

[functions.billing]
app = "${b}"
command = "${echoBin} billing-local"
env = { TABLE = "billing-dev" }
`);
  const local = await startConnect({ project: true, cwd: dir });
  t.after(() => local.stop('SIGKILL'));
  await local.waitFor(new RegExp(`serving app ${b}`));
  assert.equal(await where(emA), 'orders-local');
  assert.equal(await where(emB), 'billing-local');
  await eventually(async () => /orders\s.*ms ok/.test(local.out.stderr) && /billing\s.*ms ok/.test(local.out.stderr), { what: 'lines name their function' });

  // A bad file is refused with where and what.
  writeFileSync(path.join(dir, 'funcie.toml'), `backend = "${redis.url}"\n[functions.x]\ncomand = ["true"]\n`);
  const bad = spawn(funcieBin, ['connect'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  bad.stderr.on('data', (d) => { stderr += d; });
  const [code] = await once(bad, 'exit');
  assert.equal(code, 2, stderr);
  assert.match(stderr, /funcie\.toml:3:\d+: .*comand.*command/);
});

/** `redis-cli MONITOR` for the length of `body`: what the broker saw. */
async function monitored(body) {
  const mon = spawn('redis-cli', ['-u', redis.url, 'MONITOR'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let seen = '';
  mon.stdout.on('data', (d) => { seen += d; });
  await eventually(async () => seen.includes('OK'), { what: 'MONITOR started' });
  try {
    await body();
    await sleep(200);
  } finally {
    mon.kill('SIGKILL');
  }
  return seen;
}

test('the function\'s AWS credentials stay in the cloud unless both sides opt in', async (t) => {
  const secret = 'function-secret-NOT-FOR-LAPTOPS';
  const cloudCommand = ['env', 'AWS_ACCESS_KEY_ID=AKIAFUNCTIONROLE0001', `AWS_SECRET_ACCESS_KEY=${secret}`, 'AWS_SESSION_TOKEN=function-token',
    funcieBin, 'wrap', '--', echoBin, 'cloud'];
  const developer = { AWS_ACCESS_KEY_ID: 'AKIADEVELOPER0000001', AWS_SECRET_ACCESS_KEY: 'developer-secret', AWS_PROFILE: 'dev' };

  // Default: nothing of the function's credentials crosses the broker.
  {
    const { em, local } = await tunnel(t, { cloudCommand, connect: { env: developer } });
    let ctx;
    const seen = await monitored(async () => { ctx = JSON.parse((await em.invoke({ context: true })).body); });
    assert.ok(!seen.includes(secret) && !seen.includes('AKIAFUNCTIONROLE0001'), 'the broker never saw the credentials');
    assert.equal(ctx.env.AWS_ACCESS_KEY_ID, 'AKIADEVELOPER0000001', 'the handler runs as the developer');
    assert.equal(ctx.env.AWS_PROFILE, 'dev');
    await local.stop();
  }
  // The function opts in, the developer does not: dropped on arrival, with a warning.
  {
    const { em, local } = await tunnel(t, { cloudCommand, cloudEnv: { FUNCIE_FORWARD_CREDENTIALS: '1' }, connect: { env: developer } });
    const ctx = JSON.parse((await em.invoke({ context: true })).body);
    assert.equal(ctx.env.AWS_ACCESS_KEY_ID, 'AKIADEVELOPER0000001');
    await local.waitFor(/they are dropped here/);
    assert.ok(!local.out.all.includes(secret), 'never printed');
  }
  // Both opt in: the handler runs as the function's role, and connect said so at start.
  {
    const { em, local } = await tunnel(t, { cloudCommand, cloudEnv: { FUNCIE_FORWARD_CREDENTIALS: '1' }, connect: { env: developer, args: ['--forward-credentials'] } });
    const ctx = JSON.parse((await em.invoke({ context: true })).body);
    assert.equal(ctx.env.AWS_ACCESS_KEY_ID, 'AKIAFUNCTIONROLE0001');
    assert.equal(ctx.env.AWS_SECRET_ACCESS_KEY, secret);
    assert.equal(ctx.env.AWS_SESSION_TOKEN, 'function-token');
    assert.equal(ctx.env.AWS_PROFILE, null, 'the developer\'s profile stays out');
    assert.match(local.out.stderr, /--forward-credentials: .*function's role/);
    assert.ok(!local.out.all.includes(secret), 'never printed');
  }
});
