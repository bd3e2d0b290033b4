// The developer's handler in each language's real runtime client under `funcie connect`,
// invoked from the cloud through a real redis-server:
//   funcie emulate -> funcie wrap -> redis-server -> funcie connect -> the local runtime:
// Node on AWS's aws-lambda-ric, C++ on funcie's runtime client, a bash+curl bootstrap; then
// --concurrency: parallel runtimes, and a bound that queues the rest.
// Only what the caller gets back is asserted (payloads, errors, timing, pids), not
// connect's console text.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { echoBin, ended, repoRoot } from './lib/harness.mjs';
import { startRedis } from './lib/tunnel.mjs';
import { CLOUD_TIMEOUT_S, handlerDir, maxOverlap, nodeRuntime, withConnected } from './lib/languages.mjs';

// Per test: a cold start of up to six runtimes and a few seconds of handlers, on a loaded
// two-core machine, under ASan when scripts/test.sh sets ASAN_OPTIONS.
const TEST_TIMEOUT_MS = process.env.ASAN_OPTIONS ? 120000 : 60000;
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// The developer's Node handler: what it saw, its pid and when it ran (one clock: one machine).
const NODE_HANDLER = `
import { setTimeout as sleep } from 'node:timers/promises';
export const handler = async (event, context) => {
  if (event.throw) throw new TypeError(event.throw);
  const start = Date.now();
  if (event.sleep_ms) await sleep(event.sleep_ms);
  return {
    event,
    awsRequestId: context.awsRequestId,
    invokedFunctionArn: context.invokedFunctionArn,
    functionName: context.functionName,
    memoryLimitInMB: context.memoryLimitInMB,
    remainingMs: context.getRemainingTimeInMillis(),
    envFunctionName: process.env.AWS_LAMBDA_FUNCTION_NAME ?? null,
    pid: process.pid,
    start,
    end: Date.now(),
  };
};
`;

let redis;
let node;

before(async () => {
  redis = await startRedis();
  node = handlerDir({ 'index.mjs': NODE_HANDLER });
});
after(async () => {
  await redis?.close();
  node?.rm();
});

/** Invokes and returns { res, requestId, body (parsed), before, after } for a success. */
async function invokeOk(em, event) {
  const before = Date.now();
  const res = await em.invoke(event);
  const after = Date.now();
  assert.equal(res.status, 200, res.body);
  assert.equal(res.headers.get('x-amz-function-error'), null, res.body);
  const requestId = res.headers.get('x-amzn-requestid');
  assert.match(requestId, uuid);
  return { res, requestId, body: JSON.parse(res.body), before, after };
}

/** Invokes and returns the parsed error body of a function error (status 200, Unhandled). */
async function invokeError(em, event) {
  const res = await em.invoke(event);
  assert.equal(res.status, 200, res.body);
  assert.equal(res.headers.get('x-amz-function-error'), 'Unhandled', res.body);
  return JSON.parse(res.body);
}

/**
 * The time left that a handler saw, against the cloud's deadline: set when the cloud's
 * runtime took the event (between `before` and `after`) plus the cloud's timeout.
 */
function assertCloudRemaining(remainingMs, { before, after }) {
  const timeoutMs = CLOUD_TIMEOUT_S * 1000;
  assert.ok(remainingMs > 0 && remainingMs <= timeoutMs, `remaining ${remainingMs} ms of the cloud's ${timeoutMs}`);
  assert.ok(remainingMs >= timeoutMs - (after - before) - 50,
    `remaining ${remainingMs} ms: less than the cloud's deadline leaves (invocation took ${after - before} ms)`);
}

test('Node (aws-lambda-ric): the handler gets the event and the cloud context; its result comes back', { timeout: TEST_TIMEOUT_MS }, async () => {
  await withConnected({
    redis,
    functionName: 'orders-api',
    cloudArgs: ['--memory', '512', '--region', 'eu-west-1'],
    command: nodeRuntime(node.dir, 'index.handler'),
  }, async ({ em }) => {
    const event = { order: 7, text: 'zürich "quoted" 🦆', list: [1, 2.5, null] };
    const r = await invokeOk(em, event);
    const seen = r.body;
    assert.deepEqual(seen.event, event);
    assert.equal(seen.awsRequestId, r.requestId, "the cloud's request id");
    assertCloudRemaining(seen.remainingMs, r);
    // The Lambda function's name, not the tunnel's (app) name.
    assert.equal(seen.functionName, 'orders-api');
    assert.equal(seen.envFunctionName, 'orders-api');
    assert.equal(seen.invokedFunctionArn, 'arn:aws:lambda:eu-west-1:000000000000:function:orders-api');
    assert.equal(seen.memoryLimitInMB, '512');

    // A second invocation: its own request id, the same warm runtime.
    const again = await invokeOk(em, { order: 8 });
    assert.deepEqual(again.body.event, { order: 8 });
    assert.equal(again.body.awsRequestId, again.requestId);
    assert.notEqual(again.requestId, r.requestId);
    assert.equal(again.body.pid, seen.pid, 'one warm runtime serves both');
  });
});

test('Node (aws-lambda-ric): a thrown error is a Lambda function error with its type and message', { timeout: TEST_TIMEOUT_MS }, async () => {
  await withConnected({ redis, command: nodeRuntime(node.dir, 'index.handler') }, async ({ em }) => {
    const error = await invokeError(em, { throw: 'cannot read the order' });
    assert.equal(error.errorType, 'TypeError');
    assert.equal(error.errorMessage, 'cannot read the order');
    assert.ok(Array.isArray(error.trace) && error.trace.some((line) => line.includes('index.mjs')),
      `aws-lambda-ric's stack trace comes through: ${JSON.stringify(error)}`);
    // The error did not break the runtime or the tunnel.
    const ok = await invokeOk(em, { after: 'error' });
    assert.deepEqual(ok.body.event, { after: 'error' });
  });
});

test("C++ (funcie's runtime client): payload, context, exception and crash come back as from Lambda", { timeout: TEST_TIMEOUT_MS }, async () => {
  await withConnected({ redis, command: [echoBin, 'local'] }, async ({ app, em }) => {
    const payload = '{"text":"caf\\u00e9 \\"x\\"","emoji":"🦆","n":[1,2.50,-0e3]}';
    const echoed = await em.invoke(payload);
    assert.equal(echoed.status, 200);
    assert.equal(echoed.headers.get('x-amz-function-error'), null, echoed.body);
    assert.equal(echoed.body, payload, 'the event bytes, unchanged');

    const r = await invokeOk(em, { context: true });
    const ctx = r.body;
    assert.equal(ctx.request_id, r.requestId, "the cloud's request id");
    assertCloudRemaining(ctx.remaining_ms, r);
    const timeoutMs = CLOUD_TIMEOUT_S * 1000;
    assert.ok(ctx.deadline_ms >= r.before + timeoutMs - 50 && ctx.deadline_ms <= r.after + timeoutMs,
      `deadline ${ctx.deadline_ms - r.before} ms after the invocation was sent`);
    assert.equal(ctx.function_arn, `arn:aws:lambda:us-east-1:000000000000:function:${app}`);
    assert.equal(ctx.env.AWS_LAMBDA_FUNCTION_NAME, app);

    const error = await invokeError(em, { throw: 'no such order' });
    assert.equal(error.errorType, 'std::runtime_error');
    assert.equal(error.errorMessage, 'no such order');

    // The runtime process dies mid-invocation: Lambda's Runtime.ExitError, and the next
    // invocation gets a fresh runtime.
    const crash = await invokeError(em, { exit: 3 });
    assert.equal(crash.errorType, 'Runtime.ExitError', JSON.stringify(crash));
    const next = await invokeOk(em, { where: true });
    assert.deepEqual(next.body, { where: 'local' });
  });
});

test('bash custom runtime (bootstrap with curl): response and error routes', { timeout: TEST_TIMEOUT_MS }, async () => {
  const bootstrap = path.join(repoRoot, 'examples/bash/bootstrap');
  await withConnected({ redis, command: [bootstrap] }, async ({ app, em }) => {
    const event = { message: 'hi there', n: [1, 2, 3], nested: { ok: true } };
    const r = await invokeOk(em, event);
    // The script builds its answer by string concatenation: the event bytes are the ones
    // sent, the name and request id what the cloud gave.
    assert.equal(r.res.body, `{"echo":${JSON.stringify(event)},"function":"${app}","request_id":"${r.requestId}"}`);

    const error = await invokeError(em, { fail: true });
    assert.equal(error.errorType, 'Bash.Failure');
    assert.equal(error.errorMessage, 'asked to fail');

    const again = await invokeOk(em, { i: 2 });
    assert.deepEqual(again.body, { echo: { i: 2 }, function: app, request_id: again.requestId });
  });
});

const SLEEP_MS = 800;

/** n invocations of the Node handler sleeping SLEEP_MS, all at once; the handlers' reports. */
async function sleepAtOnce(em, n) {
  const started = Date.now();
  const results = await Promise.all(Array.from({ length: n }, (_, i) => invokeOk(em, { i, sleep_ms: SLEEP_MS })));
  const took = Date.now() - started;
  const seen = results.map((r, i) => {
    assert.deepEqual(r.body.event, { i, sleep_ms: SLEEP_MS });
    assert.equal(r.body.awsRequestId, r.requestId);
    return r.body;
  });
  return { seen, took };
}

test('--concurrency 4: four invocations run at once, in four runtime processes', { timeout: TEST_TIMEOUT_MS }, async () => {
  let pids = [];
  await withConnected({
    redis,
    cloudArgs: ['--concurrency', '4'],
    connectArgs: ['--concurrency', '4'],
    command: nodeRuntime(node.dir, 'index.handler'),
  }, async ({ em }) => {
    // Cold: four runtimes start; the handlers still all run at the same time.
    const cold = await sleepAtOnce(em, 4);
    pids = [...new Set(cold.seen.map((s) => s.pid))];
    assert.equal(pids.length, 4, `four processes, got pids ${pids}`);
    assert.equal(maxOverlap(cold.seen), 4, `all four ran at once: ${JSON.stringify(cold.seen.map(({ start, end }) => [start, end]))}`);

    // Warm: the same four processes, and the wall time of about one invocation, not four.
    const warm = await sleepAtOnce(em, 4);
    assert.deepEqual(warm.seen.map((s) => s.pid).sort(), [...pids].sort(), 'the four warm runtimes are reused');
    assert.equal(maxOverlap(warm.seen), 4);
    assert.ok(warm.took < 3 * SLEEP_MS, `4 x ${SLEEP_MS} ms handlers took ${warm.took} ms`);
    console.log(`4 parallel ${SLEEP_MS} ms invocations: ${cold.took} ms cold, ${warm.took} ms warm`);
  });
  // Ctrl-C on connect stopped its runtimes.
  for (const pid of pids) assert.ok(await ended(pid, 5000), `runtime pid ${pid} outlived funcie connect`);
});

test('--concurrency 2: six invocations at once all succeed, never more than two running', { timeout: TEST_TIMEOUT_MS }, async () => {
  await withConnected({
    redis,
    // The cloud runs all six at once (each waits in `funcie wrap` for the local answer);
    // locally they queue: three rounds of SLEEP_MS, well inside CLOUD_TIMEOUT_S.
    cloudArgs: ['--concurrency', '6'],
    connectArgs: ['--concurrency', '2'],
    command: nodeRuntime(node.dir, 'index.handler'),
  }, async ({ em }) => {
    const { seen, took } = await sleepAtOnce(em, 6);
    const intervals = JSON.stringify(seen.map(({ pid, start, end }) => [pid, start, end]));
    assert.equal(maxOverlap(seen), 2, `at most two at once, and two did run together: ${intervals}`);
    assert.equal(new Set(seen.map((s) => s.pid)).size, 2, `two runtime processes: ${intervals}`);
    assert.ok(took >= 3 * SLEEP_MS - 50, `six ${SLEEP_MS} ms handlers two at a time took only ${took} ms`);
    console.log(`6 invocations through 2 runtimes: ${took} ms`);
  });
});
