// `funcie emulate` as its users rely on it: timeouts, crashes and init errors end as they do
// on Lambda, environments scale up to --concurrency, the Invoke API's limits and errors are
// AWS's, the runtime sees the environment it was configured with, bad flags are refused, and
// Ctrl-C leaves no process behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { alive, childPids, echoBin, funcieBin, repoRoot, startEmulate } from './lib/harness.mjs';

const fixtures = path.join(repoRoot, 'tests/integration/fixtures/emulate');
const nodeRuntime = (mode = 'loop') => [process.execPath, path.join(fixtures, 'runtime.mjs'), mode];
const MAX_REQUEST = 6291456; // Lambda's Invoke request limit (6 MB)

/** Starts emulate, runs `body(em)`, and always stops it (SIGKILL fallback in the harness). */
async function withEmulate(options, body) {
  const em = await startEmulate(options);
  const out = watchStdout(em.child);
  try {
    return await body(em, out);
  } finally {
    await em.stop();
  }
}

/** Everything the emulate process (and the runtimes it started) print on stdout from now on. */
function watchStdout(child) {
  let text = '';
  const waiters = new Set();
  child.stdout.on('data', (d) => {
    text += d;
    for (const w of waiters) w();
  });
  return {
    text: () => text,
    /** Resolves with the match of `re` once it appears (after `from` chars), or rejects. */
    waitFor(re, { from = 0, timeout = 5000 } = {}) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = text.slice(from).match(re);
          if (m) { waiters.delete(check); clearTimeout(timer); resolve(m); }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`stdout never matched ${re}; got: ${text}`));
        }, timeout);
        waiters.add(check);
        check();
      });
    },
  };
}

/** POSTs `body` with a Content-Length through node:http; { status, headers, body }. */
function post(url, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers },
    }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', (e) => reject(new Error(
      `POST ${url} with ${Buffer.byteLength(body)} bytes: no HTTP answer, the connection failed: ${e.code ?? e.message}`)));
    req.end(body);
  });
}

/** Invokes and returns { status, headers, body, ms, json? }. */
async function timedInvoke(em, event, opts) {
  const start = performance.now();
  const res = await em.invoke(event, opts);
  res.ms = performance.now() - start;
  try { res.json = JSON.parse(res.body); } catch { /* not JSON */ }
  return res;
}

function assertFunctionError(res, errorType, messagePart) {
  assert.equal(res.status, 200, `a function error is still a 200: ${res.body}`);
  assert.equal(res.headers.get('x-amz-function-error'), 'Unhandled', res.body);
  const error = JSON.parse(res.body);
  assert.equal(error.errorType, errorType, res.body);
  if (messagePart !== undefined) {
    assert.ok(String(error.errorMessage).includes(messagePart),
      `errorMessage should mention "${messagePart}": ${res.body}`);
  }
  return error;
}

async function onlyChild(pid) {
  const kids = await childPids(pid);
  assert.equal(kids.length, 1, `expected one runtime process, found ${kids.join(', ')}`);
  return kids[0];
}

/** True while `pid` exists and is not a zombie (a dead child nobody has reaped yet). */
async function running(pid) {
  if (!alive(pid)) return false;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Waits up to `ms` for every pid to stop running; returns the ones still running. */
async function waitGone(pids, ms = 2000) {
  const until = Date.now() + ms;
  for (;;) {
    const left = [];
    for (const pid of pids) if (await running(pid)) left.push(pid);
    if (left.length === 0 || Date.now() >= until) return left;
    await sleep(20);
  }
}

test('an invocation past --timeout gets Sandbox.Timedout in about the timeout, and a fresh runtime', async () => {
  await withEmulate({ args: ['--timeout', '1', '--concurrency', '1'], command: [echoBin] }, async (em) => {
    const warm = await timedInvoke(em, { warm: 1 });
    assert.equal(warm.body, '{"warm":1}');
    const first = await onlyChild(em.child.pid);

    const res = await timedInvoke(em, { sleep_ms: 3000 });
    assertFunctionError(res, 'Sandbox.Timedout', 'Task timed out after 1.00 seconds');
    assert.ok(res.ms >= 950 && res.ms < 2500, `answered after ${res.ms.toFixed(0)} ms, expected ~1 s`);
    assert.equal(alive(first), false, 'the timed-out runtime process is killed and reaped');

    const after = await timedInvoke(em, { after: 'timeout' });
    assert.equal(after.status, 200);
    assert.equal(after.headers.get('x-amz-function-error'), null);
    assert.equal(after.body, '{"after":"timeout"}');
    const second = await onlyChild(em.child.pid);
    assert.notEqual(second, first, 'the environment was reset: a new runtime process');
  });
});

test('a runtime that exits mid-invocation gives Runtime.ExitError and is restarted', async () => {
  await withEmulate({ args: ['--concurrency', '1'], command: [echoBin] }, async (em) => {
    assert.equal((await em.invoke({ warm: 1 })).status, 200);
    const first = await onlyChild(em.child.pid);

    const res = await timedInvoke(em, { exit: 1 });
    const error = assertFunctionError(res, 'Runtime.ExitError', 'exit status 1');
    assert.ok(error.errorMessage.includes(res.headers.get('x-amzn-requestid')),
      `the message names the request: ${res.body}`);
    assert.ok(res.ms < 1500, `answered at once, not at the timeout (${res.ms.toFixed(0)} ms)`);

    const after = await em.invoke({ after: 'exit' });
    assert.equal(after.status, 200);
    assert.equal(after.headers.get('x-amz-function-error'), null);
    assert.equal(after.body, '{"after":"exit"}');
    const second = await onlyChild(em.child.pid);
    assert.notEqual(second, first);
    assert.equal(alive(first), false);
  });
});

test('a runtime that fails at start gives Runtime.ExitError with its exit status, every time', async () => {
  await withEmulate({ command: ['bash', '-c', 'exit 3'] }, async (em) => {
    for (let i = 0; i < 2; i++) {
      const res = await timedInvoke(em, { attempt: i });
      assertFunctionError(res, 'Runtime.ExitError', 'exit status 3');
      assert.ok(res.ms < 2000, `answered at once (${res.ms.toFixed(0)} ms)`);
    }
    assert.deepEqual(await childPids(em.child.pid), [], 'nothing left running');
  });
});

test('a command that does not exist gives Runtime.InvalidEntrypoint and emulate keeps serving', async () => {
  const missing = '/nonexistent/funcie-test-runtime';
  await withEmulate({ command: [missing, '--flag'] }, async (em) => {
    for (let i = 0; i < 2; i++) {
      const res = await timedInvoke(em, { attempt: i });
      assertFunctionError(res, 'Runtime.InvalidEntrypoint', missing);
      assert.ok(res.ms < 2000, `answered at once (${res.ms.toFixed(0)} ms)`);
    }
    assert.equal(em.child.exitCode, null, 'emulate is still running');
    const notFound = await em.invoke({}, { name: 'other' });
    assert.equal(notFound.status, 404, 'and still answers the Invoke API');
  });
});

test('an init error posted by the runtime reaches the caller with its type and message', async () => {
  await withEmulate({ command: nodeRuntime('init-error') }, async (em, out) => {
    const res = await timedInvoke(em, { hello: 'init' });
    const error = assertFunctionError(res, 'Runtime.FixtureInitFailed', 'fixture could not initialise');
    assert.deepEqual(error.stackTrace, ['at init (runtime.mjs)']);
    const [, pid] = await out.waitFor(/FIXTURE_PID=(\d+)/);
    assert.deepEqual(await waitGone([Number(pid)]), [], 'the failed runtime is killed');

    // Lambda retries the init on the next invocation, in a new process.
    const from = out.text().length;
    const again = await timedInvoke(em, { hello: 'again' });
    assertFunctionError(again, 'Runtime.FixtureInitFailed', 'fixture could not initialise');
    const [, pid2] = await out.waitFor(/FIXTURE_PID=(\d+)/, { from });
    assert.notEqual(pid2, pid);
  });
});

test('--concurrency 3: three concurrent invocations run at once in three processes; a fourth waits', async () => {
  await withEmulate({ args: ['--concurrency', '3'], command: nodeRuntime() }, async (em) => {
    // Cold starts first, so that the timing below measures only the invocations.
    const warm = await Promise.all([0, 1, 2].map(() => timedInvoke(em, { sleep_ms: 300 })));
    for (const r of warm) assert.equal(r.status, 200, r.body);
    const warmPids = new Set(warm.map((r) => r.json.pid));
    assert.equal(warmPids.size, 3, 'three concurrent invocations, three execution environments');

    const start = performance.now();
    const three = await Promise.all([0, 1, 2].map(() => timedInvoke(em, { sleep_ms: 1000 })));
    const elapsed = performance.now() - start;
    for (const r of three) assert.equal(r.status, 200, r.body);
    assert.ok(elapsed >= 1000 && elapsed < 2500, `3 x 1 s concurrently took ${elapsed.toFixed(0)} ms`);
    assert.deepEqual(new Set(three.map((r) => r.json.pid)), warmPids, 'the warm environments were reused');
    assert.deepEqual(new Set(await childPids(em.child.pid)), warmPids, 'emulate runs exactly these 3 runtimes');

    const start4 = performance.now();
    const four = await Promise.all([0, 1, 2, 3].map(() => timedInvoke(em, { sleep_ms: 1000 })));
    const elapsed4 = performance.now() - start4;
    for (const r of four) assert.equal(r.status, 200, r.body);
    assert.ok(elapsed4 >= 1950 && elapsed4 < 3500,
      `the 4th waited for a free environment: 4 x 1 s took ${elapsed4.toFixed(0)} ms`);
    const slowest = Math.max(...four.map((r) => r.ms));
    assert.ok(slowest >= 1950, `one invocation waited (${slowest.toFixed(0)} ms)`);
    for (const r of four) assert.ok(warmPids.has(r.json.pid), 'no fourth process was started');
    assert.equal((await childPids(em.child.pid)).length, 3);
  });
});

test('--concurrency 1: two concurrent invocations run one after the other in one process', async () => {
  await withEmulate({ args: ['--concurrency', '1'], command: [echoBin] }, async (em) => {
    assert.equal((await em.invoke({ warm: 1 })).status, 200);
    const start = performance.now();
    const both = await Promise.all([
      timedInvoke(em, { sleep_ms: 1000 }),
      timedInvoke(em, { sleep_ms: 1000 }),
    ]);
    const elapsed = performance.now() - start;
    for (const r of both) assert.equal(r.body, '{"sleep_ms":1000}');
    assert.ok(elapsed >= 1950 && elapsed < 3800, `serialized: ${elapsed.toFixed(0)} ms`);
    assert.equal((await childPids(em.child.pid)).length, 1);
  });
});

test('Invoke limits and errors are the ones AWS gives', async () => {
  await withEmulate({ command: [echoBin] }, async (em) => {
    // Exactly 6 MB of JSON is accepted and comes back byte for byte.
    const largest = `"${'a'.repeat(MAX_REQUEST - 2)}"`;
    const ok = await em.invoke(largest);
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('x-amz-function-error'), null);
    assert.equal(ok.body.length, MAX_REQUEST);
    assert.ok(ok.body === largest, 'the 6 MB payload is echoed unchanged');

    // One byte more is refused before it reaches the function (sent with a Content-Length,
    // as SDKs and curl send it).
    const tooBig = await post(em.invokeUrl(), `"${'a'.repeat(MAX_REQUEST - 1)}"`);
    assert.equal(tooBig.status, 413);
    assert.equal(tooBig.headers['x-amzn-errortype'], 'RequestEntityTooLargeException');
    assert.match(JSON.parse(tooBig.body).message, /6291456/);

    const notJson = await em.invoke('{"unterminated": ');
    assert.equal(notJson.status, 400);
    assert.equal(notJson.headers.get('x-amzn-errortype'), 'InvalidRequestContentException');
    assert.ok(JSON.parse(notJson.body).message, 'with a message');

    const unknown = await em.invoke({}, { name: 'someone-else' });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.headers.get('x-amzn-errortype'), 'ResourceNotFoundException');
    assert.match(JSON.parse(unknown.body).message, /someone-else/);

    const wrongPath = await fetch(`${em.url}/2015-03-31/functions/fn/invoke`, { method: 'POST', body: '{}' });
    assert.equal(wrongPath.status, 404);
    await wrongPath.text();
    const wrongMethod = await fetch(em.invokeUrl(), { method: 'GET' });
    assert.equal(wrongMethod.status, 404);
    await wrongMethod.text();

    // After all that, the function still answers.
    const after = await em.invoke({ still: 'here' });
    assert.equal(after.body, '{"still":"here"}');
  });
});

test('a function response over 6 MiB + 100 bytes gives Function.ResponseSizeTooLarge', async () => {
  await withEmulate({ command: nodeRuntime() }, async (em, out) => {
    // The largest response Lambda takes (6 MiB + 100 bytes) passes whole.
    const limit = 6 * 1024 * 1024 + 100;
    const max = await em.invoke({ response_bytes: limit });
    assert.equal(max.status, 200);
    assert.equal(max.headers.get('x-amz-function-error'), null, max.body.slice(0, 200));
    assert.equal(max.body.length, limit);

    const res = await timedInvoke(em, { response_bytes: 7_000_000 });
    assertFunctionError(res, 'Function.ResponseSizeTooLarge');
    assert.ok(res.ms < 2500, `answered at once (${res.ms.toFixed(0)} ms)`);
    await out.waitFor(/FIXTURE_POSTED=413|FIXTURE_POST_FAILED/);

    const after = await em.invoke({});
    assert.equal(after.status, 200);
    assert.equal(after.headers.get('x-amz-function-error'), null);
    assert.ok(JSON.parse(after.body).pid, 'the function answers again');
  });
});

test('--memory, --region, --env, --handler and the Lambda variables reach the runtime', async () => {
  await withEmulate({
    functionName: 'env-fn',
    args: ['--memory', '512', '--region', 'eu-west-3', '--handler', 'app.main',
      '--env', 'GREETING=hello world', '--env', 'WITH_EQUALS=a=b', '--env', 'EMPTY='],
    command: nodeRuntime(),
    env: { FUNCIE_TEST_PARENT_ONLY: 'leaked' },
  }, async (em) => {
    const res = await em.invoke({});
    assert.equal(res.status, 200, res.body);
    const { env } = JSON.parse(res.body);
    assert.equal(env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE, '512');
    assert.equal(env.AWS_REGION, 'eu-west-3');
    assert.equal(env.AWS_DEFAULT_REGION, 'eu-west-3');
    assert.equal(env._HANDLER, 'app.main');
    assert.equal(env.GREETING, 'hello world');
    assert.equal(env.WITH_EQUALS, 'a=b');
    assert.equal(env.EMPTY, '');
    assert.equal(env.AWS_LAMBDA_FUNCTION_NAME, 'env-fn');
    assert.equal(env.AWS_LAMBDA_FUNCTION_VERSION, '$LATEST');
    assert.equal(env.AWS_LAMBDA_LOG_GROUP_NAME, '/aws/lambda/env-fn');
    assert.match(env.AWS_LAMBDA_LOG_STREAM_NAME, /^\d{4}\/\d{2}\/\d{2}\/\[\$LATEST\][0-9a-f]{32}$/);
    assert.match(env.AWS_LAMBDA_RUNTIME_API, /^127\.0\.0\.1:\d+$/);
    assert.notEqual(env.AWS_LAMBDA_RUNTIME_API, `127.0.0.1:${em.port}`, 'not the Invoke API port');
    assert.ok(env.LAMBDA_TASK_ROOT, 'LAMBDA_TASK_ROOT is set');
    assert.equal(env.TZ, ':UTC');
    assert.equal(env.FUNCIE_TEST_PARENT_ONLY, undefined, "emulate's own environment does not leak in");
  });
});

test('the runtime command keeps its own flags after --, even right after --env', async () => {
  // `--env K=V -- CMD -flag` is how a user passes both; the flags belong to CMD.
  await withEmulate({
    args: ['--env', 'GREETING=hi'],
    command: [process.execPath, '--no-deprecation', path.join(fixtures, 'runtime.mjs')],
  }, async (em) => {
    const res = await em.invoke({});
    assert.equal(res.status, 200, res.body);
    assert.equal(JSON.parse(res.body).env.GREETING, 'hi');
  });
});

/** Runs `funcie emulate ARGS` and expects a refusal: non-zero exit, a message, nothing started. */
async function refused(args) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'funcie-refused-'));
  const marker = path.join(dir, 'started');
  const child = spawn(funcieBin, ['emulate', '--port', '0', ...args.map((a) => a.replace('MARKER', marker))], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  const [code, signal] = await once(child, 'exit');
  clearTimeout(timer);
  const started = existsSync(marker);
  rmSync(dir, { recursive: true, force: true });
  return { code, signal, stdout, stderr, started };
}

test('bad flags and reserved variables are refused with a message naming the flag', async () => {
  const runtime = ['--', 'bash', '-c', 'touch MARKER; sleep 5'];
  const cases = [
    { args: ['--env', 'AWS_REGION=x', '--function', 'fn', ...runtime], mentions: 'AWS_REGION' },
    { args: ['--env', 'NO_EQUALS_SIGN', '--function', 'fn', ...runtime], mentions: '--env' },
    { args: ['--function', 'fn', '--timeout', '0', ...runtime], mentions: '--timeout' },
    { args: ['--function', 'fn', '--timeout', '901', ...runtime], mentions: '--timeout' },
    { args: ['--function', 'fn', '--timeout', 'soon', ...runtime], mentions: '--timeout' },
    { args: ['--function', 'fn', '--memory', '64', ...runtime], mentions: '--memory' },
    { args: ['--function', 'fn', '--memory', '10241', ...runtime], mentions: '--memory' },
    { args: ['--function', 'fn', '--concurrency', '0', ...runtime], mentions: '--concurrency' },
    { args: ['--function', 'bad name', ...runtime], mentions: '--function' },
    { args: ['--function', 'fn', '--region', 'Not A Region', ...runtime], mentions: 'region' },
    { args: [...runtime], mentions: '--function' },
    { args: ['--function', 'fn'], mentions: 'command' },
  ];
  for (const { args, mentions } of cases) {
    const r = await refused(args);
    const what = `funcie emulate ${args.join(' ')}`;
    assert.equal(r.signal, null, `${what} exited by itself (it hung: ${r.stdout} ${r.stderr})`);
    assert.notEqual(r.code, 0, `${what} must fail`);
    assert.ok(r.stderr.includes(mentions), `${what}: the message names ${mentions}: ${r.stderr}`);
    assert.doesNotMatch(r.stdout, /listening/, `${what} must not listen`);
    assert.equal(r.started, false, `${what} must not start the runtime`);
  }
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  test(`${signal} with busy runtimes: emulate exits 0 within seconds and leaves no process`, async () => {
    const em = await startEmulate({ args: ['--concurrency', '2'], command: [echoBin] });
    try {
      const inFlight = [0, 1].map(() => em.invoke({ sleep_ms: 20000 }).catch((e) => e));
      let kids = [];
      for (let i = 0; i < 100 && kids.length < 2; i++) {
        await sleep(50);
        kids = await childPids(em.child.pid);
      }
      assert.equal(kids.length, 2, 'two busy runtimes');
      await sleep(200); // both are inside their invocation

      const start = performance.now();
      const exited = once(em.child, 'exit');
      em.child.kill(signal);
      const timer = setTimeout(() => em.child.kill('SIGKILL'), 6000);
      const [code, sig] = await exited;
      clearTimeout(timer);
      const took = performance.now() - start;
      assert.equal(sig, null, `emulate ended by itself, not killed (${em.stderr()})`);
      assert.equal(code, 0, `exit status (${em.stderr()})`);
      assert.ok(took < 4000, `exited in ${took.toFixed(0)} ms`);
      assert.deepEqual(await waitGone(kids, 0), [], 'every runtime process is gone');
      // The callers are not left hanging.
      const answers = await Promise.race([Promise.all(inFlight), sleep(3000).then(() => 'hung')]);
      assert.notEqual(answers, 'hung', 'the in-flight callers got an answer or a closed connection');
    } finally {
      await em.stop('SIGKILL');
    }
  });
}

test('Ctrl-C kills a runtime that ignores SIGTERM, and its children', async () => {
  const em = await startEmulate({ args: ['--concurrency', '1'], command: nodeRuntime('ignore-sigterm') });
  const out = watchStdout(em.child);
  try {
    const inFlight = em.invoke({ sleep_ms: 20000 }).catch((e) => e);
    const [, pid, grandchild] = (await out.waitFor(/FIXTURE_PID=(\d+) GRANDCHILD=(\d+)/)).map(Number);
    assert.ok(grandchild > 0 && alive(grandchild));
    await sleep(300);

    const start = performance.now();
    const exited = once(em.child, 'exit');
    em.child.kill('SIGINT');
    const timer = setTimeout(() => em.child.kill('SIGKILL'), 8000);
    const [code, sig] = await exited;
    clearTimeout(timer);
    const took = performance.now() - start;
    assert.equal(sig, null, `emulate ended by itself (${em.stderr()})`);
    assert.equal(code, 0);
    assert.ok(took < 5000, `exited in ${took.toFixed(0)} ms`);
    assert.deepEqual(await waitGone([pid, grandchild], 500), [], 'the runtime and its child are gone');
    await Promise.race([inFlight, sleep(3000)]);
  } finally {
    await em.stop('SIGKILL');
  }
});

test('Ctrl-C with a busy runtime that obeys SIGTERM exits at once, as it does when idle', async () => {
  // The runtime dies at the SIGTERM; nothing is left to wait for, so emulate need not spend
  // its 2 s kill grace before exiting.
  const em = await startEmulate({ args: ['--concurrency', '1'], command: [echoBin] });
  try {
    assert.equal((await em.invoke({ warm: 1 })).status, 200);
    const runtime = await onlyChild(em.child.pid);
    const inFlight = em.invoke({ sleep_ms: 20000 }).catch((e) => e);
    await sleep(300);
    const start = performance.now();
    const exited = once(em.child, 'exit');
    em.child.kill('SIGINT');
    const [code] = await exited;
    const took = performance.now() - start;
    assert.equal(code, 0);
    assert.equal(await running(runtime), false);
    assert.ok(took < 1000, `Ctrl-C took ${took.toFixed(0)} ms although the runtime ended at once`);
    await inFlight;
  } finally {
    await em.stop('SIGKILL');
  }
});
