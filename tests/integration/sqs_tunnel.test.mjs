// The SQS tunnel end to end with the real binaries and real SQS servers from npm:
//   funcie emulate -> funcie wrap -> SQS (fauxqs, local-aws-sqs) -> funcie connect -> runtime.
// The cloud copy of the function answers {"where":"cloud"}, the local one {"where":"local"}.
// fauxqs wakes a long poll as soon as a message arrives (as SQS does), so the timing tests
// run on it; local-aws-sqs waits the whole poll when MaxNumberOfMessages > 1, so funcie is
// run with FUNCIE_SQS_RECEIVE_BATCH=1 there (docs/sqs.md).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { echoBin, funcieBin, ricBin, startEmulate } from './lib/harness.mjs';
import { eventually, startConnect, where } from './lib/tunnel.mjs';
import { sqsClient, sqsSdk, startIamGate, startSqs } from './lib/sqs.mjs';

const keys = { AWS_ACCESS_KEY_ID: 'AKIAFUNCIETEST000001', AWS_SECRET_ACCESS_KEY: 'test-secret-never-logged' };
let queueNumber = 0;

function servers(kind) {
  const s = { kind, sqs: null };
  s.start = async () => {
    s.sqs = await startSqs({ kind, queues: [] });
  };
  return s;
}

/** Creates a fresh queue pair (and app name) on `sqs`. */
async function queuePair(sqs, { maxMessageSize = 1048576 } = {}) {
  const n = ++queueNumber;
  const urls = await sqs.createQueues([
    { name: `req-${process.pid}-${n}`, maxMessageSize },
    { name: `resp-${process.pid}-${n}`, maxMessageSize },
  ]);
  return { app: `sqs-${process.pid}-${n}`, request: urls[0], response: urls[1] };
}

function commonEnv(s) {
  const env = { ...keys, AWS_ENDPOINT_URL_SQS: s.sqs.endpoint, AWS_REGION: 'us-east-1' };
  if (s.kind === 'local') env.FUNCIE_SQS_RECEIVE_BATCH = '1';
  return env;
}

/** The cloud side: emulate whose runtime is `funcie wrap -- echo cloud` (or `command`). */
async function startSqsCloud(s, q, { env = {}, timeout = 30, command, responseQueue = true, endpoint } = {}) {
  const fnEnv = {
    FUNCIE_BACKEND: 'sqs://',
    FUNCIE_APP: q.app,
    FUNCIE_REQUEST_QUEUE_URL: q.request,
    ...(responseQueue ? { FUNCIE_RESPONSE_QUEUE_URL: q.response } : {}),
    ...commonEnv(s),
    ...(endpoint ? { AWS_ENDPOINT_URL_SQS: endpoint } : {}),
    ...env,
  };
  // Lambda gives the role's keys in the environment; emulate reserves those names, so they
  // are set around the runtime as Lambda would.
  const secretVars = Object.entries(fnEnv).filter(([k]) => k.startsWith('AWS_ACCESS') || k.startsWith('AWS_SECRET'));
  const plainVars = Object.entries(fnEnv).filter(([k]) => !(k.startsWith('AWS_ACCESS') || k.startsWith('AWS_SECRET') || k === 'AWS_REGION'));
  return startEmulate({
    functionName: q.app,
    args: [...plainVars.flatMap(([k, v]) => ['--env', `${k}=${v}`]), '--timeout', String(timeout)],
    command: ['env', ...secretVars.map(([k, v]) => `${k}=${v}`), ...(command ?? [funcieBin, 'wrap', '--', echoBin, 'cloud'])],
  });
}

function startSqsConnect(s, q, { args = [], env = {}, command, cwd, endpoint, waitServing = true } = {}) {
  return startConnect({
    waitServing,
    url: 'sqs://',
    app: q.app,
    args: ['--request-queue', q.request, '--response-queue', q.response, ...args],
    env: { ...commonEnv(s), ...(endpoint ? { AWS_ENDPOINT_URL_SQS: endpoint } : {}), ...env },
    command,
    cwd,
  });
}

const parse = (r) => ({ error: r.headers.get('x-amz-function-error'), body: JSON.parse(r.body) });

async function queueDepth(s, url) {
  const { GetQueueAttributesCommand } = sqsSdk();
  const r = await sqsClient(s.sqs.endpoint).send(new GetQueueAttributesCommand({
    QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
  }));
  return Number(r.Attributes.ApproximateNumberOfMessages) + Number(r.Attributes.ApproximateNumberOfMessagesNotVisible);
}

for (const kind of ['faux', 'local']) {
  describe(`SQS tunnel on ${kind === 'faux' ? 'fauxqs' : 'local-aws-sqs'}`, () => {
    const s = servers(kind);
    before(async () => { await s.start(); });
    after(async () => { await s.sqs?.stop(); });

    test('nobody connected: the cloud answers at once; the cold start reads presence, later invocations pay nothing', async (t) => {
      const q = await queuePair(s.sqs);
      // A 10 s claim window: waiting it would be unmistakable even on a busy machine, where
      // the first invocation's cold start alone can take more than a second under ASan.
      const em = await startSqsCloud(s, q, { env: { FUNCIE_SQS_CLAIM_MS: '10000' } });
      t.after(() => em.stop());
      let t0 = Date.now();
      assert.equal(await where(em), 'cloud');
      const first = Date.now() - t0;
      assert.ok(first < 5000, `the first invocation waits no claim window (took ${first} ms)`);
      const later = [];
      for (let i = 0; i < 5; ++i) {
        t0 = Date.now();
        assert.equal(await where(em), 'cloud');
        later.push(Date.now() - t0);
      }
      later.sort((a, b) => a - b);
      assert.ok(later[2] < 200, `later invocations run at once (median ${later[2]} ms)`);
    });

    test('connected: the local handler answers byte for byte, errors keep their type', async (t) => {
      const q = await queuePair(s.sqs);
      const em = await startSqsCloud(s, q);
      t.after(() => em.stop());
      const local = await startSqsConnect(s, q);
      t.after(() => local.stop('SIGKILL'));
      assert.equal(await where(em), 'local');
      const event = '{"text":"z\\u00fcrich \\"q\\" \\n","emoji":"🦆","n":[1,2.50,-0e3]}  ';
      const ok = await em.invoke(event);
      assert.equal(ok.status, 200);
      assert.equal(ok.body, event);
      const failed = parse(await em.invoke({ throw: 'the local handler broke' }));
      assert.equal(failed.error, 'Unhandled');
      assert.equal(failed.body.errorMessage, 'the local handler broke');
      // Ctrl-C: funcie connect exits at once (it took 1.5 s on SQS: its pending long poll),
      // and the next invocation finds nobody and runs in the cloud.
      const stopping = Date.now();
      assert.equal((await local.stop('SIGINT')).code, 0);
      const exitMs = Date.now() - stopping;
      assert.ok(exitMs < (process.env.ASAN_OPTIONS ? 3000 : 1000), `funcie connect took ${exitMs} ms to exit after SIGINT`);
      assert.equal(await where(em), 'cloud');
    });

    // Under ASan (a Debug build) cutting and joining 6 MB holds the consumer past its 3 s
    // heartbeat; the release step runs it.
    test('6 MB request and response across 256 KiB and 1 MiB queues, text and binary-unsafe', { skip: Boolean(process.env.ASAN_OPTIONS) && 'too slow under ASan for the heartbeat' }, async (t) => {
      for (const size of [262144, 1048576]) {
        const q = await queuePair(s.sqs, { maxMessageSize: size });
        const em = await startSqsCloud(s, q, { timeout: 60 });
        const local = await startSqsConnect(s, q, { args: ['--concurrency', '1'] });
        try {
          // U+FFFE is valid UTF-8 and JSON but not allowed in an SQS body: those pieces go
          // as base64; the plain text ones raw.
          const unit = 'abcdefghij\uFFFEklmnopqrstuvwxyz0123456789 ';
          const text = unit.repeat(Math.floor((6 * 1000 * 1000 - 100) / Buffer.byteLength(unit)));
          const event = JSON.stringify({ big: text });
          assert.ok(Buffer.byteLength(event) > 5.9e6);
          const t0 = Date.now();
          const r = await em.invoke(event);
          const took = Date.now() - t0;
          assert.equal(r.status, 200, r.body.slice(0, 300));
          assert.equal(r.headers.get('x-amz-function-error'), null, r.body.slice(0, 300));
          assert.equal(r.body.length, event.length);
          assert.ok(r.body === event, 'the 6 MB response is the event, byte for byte');
          t.diagnostic(`${kind} ${size / 1024} KiB queues: 6 MB both ways in ${took} ms`);
        } finally {
          await local.stop('SIGKILL');
          await em.stop();
        }
      }
    });

    test('a consumer killed mid-request fails it within the heartbeat bound; a restarted one serves again', async (t) => {
      const q = await queuePair(s.sqs);
      const em = await startSqsCloud(s, q);
      t.after(() => em.stop());
      let local = await startSqsConnect(s, q);
      t.after(() => local.stop('SIGKILL'));
      assert.equal(await where(em), 'local');
      const pending = em.invoke({ sleep_ms: 20000 });
      await sleep(1000);
      const t0 = Date.now();
      await local.stop('SIGKILL');
      const r = parse(await pending);
      const took = Date.now() - t0;
      assert.equal(r.body.errorType, 'Funcie.ConsumerLost', JSON.stringify(r.body));
      assert.ok(took < 5000, `failed within the 3 s heartbeat bound (+ a receive), took ${took} ms`);
      // Nobody is there: the cloud again.
      assert.equal(await where(em), 'cloud');
      // A new consumer: found by a ping while invocations run in the cloud, then local again.
      local = await startSqsConnect(s, q);
      await eventually(async () => (await where(em)) === 'local', { ms: 20000, every: 300, what: 'local again' });
    });

    test('rule 4: a consumer started later never runs an offer made before it; nothing to purge', async (t) => {
      const q = await queuePair(s.sqs);
      const em = await startSqsCloud(s, q, { env: { FUNCIE_SQS_PRESENCE_MS: '1000' } });
      t.after(() => em.stop());
      // A session's tag that outlives it (killed): the next offer goes unclaimed.
      const sdk = sqsSdk();
      await sqsClient(s.sqs.endpoint).send(new sdk.TagQueueCommand({
        QueueUrl: q.request, Tags: { [`funcie:${q.app}:deadbeef`]: String(Date.now() + 60000) },
      }));
      assert.equal(await where(em), 'cloud');  // leaves an unclaimed offer in the queue
      const local = await startSqsConnect(s, q);
      t.after(() => local.stop('SIGKILL'));
      // The warm instance sees the new session's tag at its next presence read.
      await eventually(async () => (await where(em)) === 'local', { ms: 10000, every: 200, what: 'local' });
      await sleep(500);
      assert.doesNotMatch(local.out.stderr, /\bok\b[\s\S]*\bok\b/, 'only the new invocation ran locally');
      await eventually(async () => (await queueDepth(s, q.request)) === 0 && (await queueDepth(s, q.response)) === 0,
        { ms: 10000, every: 250, what: 'both queues empty' });
    });
  });
}

describe('SQS tunnel, many instances and failures (fauxqs)', () => {
  const s = servers('faux');
  before(async () => { await s.start(); });
  after(async () => { await s.sqs?.stop(); });

  test('four function instances at once share the queues; every response reaches its own caller', async (t) => {
    const q = await queuePair(s.sqs);
    // A long claim window: on a busy machine, 20 offers at once to one consumer may take
    // longer than the default 2 s to be claimed (they would run in the cloud instead). Under
    // ASan at load 8, starting the local runtime took 11 s and two offers waited out 10 s.
    const claimMs = process.env.ASAN_OPTIONS ? '40000' : '10000';
    const clouds = await Promise.all([0, 1, 2, 3].map(() => startSqsCloud(s, q, { env: { FUNCIE_SQS_ABSENT_MS: '0', FUNCIE_SQS_CLAIM_MS: claimMs } })));
    t.after(() => Promise.all(clouds.map((em) => em.stop())));
    const local = await startSqsConnect(s, q, { args: ['--concurrency', '8'] });
    t.after(() => local.stop('SIGKILL'));
    const rounds = 5;
    const calls = [];
    for (let round = 0; round < rounds; ++round) {
      for (const [i, em] of clouds.entries()) {
        const tag = `instance-${i}-round-${round}-${Math.random()}`;
        calls.push(em.invoke({ tag, sleep_ms: 50 }).then((r) => ({ tag, r })));
      }
    }
    const results = await Promise.all(calls);
    for (const { tag, r } of results) {
      assert.equal(r.status, 200);
      assert.equal(JSON.parse(r.body).tag, tag, 'each caller got its own answer');
    }
    // connect prints an invocation's line once its own output has settled, a moment after
    // the answer went back: wait for the lines, then check there is exactly one per call.
    const localCount = () => (local.out.stderr.match(/ ok\b/g) ?? []).length;
    await eventually(async () => localCount() >= results.length, { ms: 10000, what: 'a line per invocation' })
      .catch(() => {});
    const local_count = localCount();
    assert.equal(local_count, results.length, `every one ran locally, once\n${local.out.stderr}\n${clouds.map((em) => em.stderr()).join('\n')}`);
  });

  test('funcie status pings the request queue and lists the connected session', async (t) => {
    const q = await queuePair(s.sqs);
    const local = await startSqsConnect(s, q);
    t.after(() => local.stop('SIGKILL'));
    const { execFile } = await import('node:child_process');
    const out = await new Promise((resolve, reject) => {
      execFile(funcieBin, ['status', '--backend', 'sqs://', '--app', q.app, '--request-queue', q.request,
        '--response-queue', q.response, '--json'], { env: { ...process.env, ...commonEnv(s) } },
      (error, stdout, stderr) => (error ? reject(new Error(`${error.message}: ${stderr}`)) : resolve(stdout)));
    });
    const sessions = JSON.parse(out);
    assert.equal(sessions.length, 1, out);
    assert.equal(sessions[0].pid, local.pid);
    assert.ok(sessions[0].session.startsWith(local.session), out);
    // Its pong is a heartbeat of a moment ago (was "1796615416.0s ago").
    assert.ok(sessions[0].heartbeat_age_ms >= 0 && sessions[0].heartbeat_age_ms < 10000, out);
  });

  test('a missing queue: the function runs its own code, connect says what is wrong', async (t) => {
    const q = await queuePair(s.sqs);
    const missing = { ...q, request: q.request.replace(/req-[^/]+$/, 'no-such-queue') };
    const em = await startSqsCloud(s, missing);
    t.after(() => em.stop());
    assert.equal(await where(em), 'cloud');
    // connect does not serve: it names the queue and what to do, and tries again later.
    const local = await startSqsConnect(s, missing, { waitServing: false });
    t.after(() => local.stop('SIGKILL'));
    await local.waitFor(/no-such-queue does not exist/);
    assert.doesNotMatch(local.out.all, /serving app/);
  });

  test('access denied: named with the permission, never retried; the function runs its own code', async (t) => {
    const q = await queuePair(s.sqs);
    const gate = await startIamGate({ upstream: s.sqs.endpoint, denyKeyIds: [keys.AWS_ACCESS_KEY_ID] });
    t.after(() => gate.stop());
    const em = await startSqsCloud(s, q, { endpoint: gate.endpoint });
    t.after(() => em.stop());
    const t0 = Date.now();
    assert.equal(await where(em), 'cloud');
    assert.ok(Date.now() - t0 < 1500, 'a refused offer costs no claim window');
    const local = await startSqsConnect(s, q, { endpoint: gate.endpoint, waitServing: false });
    t.after(() => local.stop('SIGKILL'));
    await local.waitFor(/access denied to sqs:GetQueueAttributes/i);
    assert.doesNotMatch(local.out.all, /serving app/);
    assert.doesNotMatch(local.out.all, new RegExp(keys.AWS_SECRET_ACCESS_KEY));
    assert.doesNotMatch(em.stderr(), new RegExp(keys.AWS_SECRET_ACCESS_KEY));
    assert.match(em.stderr(), /access denied to sqs:(ListQueueTags|SendMessage|GetQueueAttributes)/i, 'the function logs why it ran in the cloud');
  });

  test('--hold: a failing handler is run again after the fix; the caller gets the fixed answer', async (t) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'funcie-sqs-hold-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const mode = path.join(dir, 'mode.txt');
    writeFileSync(mode, 'throw');
    writeFileSync(path.join(dir, 'handler.mjs'), `
import { readFileSync } from 'node:fs';
export const handler = async (event) => {
  if (readFileSync(${JSON.stringify(mode)}, 'utf8').trim() === 'throw') throw new TypeError('not fixed yet');
  return { fixed: true, n: event.n };
};
`);
    const q = await queuePair(s.sqs);
    const em = await startSqsCloud(s, q);
    t.after(() => em.stop());
    const local = await startSqsConnect(s, q, { args: ['--hold'], command: [process.execPath, ricBin, 'handler.handler'], cwd: dir });
    t.after(() => local.stop('SIGKILL'));
    const pending = em.invoke({ n: 7 });
    await local.waitFor(/held TypeError/);
    writeFileSync(mode, 'ok');
    process.kill(local.pid, 'SIGUSR1');
    const r = parse(await pending);
    assert.equal(r.error, null, JSON.stringify(r.body));
    assert.deepEqual(r.body, { fixed: true, n: 7 });
  });

  test('fire-and-forget: without a response queue the caller gets null at once and the consumer runs it', async (t) => {
    const q = await queuePair(s.sqs);
    const local = await startSqsConnect(s, q);
    t.after(() => local.stop('SIGKILL'));
    const em = await startSqsCloud(s, q, { responseQueue: false });
    t.after(() => em.stop());
    const t0 = Date.now();
    const r = await em.invoke({ tag: 'queued' });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'null');
    assert.ok(Date.now() - t0 < 1000);
    await local.waitFor(/ ok\b/);
  });

  test('the proxy-only bootstrap forwards to SQS, and says so clearly when nobody answers', async (t) => {
    const q = await queuePair(s.sqs);
    const em = await startSqsCloud(s, q, { command: [funcieBin, 'proxy'], env: { FUNCIE_SQS_CLAIM_MS: '500' } });
    t.after(() => em.stop());
    const nobody = parse(await em.invoke({ where: true }));
    assert.equal(nobody.body.errorType, 'Funcie.NoConsumer');
    assert.match(nobody.body.errorMessage, new RegExp(q.app));
    const local = await startSqsConnect(s, q);
    t.after(() => local.stop('SIGKILL'));
    await eventually(async () => {
      const r = await em.invoke({ where: true });
      return r.status === 200 && !r.headers.get('x-amz-function-error') && JSON.parse(r.body).where === 'local';
    }, { ms: 20000, every: 300, what: 'proxy forwards to the consumer' });
  });
});
