// `funcie wrap -- CMD` as a Runtime API proxy, run by `funcie emulate` as the function's
// runtime. With no broker to forward to, every invocation reaches CMD and comes back as CMD
// answered: success bytes, error bodies and types, init errors, exits and restarts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { childPids, echoBin, ended, funcieBin, repoRoot, running, startEmulate } from './lib/harness.mjs';

const fixtures = path.join(repoRoot, 'tests/integration/fixtures');
const wrapRuntime = [process.execPath, path.join(fixtures, 'wrap/runtime.mjs')];
const initErrorRuntime = [process.execPath, path.join(fixtures, 'emulate/runtime.mjs'), 'init-error'];
const wrapped = (command, wrapArgs = []) => [funcieBin, 'wrap', ...wrapArgs, '--', ...command];

async function withEmulate(options, body) {
  const em = await startEmulate(options);
  try {
    return await body(em);
  } finally {
    await em.stop();
  }
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

/** The one process `pid` started. */
async function onlyChild(pid) {
  for (let i = 0; i < 50; i++) {
    const kids = await childPids(pid);
    if (kids.length === 1) return kids[0];
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`expected one child of ${pid}, found ${(await childPids(pid)).join(', ')}`);
}

test('success payloads reach the caller byte for byte through wrap', async () => {
  await withEmulate({ command: wrapped([echoBin]) }, async (em) => {
    const events = [
      '{"a":1}',
      ' {"spaces" :  [1, 2.50, -0e0, "\\u00e9\\ud83c\\udf89", "é🎉"] , "nested":{"k":null}}\n',
      JSON.stringify({ big: 'x'.repeat(3 * 1024 * 1024) }),
    ];
    for (const event of events) {
      const res = await em.invoke(event);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-amz-function-error'), null, res.body.slice(0, 200));
      assert.ok(res.body === event, `the response differs from the event (${res.body.length} vs ${event.length} bytes)`);
    }
    assert.equal(em.stderr().match(/forwarding is off/g)?.length, 1,
      `one warning that forwarding is off: ${em.stderr()}`);
  });
});

test('the invocation context reaches CMD as Lambda sent it', async () => {
  await withEmulate({ functionName: 'orders', command: wrapped([echoBin]) }, async (em) => {
    const trace = 'Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1';
    const before = Date.now();
    const res = await em.invoke({ context: true }, { headers: { 'X-Amzn-Trace-Id': trace } });
    assert.equal(res.status, 200, res.body);
    const context = JSON.parse(res.body);
    assert.equal(context.request_id, res.headers.get('x-amzn-requestid'));
    assert.equal(context.xray_trace_id, trace);
    assert.match(context.function_arn, /:function:orders$/);
    assert.ok(context.deadline_ms >= before + 2500 && context.deadline_ms <= Date.now() + 3000,
      `the deadline is Lambda's (3 s timeout): ${context.deadline_ms - before} ms after the call`);
    assert.equal(context.env.AWS_LAMBDA_FUNCTION_NAME, 'orders');
  });
});

test('a function error keeps the body and type CMD posted', async () => {
  await withEmulate({ command: wrapped(wrapRuntime) }, async (em) => {
    const body = '{"errorMessage":"no such order","errorType":"OrderMissing","stackTrace":["at a (x.js:1)"],"extra":{"code":42}}';
    const res = await em.invoke({ error_body: body, error_type: 'OrderMissing' });
    assertFunctionError(res, 'OrderMissing', 'no such order');
    assert.equal(res.body, body, 'the error JSON as CMD posted it');

    // From a C++ runtime: a thrown exception, typed by its class.
    const again = await em.invoke({ error_body: 'not json', error_type: 'Custom.Type' });
    assertFunctionError(again, 'Custom.Type');
  });
  await withEmulate({ command: wrapped([echoBin]) }, async (em) => {
    const res = await em.invoke({ throw: 'boom' });
    assert.deepEqual(JSON.parse(res.body), { errorMessage: 'boom', errorType: 'std::runtime_error', stackTrace: [] });
  });
});

test('a response Lambda refuses as too large is Function.ResponseSizeTooLarge, and CMD goes on', async () => {
  await withEmulate({ args: ['--concurrency', '1'], command: wrapped(wrapRuntime) }, async (em) => {
    const res = await em.invoke({ respond_bytes: 7 * 1024 * 1024 });
    assertFunctionError(res, 'Function.ResponseSizeTooLarge');
    assert.equal((await em.invoke('{"after":"too large"}')).body, '{"after":"too large"}');
  });
});

test('an init error of CMD reaches the caller unchanged, every time', async () => {
  await withEmulate({ command: wrapped(initErrorRuntime) }, async (em) => {
    for (let i = 0; i < 2; i++) {
      const res = await em.invoke({ attempt: i });
      const error = assertFunctionError(res, 'Runtime.FixtureInitFailed', 'fixture could not initialise');
      assert.deepEqual(error.stackTrace, ['at init (runtime.mjs)']);
    }
  });
});

test('CMD exiting mid-invocation gives Runtime.ExitError, and the environment restarts', async () => {
  await withEmulate({ args: ['--concurrency', '1'], command: wrapped([echoBin]) }, async (em) => {
    assert.equal((await em.invoke({ warm: 1 })).body, '{"warm":1}');
    const wrap = await onlyChild(em.child.pid);
    const cmd = await onlyChild(wrap);

    const start = performance.now();
    const res = await em.invoke({ exit: 3 });
    const error = assertFunctionError(res, 'Runtime.ExitError', 'exit status 3');
    assert.ok(error.errorMessage.includes(res.headers.get('x-amzn-requestid')), res.body);
    assert.ok(performance.now() - start < 2500, 'at once, not at the timeout');
    assert.ok(await ended(wrap), 'wrap exits with CMD');
    assert.ok(await ended(cmd));

    const after = await em.invoke({ after: 'exit' });
    assert.equal(after.body, '{"after":"exit"}');
    assert.notEqual(await onlyChild(em.child.pid), wrap, 'a new wrap process');
  });
});

test('a CMD that cannot start or dies at start is reported as Lambda does', async () => {
  await withEmulate({ command: wrapped(['/nonexistent/funcie-runtime']) }, async (em) => {
    assertFunctionError(await em.invoke({}), 'Runtime.InvalidEntrypoint', '/nonexistent/funcie-runtime');
  });
  await withEmulate({ command: wrapped(['bash', '-c', 'exit 7']) }, async (em) => {
    assertFunctionError(await em.invoke({}), 'Runtime.ExitError', 'exit status 7');
  });
});

test('SIGTERM to wrap stops CMD too; emulate Ctrl-C leaves nothing running', async () => {
  await withEmulate({ args: ['--concurrency', '1'], command: wrapped(wrapRuntime) }, async (em) => {
    assert.equal((await em.invoke('{"n":1}')).body, '{"n":1}');
    const wrap = await onlyChild(em.child.pid);
    const cmd = await onlyChild(wrap);
    process.kill(wrap, 'SIGTERM');
    assert.ok(await ended(wrap), 'wrap exits');
    assert.ok(await ended(cmd), 'CMD was stopped with it');
    assert.equal((await em.invoke('{"n":2}')).body, '{"n":2}', 'emulate starts a new one');

    const wrap2 = await onlyChild(em.child.pid);
    const cmd2 = await onlyChild(wrap2);
    await em.stop();
    assert.ok(await ended(wrap2) && await ended(cmd2), 'nothing left running');
  });
});

test('with the broker down, every invocation runs in CMD, which never sees FUNCIE_BACKEND', async () => {
  const env = ['--env', 'FUNCIE_BACKEND=redis://dev:hunter2@127.0.0.1:1', '--env', 'FUNCIE_CONNECT_TIMEOUT_MS=100'];
  await withEmulate({ args: env, command: wrapped(wrapRuntime) }, async (em) => {
    for (let i = 0; i < 3; i++) {
      const start = performance.now();
      const res = await em.invoke({ runtime_api: true });
      assert.equal(res.status, 200, res.body);
      const seen = JSON.parse(res.body);
      assert.match(seen.runtime_api, /^127\.0\.0\.1:\d+$/);
      assert.equal(seen.funcie_backend, null);
      assert.ok(performance.now() - start < 1000, `answered in ${performance.now() - start} ms`);
    }
    assert.ok(!em.stderr().includes('hunter2'), 'the password never shows in a log');
  });
});

test('a bad FUNCIE_* variable is an init error naming it, without the password', async () => {
  const env = ['--env', 'FUNCIE_BACKEND=redis://dev:hunter2@127.0.0.1:6379', '--env', 'FUNCIE_HEARTBEAT_MS=5'];
  await withEmulate({ args: env, command: wrapped([echoBin]) }, async (em) => {
    const res = await em.invoke({});
    const error = assertFunctionError(res, 'Funcie.ConfigError', 'FUNCIE_HEARTBEAT_MS');
    assert.ok(error.errorMessage.includes('300 to 60000'), res.body);
    assert.ok(!res.body.includes('hunter2') && !em.stderr().includes('hunter2'));
  });
});

test('wrap outside Lambda says so and exits 2', async () => {
  const env = { ...process.env };
  delete env.AWS_LAMBDA_RUNTIME_API;
  const child = spawn(funcieBin, ['wrap', '--', 'true'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const [code] = await once(child, 'exit');
  assert.equal(code, 2);
  assert.match(stderr, /funcie wrap runs inside Lambda \(or funcie emulate\): AWS_LAMBDA_RUNTIME_API is not set/);
});
