#!/usr/bin/env node
// The tunnel soak test (issue 7): many invocations at mixed sizes through
//   client -> funcie emulate -> funcie wrap -> broker -> funcie connect -> handler
// while the consumer is killed (SIGKILL, sometimes Ctrl-C) and restarted every few seconds
// and the broker is restarted mid-run. At the end it checks that every invocation got
// exactly one answer, that each answer is its own (nonce, digest) or a fault funcie
// documents, that no request ran twice, and that the forwarder's and the consumer's memory
// stayed flat. Loopback only; everything it starts is stopped by pid on every exit path.
//
//   node tests/soak/soak.mjs [--invocations 10000] [--max-seconds 600] ...   (--help)
//
// Exit status: 0 all checks passed, 1 a check failed (the first violations are listed),
// 2 bad usage, 3 the run could not start or overran its hard time cap.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, createWriteStream, mkdtempSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { funcieBin, stopChild } from '../integration/lib/harness.mjs';
import { startRedis } from '../integration/lib/tunnel.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const handlerPath = path.join(here, 'handler.mjs');

// ---------------------------------------------------------------------------------------
// Options: --name value flags, each with an environment variable (SOAK_NAME) as default.

const optionSpec = {
  invocations: [10000, 'total invocations (at least)'],
  'min-seconds': [0, 'keep invoking until this many seconds have passed too (broker restarts are then spread over the time as well)'],
  'max-seconds': [600, 'hard time cap for the whole run (stops issuing 30 s before; everything is killed at the cap)'],
  concurrency: [16, 'invocations in flight (client side, one keep-alive connection each)'],
  'emulate-concurrency': [8, 'execution environments of funcie emulate (each one funcie wrap + handler)'],
  'connect-concurrency': [10, 'funcie connect --concurrency'],
  'kill-every': [3, 'seconds between consumer stops (0: never stop the consumer)'],
  'kill-pause': [0.5, 'seconds between a consumer stop and its restart'],
  'sigint-every': [4, 'every Nth consumer stop is Ctrl-C (SIGINT, a clean leave); the others SIGKILL (0: never)'],
  'broker-restarts': [2, 'broker restarts (SIGKILL, then the same port), spread evenly over the invocations'],
  'broker-down': [1.5, 'seconds the broker stays down at each restart'],
  'heartbeat-ms': [1000, 'FUNCIE_HEARTBEAT_MS of the function and --heartbeat-ms of funcie connect'],
  timeout: [30, 'the function timeout (funcie emulate --timeout), seconds'],
  secret: ['on', 'FUNCIE_SECRET for both sides: "on" (a random 32-byte secret), "off", or the secret itself (16+ chars)'],
  backend: ['redis', 'the broker: redis (sqs is not wired yet, see docs/soak.md)'],
  mix: ['100:85,10240:10,262144:4,big:1', 'event sizes SIZE:WEIGHT,...; "big" is 1-5 MB'],
  'echo-ratio': [0.5, 'fraction of events whose whole bytes come back (the rest answer a digest)'],
  seed: [1, 'seed of the event generator'],
  'memory-check': [true, 'fail on growing or capped memory (false under sanitizers: ASan keeps freed memory in quarantine)'],
  'rss-ratio': [1.5, 'memory is flat if median(last quarter) <= RATIO x median(second quarter)'],
  'forwarder-rss-cap-mb': [64, 'most VmRSS any funcie wrap may reach'],
  'consumer-rss-cap-mb': [256, 'most VmRSS any funcie connect may reach'],
  'progress-every': [10, 'seconds between progress lines (0: none)'],
  keep: [false, 'keep the run directory (logs) even when the run passes'],
};

function usage() {
  const lines = ['usage: node tests/soak/soak.mjs [--NAME VALUE]...  (or SOAK_NAME=VALUE in the environment)', ''];
  for (const [name, [def, text]] of Object.entries(optionSpec)) lines.push(`  --${name.padEnd(22)} ${text} (default ${def})`);
  return lines.join('\n');
}

function parseOptions(argv) {
  const opts = {};
  for (const [name, [def]] of Object.entries(optionSpec)) {
    const env = process.env[`SOAK_${name.toUpperCase().replaceAll('-', '_')}`];
    opts[name] = env ?? def;
  }
  for (let i = 0; i < argv.length; ++i) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') { console.log(usage()); process.exit(0); }
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m || !(m[1] in optionSpec)) { console.error(`soak: unknown argument ${arg}\n${usage()}`); process.exit(2); }
    if (typeof optionSpec[m[1]][0] === 'boolean' && m[2] === undefined && !/^(true|false|0|1)$/.test(argv[i + 1] ?? '')) {
      opts[m[1]] = true;
      continue;
    }
    const value = m[2] ?? argv[++i];
    if (value === undefined) { console.error(`soak: --${m[1]} needs a value`); process.exit(2); }
    opts[m[1]] = value;
  }
  for (const [name, [def]] of Object.entries(optionSpec)) {
    if (typeof def === 'number') {
      const n = Number(opts[name]);
      if (!Number.isFinite(n) || n < 0) { console.error(`soak: --${name} must be a number >= 0, not ${opts[name]}`); process.exit(2); }
      opts[name] = n;
    } else if (typeof def === 'boolean') {
      opts[name] = opts[name] === true || opts[name] === 'true' || opts[name] === '1';
    }
  }
  if (opts.secret === 'on') opts.secretValue = randomBytes(32).toString('base64');
  else if (opts.secret === 'off' || opts.secret === '') opts.secretValue = undefined;
  else if (opts.secret.length >= 16) opts.secretValue = opts.secret;
  else { console.error('soak: --secret must be on, off, or at least 16 characters'); process.exit(2); }
  opts.mixClasses = opts.mix.split(',').map((part) => {
    const [size, weight] = part.split(':');
    const w = Number(weight);
    const s = size === 'big' ? 'big' : Number(size);
    if (!(w >= 0) || (s !== 'big' && !(s >= 64 && s <= 6000000))) { console.error(`soak: bad --mix entry ${part}`); process.exit(2); }
    return { size: s, weight: w };
  });
  return opts;
}

const opts = parseOptions(process.argv.slice(2));
const startedAt = Date.now();
const elapsed = () => (Date.now() - startedAt) / 1000;
const say = (line) => console.log(`[soak ${elapsed().toFixed(1).padStart(6)}s] ${line}`);

// ---------------------------------------------------------------------------------------
// Everything started here, and how to kill it: children by pid, plus any process whose
// command line carries this run's token (handlers orphaned by a killed consumer, runtimes of
// a killed emulate).

const runToken = `soak-${process.pid}-${randomBytes(4).toString('hex')}`;
const runDir = mkdtempSync(path.join(os.tmpdir(), 'funcie-soak-'));
const children = new Set();
const otherPids = new Set(); // functions returning the pid of something started by a helper (the broker)

function procTable() {
  const table = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      const close = stat.lastIndexOf(')');
      const [state, ppid] = stat.slice(close + 2).split(' ');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      table.push({ pid: Number(entry), ppid: Number(ppid), state, comm });
    } catch { /* gone */ }
  }
  return table;
}

function descendants(rootPid, table = procTable()) {
  const out = [];
  const frontier = [rootPid];
  while (frontier.length) {
    const p = frontier.pop();
    for (const row of table) if (row.ppid === p) { out.push(row); frontier.push(row.pid); }
  }
  return out;
}

function tokenPids() {
  const out = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'latin1').includes(runToken)) out.push(Number(entry));
    } catch { /* gone */ }
  }
  return out;
}

let killedAll = false;
function killAll() {
  if (killedAll) return;
  killedAll = true;
  const table = procTable();
  const pids = new Set();
  for (const child of children) {
    if (child.pid === undefined) continue;
    for (const d of descendants(child.pid, table)) pids.add(d.pid);
    if (child.exitCode === null && child.signalCode === null) pids.add(child.pid);
  }
  for (const pid of tokenPids()) pids.add(pid);
  for (const pidOf of otherPids) {
    const pid = pidOf();
    if (pid && procTable().some((r) => r.pid === pid && r.comm.startsWith('redis-server'))) pids.add(pid);
  }
  for (const pid of pids) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
}

function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    console.error(`soak: ${signal}: stopping everything`);
    killAll();
    process.exit(130);
  });
}
process.on('uncaughtException', (err) => {
  console.error(`soak: ${err.stack ?? err}`);
  killAll();
  process.exit(3);
});
process.on('unhandledRejection', (err) => {
  console.error(`soak: ${err?.stack ?? err}`);
  killAll();
  process.exit(3);
});
const hardCap = setTimeout(() => {
  console.error(`soak: FAIL: the hard time cap (${opts['max-seconds']} s) was reached; killing everything (logs in ${runDir})`);
  killAll();
  process.exit(3);
}, opts['max-seconds'] * 1000);
hardCap.unref();

// ---------------------------------------------------------------------------------------
// The broker. Each backend gives: start(), the function's environment, funcie connect's
// arguments and environment, restart() (an outage: down for `downMs`, back on the same
// address), pid (for memory figures) and stop().

async function redisBackend() {
  const redis = await startRedis();
  otherPids.add(() => redis.pid); // the current one: restart() starts a new process
  return {
    name: 'redis',
    url: redis.url,
    get pid() { return redis.pid; },
    functionEnv: () => ({ FUNCIE_BACKEND: redis.url }),
    connectArgs: () => ['--backend', redis.url],
    connectEnv: () => ({}),
    async restart(downMs) {
      await redis.stop();
      await sleep(downMs);
      await redis.restart(); // stop() is a no-op now; starts it on the same port
    },
    stop: () => redis.close(),
  };
}

async function startBackend(kind) {
  if (kind === 'redis') return redisBackend();
  // An SQS run would start fauxqs with tests/integration/lib/sqs.mjs (startSqs, two queues),
  // give the function FUNCIE_BACKEND=sqs:// with the queue URLs, and restart the server on
  // the same port for an outage (startSqs picks a free port today).
  throw new Error(`backend ${kind} is not wired into the soak test yet (redis only)`);
}

// ---------------------------------------------------------------------------------------
// Processes: funcie emulate (the cloud: funcie wrap -- handler cloud) and funcie connect
// (the laptop: handler local).

const app = `soak-${process.pid}`;
const handlerLog = path.join(runDir, 'handlers.log');
closeSync(openSync(handlerLog, 'a'));
const secretEnv = opts.secretValue ? { FUNCIE_SECRET: opts.secretValue } : {};

function baseEnv() {
  const env = { ...process.env };
  delete env.FUNCIE_SECRET; // only what --secret says
  return env;
}

async function startCloud(backend) {
  const fnEnv = {
    ...backend.functionEnv(),
    FUNCIE_APP: app,
    FUNCIE_HEARTBEAT_MS: String(opts['heartbeat-ms']),
    ...secretEnv,
  };
  const args = ['emulate', '--function', app, '--port', '0', '--concurrency', String(opts['emulate-concurrency']),
    '--timeout', String(opts.timeout), ...Object.entries(fnEnv).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
    '--', funcieBin, 'wrap', '--', process.execPath, handlerPath, 'cloud', handlerLog, runToken];
  const log = createWriteStream(path.join(runDir, 'emulate.log'));
  const child = track(spawn(funcieBin, args, { env: baseEnv(), stdio: ['ignore', 'pipe', 'pipe'] }));
  child.stderr.pipe(log);
  let stdout = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('funcie emulate did not print its port within 10 s')), 10000);
    child.stdout.on('data', (d) => {
      stdout += d;
      log.write(d);
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(stdout);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    child.once('exit', (code, signal) => { clearTimeout(timer); reject(new Error(`funcie emulate exited at start (${code ?? signal}); see ${runDir}/emulate.log`)); });
  });
  return { child, port, pid: child.pid };
}

const consumerLog = createWriteStream(path.join(runDir, 'consumers.log'));
let consumerCount = 0;

/** Starts funcie connect; resolves once it serves (or after `waitMs`, still starting). */
async function startConsumer(backend, waitMs = 10000) {
  const n = ++consumerCount;
  const args = ['connect', ...backend.connectArgs(), '--app', app, '--concurrency', String(opts['connect-concurrency']),
    '--heartbeat-ms', String(opts['heartbeat-ms']), '--', process.execPath, handlerPath, 'local', handlerLog, runToken];
  const child = track(spawn(funcieBin, args, { env: { ...baseEnv(), ...backend.connectEnv(), ...secretEnv }, stdio: ['ignore', 'pipe', 'pipe'] }));
  const c = { n, child, pid: child.pid, serving: false, startedAt: Date.now(), exited: once(child, 'exit') };
  consumerLog.write(`===== consumer #${n} pid ${child.pid} at ${elapsed().toFixed(1)} s\n`);
  child.stderr.on('data', (d) => consumerLog.write(d));
  const serving = new Promise((resolve) => {
    let out = '';
    child.stdout.on('data', (d) => {
      consumerLog.write(d);
      out += d;
      if (!c.serving && /serving app \S+ through/.test(out)) { c.serving = true; resolve(true); }
    });
    child.once('exit', () => resolve(false));
  });
  await Promise.race([serving, sleep(waitMs)]);
  return c;
}

// ---------------------------------------------------------------------------------------
// Memory: VmRSS of every funcie wrap (emulate's children), of the consumer, of emulate and
// of the broker, once a second.

function rssKb(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

const memory = {
  forwarders: new Map(), // pid -> [{ t, kb }]
  consumers: [], // { n, pid, samples: [{ t, kb }] }
  emulate: [],
  broker: [],
};

function sampleMemory(emulate, consumer, backend) {
  const t = elapsed();
  const table = procTable();
  for (const row of table) {
    if (row.ppid !== emulate.pid || row.comm !== 'funcie' || row.state === 'Z') continue;
    const kb = rssKb(row.pid);
    if (kb === undefined) continue;
    if (!memory.forwarders.has(row.pid)) memory.forwarders.set(row.pid, []);
    memory.forwarders.get(row.pid).push({ t, kb });
  }
  if (consumer) {
    const kb = rssKb(consumer.pid);
    if (kb !== undefined && consumer.child.exitCode === null && consumer.child.signalCode === null) {
      let entry = memory.consumers.at(-1);
      if (!entry || entry.n !== consumer.n) memory.consumers.push((entry = { n: consumer.n, pid: consumer.pid, samples: [] }));
      entry.samples.push({ t, kb });
    }
  }
  const ekb = rssKb(emulate.pid);
  if (ekb !== undefined) memory.emulate.push({ t, kb: ekb });
  const bkb = backend.pid ? rssKb(backend.pid) : undefined;
  if (bkb !== undefined) memory.broker.push({ t, kb: bkb });
}

const median = (xs) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const quarter = (xs, q) => xs.slice(Math.floor((xs.length * (q - 1)) / 4), Math.floor((xs.length * q) / 4));
const mb = (kb) => (kb / 1024).toFixed(1);

/** { q2, q4, max, ratio } of a series of kB values (q2: median of the second quarter). */
function flatness(values) {
  const q2 = median(quarter(values, 2));
  const q4 = median(quarter(values, 4));
  return { n: values.length, first: values[0], q2, q4, max: Math.max(...values), ratio: q4 / q2 };
}

// ---------------------------------------------------------------------------------------
// Events: {"nonce":"<32 hex>","reply":"echo"|"digest","seq":N,"pad":"..."} of an exact size.

let seedState = opts.seed >>> 0 || 1;
function random() { // mulberry32
  seedState = (seedState + 0x6d2b79f5) >>> 0;
  let t = seedState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

const padSource = randomBytes(4 * 1024 * 1024).toString('base64'); // 5.6 MB of [A-Za-z0-9+/]
const totalWeight = opts.mixClasses.reduce((a, c) => a + c.weight, 0);

function makeEvent(seq) {
  let pick = random() * totalWeight;
  let cls = opts.mixClasses.at(-1);
  for (const c of opts.mixClasses) { if ((pick -= c.weight) < 0) { cls = c; break; } }
  const size = cls.size === 'big' ? 1048576 + Math.floor(random() * 4 * 1048576) : cls.size;
  const reply = random() < opts['echo-ratio'] ? 'echo' : 'digest';
  const nonce = randomBytes(16).toString('hex');
  const head = `{"nonce":"${nonce}","reply":"${reply}","seq":${seq},"pad":"`;
  const padLen = Math.max(0, size - head.length - 2);
  const offset = Math.floor(random() * (padSource.length - padLen));
  const body = Buffer.from(`${head}${padSource.slice(offset, offset + padLen)}"}`);
  const sizeClass = cls.size === 'big' ? 'big' : String(cls.size);
  return { seq, nonce, reply, body, sha256: createHash('sha256').update(body).digest('hex'), sizeClass };
}

// ---------------------------------------------------------------------------------------
// Invoking and judging each answer.

const minBrokerUpSeconds = Math.max(5, 2 * opts['kill-every']);
const faultTypes = new Set(['Funcie.ConsumerLost', 'Funcie.ConsumerLeft', 'Funcie.BrokerLost', 'Funcie.Timeout', 'Funcie.BadRequest']);
const violations = [];
const violate = (text) => { violations.push(text); if (violations.length <= 3) say(`VIOLATION: ${text}`); };

function invoke(agent, port, body) {
  return new Promise((resolve) => {
    const req = http.request({
      host: '127.0.0.1', port, method: 'POST', agent,
      path: `/2015-03-31/functions/${app}/invocations`,
      headers: { 'content-type': 'application/json', 'content-length': body.length },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, functionError: res.headers['x-amz-function-error'], body: Buffer.concat(chunks) }));
      res.on('error', (err) => resolve({ error: err }));
    });
    req.on('error', (err) => resolve({ error: err }));
    req.end(body);
  });
}

/** Classifies one answer: { outcome: "cloud"|"local"|"<errorType>", side, pid } or a violation. */
function judge(ev, res) {
  const tag = `#${ev.seq} nonce ${ev.nonce} (${ev.sizeClass} B, ${ev.reply})`;
  if (res.error) return { violation: `${tag}: no HTTP answer: ${res.error.message}` };
  if (res.status !== 200) return { violation: `${tag}: HTTP ${res.status}: ${res.body.subarray(0, 300)}` };
  if (res.functionError) {
    let error;
    try { error = JSON.parse(res.body); } catch { return { violation: `${tag}: function error with a body that is not JSON: ${res.body.subarray(0, 300)}` }; }
    if (!faultTypes.has(error.errorType)) return { violation: `${tag}: function error ${error.errorType}: ${String(error.errorMessage).slice(0, 300)}` };
    return { outcome: error.errorType, message: error.errorMessage };
  }
  let fields;
  if (ev.reply === 'echo') {
    const at = res.body.indexOf(',"event":');
    if (at < 0) return { violation: `${tag}: success without the echoed event: ${res.body.subarray(0, 300)}` };
    const echoed = res.body.subarray(at + 9, res.body.length - 1);
    try { fields = JSON.parse(`${res.body.subarray(0, at)}}`); } catch { return { violation: `${tag}: success that is not the handler's answer: ${res.body.subarray(0, 300)}` }; }
    if (!echoed.equals(ev.body) || res.body.at(-1) !== 0x7d) {
      return { violation: `${tag}: the echoed event differs from the one sent (${echoed.length} of ${ev.body.length} bytes; answer nonce ${fields.nonce}, side ${fields.side})` };
    }
  } else {
    try { fields = JSON.parse(res.body); } catch { return { violation: `${tag}: success that is not the handler's answer: ${res.body.subarray(0, 300)}` }; }
  }
  if (fields.nonce !== ev.nonce) return { violation: `${tag}: answered with another invocation's response (nonce ${fields.nonce}, side ${fields.side}, pid ${fields.pid})` };
  if (fields.sha256 !== ev.sha256 || fields.len !== ev.body.length) {
    return { violation: `${tag}: the handler (${fields.side}) saw other bytes: ${fields.len} B sha256 ${fields.sha256}, sent ${ev.body.length} B ${ev.sha256}` };
  }
  if (fields.side !== 'cloud' && fields.side !== 'local') return { violation: `${tag}: answered by side ${fields.side}` };
  return { outcome: fields.side, side: fields.side, pid: fields.pid };
}

// ---------------------------------------------------------------------------------------
// The run.

const results = new Map(); // nonce -> { seq, sizeClass, outcome, side, pid, ms }
const sent = new Map(); // nonce -> event summary, for every invocation issued
let issued = 0;
let answered = 0;
const counts = {};
const latencies = {}; // outcome -> [ms]

async function main() {
  say(`run ${runToken}: ${opts.invocations} invocations, ${opts.concurrency} in flight, emulate concurrency ${opts['emulate-concurrency']}, `
    + `consumer stop every ${opts['kill-every']} s (every ${opts['sigint-every'] || 'no'}th Ctrl-C), ${opts['broker-restarts']} ${opts.backend} restarts, `
    + `secret ${opts.secretValue ? 'on' : 'off'}, mix ${opts.mix}; logs in ${runDir}`);
  const backend = await startBackend(opts.backend);
  const emulate = await startCloud(backend);
  let consumer = await startConsumer(backend);
  if (!consumer.serving) throw new Error(`funcie connect did not serve within 10 s; see ${runDir}/consumers.log`);
  say(`${opts.backend} pid ${backend.pid}, emulate pid ${emulate.pid} on port ${emulate.port}, consumer #1 pid ${consumer.pid} serving`);

  const issueUntil = startedAt + Math.max(10, opts['max-seconds'] - 30) * 1000;
  let driving = true;
  let stoppedEarly = false;
  const events = { consumerStops: { SIGKILL: 0, SIGINT: 0 }, consumerStarts: 1, notServing: 0, brokerRestarts: 0, cleanExitCodes: [] };

  // Memory sampler.
  const sampler = setInterval(() => sampleMemory(emulate, consumer, backend), 1000);

  // Consumer stop/restart loop.
  const killer = (async () => {
    if (!opts['kill-every']) return;
    for (let k = 1; driving; ++k) {
      await sleep(opts['kill-every'] * 1000 * (0.75 + Math.random() * 0.5)); // jitter, off the event seed
      if (!driving) break;
      const signal = opts['sigint-every'] && k % opts['sigint-every'] === 0 ? 'SIGINT' : 'SIGKILL';
      const kb = rssKb(consumer.pid);
      if (kb !== undefined) {
        const entry = memory.consumers.at(-1);
        if (entry?.n === consumer.n) entry.samples.push({ t: elapsed(), kb });
      }
      consumer.stoppedWith = signal;
      consumer.child.kill(signal);
      const timer = setTimeout(() => consumer.child.kill('SIGKILL'), 5000);
      const [code, sig] = await consumer.exited;
      clearTimeout(timer);
      ++events.consumerStops[signal];
      if (signal === 'SIGINT') events.cleanExitCodes.push(code ?? sig);
      await sleep(opts['kill-pause'] * 1000);
      if (!driving) break;
      consumer = await startConsumer(backend, 3000);
      ++events.consumerStarts;
      if (!consumer.serving) ++events.notServing;
    }
  })();

  // Broker restarts, at evenly spread points of the invocation count.
  const restartAt = Array.from({ length: opts['broker-restarts'] }, (_, i) => ({
    seq: Math.floor((opts.invocations * (i + 1)) / (opts['broker-restarts'] + 1)),
    seconds: (opts['min-seconds'] * (i + 1)) / (opts['broker-restarts'] + 1),
  }));
  let restarting = Promise.resolve();
  let lastBrokerBack = Date.now();
  const minBrokerUp = minBrokerUpSeconds * 1000;

  // Progress lines.
  const progress = opts['progress-every'] ? setInterval(() => {
    const outcomes = Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ');
    say(`${answered}/${Math.max(opts.invocations, issued)} answered (${(answered / elapsed()).toFixed(0)}/s): ${outcomes}; consumer #${consumer.n}`);
  }, opts['progress-every'] * 1000) : undefined;

  // The client: `concurrency` loops, one keep-alive connection each.
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency });
  const worker = async () => {
    while (issued < opts.invocations || elapsed() < opts['min-seconds']) {
      if (Date.now() > issueUntil) { stoppedEarly = issued < opts.invocations; return; }
      const seq = ++issued;
      // At its share of the invocations, and not before the broker has served a while since
      // the last restart (a slow start would bunch them up).
      if (restartAt.length && seq >= restartAt[0].seq && elapsed() >= restartAt[0].seconds && Date.now() - lastBrokerBack >= minBrokerUp) {
        restartAt.shift();
        ++events.brokerRestarts;
        say(`restarting ${opts.backend} (#${events.brokerRestarts}, down ${opts['broker-down']} s)`);
        lastBrokerBack = Infinity;
        restarting = backend.restart(opts['broker-down'] * 1000).then(() => {
          lastBrokerBack = Date.now();
          say(`${opts.backend} is back`);
        });
      }
      const ev = makeEvent(seq);
      sent.set(ev.nonce, { seq, sizeClass: ev.sizeClass });
      const t0 = performance.now();
      const res = await invoke(agent, emulate.port, ev.body);
      const ms = performance.now() - t0;
      ++answered;
      if (results.has(ev.nonce)) { violate(`#${seq}: a second answer for nonce ${ev.nonce}`); continue; }
      const verdict = judge(ev, res);
      if (verdict.violation) {
        violate(verdict.violation);
        results.set(ev.nonce, { seq, sizeClass: ev.sizeClass, outcome: 'VIOLATION', ms });
        counts.VIOLATION = (counts.VIOLATION ?? 0) + 1;
        continue;
      }
      results.set(ev.nonce, { seq, sizeClass: ev.sizeClass, outcome: verdict.outcome, side: verdict.side, pid: verdict.pid, ms });
      counts[verdict.outcome] = (counts[verdict.outcome] ?? 0) + 1;
      (latencies[verdict.outcome] ??= []).push(ms);
    }
  };
  const driveStart = Date.now();
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  const driveSeconds = (Date.now() - driveStart) / 1000;
  driving = false;
  if (progress) clearInterval(progress);
  await restarting;
  await killer;
  clearInterval(sampler);
  agent.destroy();

  // Stop: the consumer with Ctrl-C, emulate with SIGINT (its runtimes get SIGTERM), the broker.
  const leave = consumer.stoppedWith ? undefined : await stopChild(consumer.child, 'SIGINT');
  const emulateStop = await stopChild(emulate.child, 'SIGINT');
  await backend.stop();
  await sleep(300);
  const leftovers = tokenPids().filter((pid) => procTable().some((r) => r.pid === pid && r.state !== 'Z'));

  return report({ driveSeconds, stoppedEarly, events, leave, emulateStop, leftovers });
}

// ---------------------------------------------------------------------------------------
// Checks and figures.

function percentile(xs, p) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

function report({ driveSeconds, stoppedEarly, events, leave, emulateStop, leftovers }) {
  // Exactly one answer per invocation.
  if (stoppedEarly) violate(`the time cap stopped the run after ${issued} of ${opts.invocations} invocations`);
  if (answered !== issued || results.size !== sent.size) violate(`${issued} invocations issued, ${answered} answered, ${results.size} judged`);

  // The handlers' log: each nonce at most once, and each success has its line.
  const ran = new Map(); // nonce -> [{ side, pid }]
  let lines = 0;
  for (const line of readFileSync(handlerLog, 'latin1').split('\n')) {
    if (!line) continue;
    ++lines;
    const [nonce, side, pid] = line.split(' ');
    if (!sent.has(nonce)) { violate(`handler log line for an invocation never sent: "${line}"`); continue; }
    if (!ran.has(nonce)) ran.set(nonce, []);
    ran.get(nonce).push({ side, pid: Number(pid) });
  }
  const ranBy = { cloud: 0, local: 0 };
  const errorsThatRan = {};
  for (const [nonce, runs] of ran) {
    const r = results.get(nonce);
    const what = r ? `#${r.seq} (${r.sizeClass} B, answered ${r.outcome})` : 'an unanswered invocation';
    if (runs.length > 1) violate(`${what} nonce ${nonce} ran ${runs.length} times: ${runs.map((x) => `${x.side} pid ${x.pid}`).join(', ')}`);
    for (const x of runs) ranBy[x.side] = (ranBy[x.side] ?? 0) + 1;
    if (r && r.outcome !== 'VIOLATION' && !r.side) {
      const key = `${r.outcome} (ran ${runs.map((x) => x.side).join('+')})`;
      errorsThatRan[key] = (errorsThatRan[key] ?? 0) + 1;
      if (runs.some((x) => x.side === 'cloud')) violate(`${what} nonce ${nonce} ran in the cloud (pid ${runs[0].pid}) but was answered ${r.outcome}`);
    }
  }
  for (const [nonce, r] of results) {
    if (!r.side) continue;
    const runs = ran.get(nonce) ?? [];
    if (!runs.some((x) => x.side === r.side && x.pid === r.pid)) {
      violate(`#${r.seq} nonce ${nonce}: answered by ${r.side} pid ${r.pid}, which has no log line for it (log: ${runs.map((x) => `${x.side} ${x.pid}`).join(', ') || 'none'})`);
    }
  }

  // Memory.
  const memLines = [];
  const memViolate = (text) => (opts['memory-check'] ? violate(text) : memLines.push(`  not checked (--memory-check false): ${text}`));
  const fwdCap = opts['forwarder-rss-cap-mb'] * 1024;
  const conCap = opts['consumer-rss-cap-mb'] * 1024;
  const forwarders = [...memory.forwarders.entries()];
  for (const [pid, samples] of forwarders) {
    const f = flatness(samples.map((s) => s.kb));
    memLines.push(`  funcie wrap pid ${pid}: ${f.n} samples, first ${mb(f.first)} MB, median 2nd quarter ${mb(f.q2)} MB, last quarter ${mb(f.q4)} MB (x${f.ratio.toFixed(2)}), max ${mb(f.max)} MB`);
    if (f.max > fwdCap) memViolate(`funcie wrap pid ${pid} reached ${mb(f.max)} MB VmRSS (cap ${opts['forwarder-rss-cap-mb']} MB)`);
    if (f.n >= 8 && f.ratio > opts['rss-ratio']) memViolate(`funcie wrap pid ${pid} grew: median VmRSS ${mb(f.q2)} MB in the second quarter, ${mb(f.q4)} MB in the last (x${f.ratio.toFixed(2)} > ${opts['rss-ratio']})`);
  }
  if (forwarders.length > opts['emulate-concurrency']) memLines.push(`  note: ${forwarders.length} funcie wrap processes for ${opts['emulate-concurrency']} environments (some were restarted)`);
  // Across restarts, one figure per consumer process: the least of its samples (its floor).
  // A consumer lives ~3 s and its figure before the stop mostly says whether it happened to
  // take one of the large events (glibc keeps freed arenas), 15 MB one time and 30 MB the
  // next; its floor moves only if every new consumer starts bigger than the last.
  const consumerLast = memory.consumers.map((c) => Math.min(...c.samples.map((s) => s.kb)));
  const allConsumerSamples = memory.consumers.flatMap((c) => c.samples.map((s) => s.kb));
  if (consumerLast.length) {
    const f = flatness(consumerLast);
    // The least floor of each half: one consumer that took large events from its first
    // second on must not read as growth; every consumer of the second half starting bigger
    // does. Halves, not quarters: at ~450 invocations/s a large event comes several times a
    // second, so the two or three consumers of a quarter could all have taken one before
    // their first sample (CI saw 14.3 -> 24.1 MB that way); five or six rarely all do.
    f.q2 = Math.min(...consumerLast.slice(0, Math.ceil(consumerLast.length / 2)));
    f.q4 = Math.min(...consumerLast.slice(Math.ceil(consumerLast.length / 2)));
    f.ratio = f.q4 / f.q2;
    f.max = Math.max(...allConsumerSamples);
    memLines.push(`  funcie connect: ${consumerLast.length} processes, ${allConsumerSamples.length} samples; least VmRSS of each: first ${mb(f.first)} MB, least of 1st half ${mb(f.q2)} MB, least of 2nd half ${mb(f.q4)} MB (x${f.ratio.toFixed(2)}); max of all samples ${mb(f.max)} MB`);
    const longest = memory.consumers.reduce((a, c) => (c.samples.length > (a?.samples.length ?? 0) ? c : a), undefined);
    if (longest) {
      const l = flatness(longest.samples.map((s) => s.kb));
      memLines.push(`  funcie connect #${longest.n} (longest lived, ${l.n} samples): first ${mb(l.first)} MB, median 2nd quarter ${mb(l.q2)} MB, last quarter ${mb(l.q4)} MB, max ${mb(l.max)} MB`);
      if (l.n >= 8 && l.ratio > opts['rss-ratio']) memViolate(`funcie connect #${longest.n} grew over its life: ${mb(l.q2)} MB -> ${mb(l.q4)} MB`);
    }
    if (f.max > conCap) memViolate(`a funcie connect reached ${mb(f.max)} MB VmRSS (cap ${opts['consumer-rss-cap-mb']} MB)`);
    if (f.n >= 8 && f.ratio > opts['rss-ratio']) memViolate(`funcie connect grew from restart to restart: least VmRSS of a consumer ${mb(f.q2)} MB in the first half, ${mb(f.q4)} MB in the second (x${f.ratio.toFixed(2)})`);
  }
  if (memory.emulate.length) {
    const f = flatness(memory.emulate.map((s) => s.kb));
    memLines.push(`  funcie emulate (not checked): median 2nd quarter ${mb(f.q2)} MB, last quarter ${mb(f.q4)} MB, max ${mb(f.max)} MB`);
  }
  if (memory.broker.length) {
    const f = flatness(memory.broker.map((s) => s.kb));
    memLines.push(`  ${opts.backend} (not checked, restarted): last quarter ${mb(f.q4)} MB, max ${mb(f.max)} MB`);
  }

  // Clean exits.
  if (leave && leave.code !== 0) violate(`the last funcie connect did not exit 0 on Ctrl-C: ${leave.code ?? leave.signal}`);
  const badLeaves = events.cleanExitCodes.filter((c) => c !== 0);
  if (badLeaves.length) violate(`funcie connect exited ${badLeaves.join(', ')} on Ctrl-C (expected 0)`);
  if (emulateStop.code !== 0) violate(`funcie emulate did not exit 0 on SIGINT: ${emulateStop.code ?? emulateStop.signal}`);
  if (leftovers.length) violate(`processes of this run still running after the stop: ${leftovers.join(', ')}`);

  // Figures.
  const bySize = {};
  for (const r of results.values()) {
    const s = (bySize[r.sizeClass] ??= {});
    const k = r.side ?? r.outcome;
    s[k] = (s[k] ?? 0) + 1;
  }
  const lat = Object.entries(latencies).map(([k, xs]) => `${k} p50 ${percentile(xs, 50).toFixed(1)} / p99 ${percentile(xs, 99).toFixed(0)} / max ${Math.max(...xs).toFixed(0)} ms`);
  console.log('');
  console.log(`soak summary (${opts.backend}, secret ${opts.secretValue ? 'on' : 'off'}, run dir ${runDir})`);
  console.log(`  invocations: ${issued} issued, ${answered} answered in ${driveSeconds.toFixed(1)} s (${(answered / driveSeconds).toFixed(0)}/s), ${opts.concurrency} in flight`);
  console.log(`  outcomes: ${Object.entries(counts).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  console.log(`  by size: ${Object.entries(bySize).map(([k, v]) => `${k} {${Object.entries(v).map(([a, b]) => `${a} ${b}`).join(', ')}}`).join('; ')}`);
  console.log(`  handler log: ${lines} lines, ${ran.size} distinct invocations (cloud ${ranBy.cloud}, local ${ranBy.local}); faults whose request had run: ${Object.entries(errorsThatRan).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`);
  console.log(`  latency: ${lat.join('; ')}`);
  console.log(`  consumer: ${events.consumerStarts} started, stopped ${events.consumerStops.SIGKILL} x SIGKILL and ${events.consumerStops.SIGINT} x SIGINT, ${events.notServing} not serving 3 s after start; ${opts.backend} restarted ${events.brokerRestarts} x`);
  if (events.brokerRestarts < opts['broker-restarts']) console.log(`  note: ${opts.backend} was restarted ${events.brokerRestarts} of ${opts['broker-restarts']} times (the run was too short to space them ${minBrokerUpSeconds} s apart)`);
  console.log('  memory (VmRSS, sampled every second):');
  for (const l of memLines) console.log(l);
  if (violations.length) {
    console.log(`soak: FAIL: ${violations.length} violation(s); the first ones:`);
    for (const v of violations.slice(0, 10)) console.log(`  - ${v}`);
    console.log(`  logs kept in ${runDir}`);
    return 1;
  }
  console.log('soak: PASS');
  if (!opts.keep) rmSync(runDir, { recursive: true, force: true });
  return 0;
}

const status = await main().catch((err) => {
  console.error(`soak: could not run: ${err.stack ?? err}\n  logs in ${runDir}`);
  return 3;
});
killAll();
process.exit(status);
