// Conformance: funcie's own C++ runtime client (funcie::runtime::run_handler), in the echo and
// hello examples, under `funcie emulate`: payloads, errors, context, keep-alive and restarts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readlink } from 'node:fs/promises';
import { alive, childPids, echoBin, helloBin, startEmulate } from './lib/harness.mjs';

async function emulate(t, { functionName = 'echo-fn', command = [echoBin], args = [] } = {}) {
  const em = await startEmulate({ functionName, command, args });
  t.after(() => em.stop());
  return em;
}

/** POSTs raw bytes; resolves { status, headers, body (Buffer) }. */
async function invokeBytes(em, bytes, headers = {}) {
  const res = await fetch(em.invokeUrl(), { method: 'POST', body: bytes, headers });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

/** The pid of the one runtime process emulate runs now. */
async function runtimePid(em) {
  const pids = await childPids(em.child.pid);
  assert.equal(pids.length, 1, `expected one runtime process, found ${pids}`);
  return pids[0];
}

/** The inodes of the sockets a process holds open. */
async function socketsOf(pid) {
  const out = new Set();
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    try {
      const m = (await readlink(`/proc/${pid}/fd/${fd}`)).match(/^socket:\[(\d+)\]$/);
      if (m) out.add(m[1]);
    } catch { /* closed meanwhile */ }
  }
  return out;
}

test('echo: small, unicode and escaped payloads come back byte for byte', async (t) => {
  const em = await emulate(t);
  const payloads = [
    '{}',
    '"just a string"',
    '42',
    'null',
    '[1,2,3]',
    '  {"spaced" : [ 1 ,2 ] }\n',
    '{"u":"héllo wörld ✓ 日本語 🎉 \u{10FFFF}","e":"\\u00e9\\ud83c\\udf89\\"\\\\\\/\\b\\f\\n\\r\\t\\u0000"}',
    // Looks like a hook, but is not exactly one: echoed, not acted on.
    '{"throw":"x","and":"more"}',
    '{"exit":"1"}',
  ];
  for (const payload of payloads) {
    const sent = Buffer.from(payload, 'utf8');
    const res = await invokeBytes(em, sent);
    assert.equal(res.status, 200, `${payload}: ${em.stderr()}`);
    assert.equal(res.headers.get('x-amz-function-error'), null, payload);
    assert.ok(res.body.equals(sent), `${payload} came back as ${res.body}`);
  }
});

test('echo: a 5 MB payload comes back byte for byte', async (t) => {
  const em = await emulate(t);
  // Multi-byte characters at every offset, so a split inside a UTF-8 sequence would show.
  const unit = 'abcdé✓日🎉';
  const target = 5 * 1024 * 1024;
  const parts = [];
  for (let i = 0, size = 0; size < target - 64;) {
    const part = `${unit}${i++}`;
    parts.push(part);
    size += Buffer.byteLength(part);
  }
  const sent = Buffer.from(JSON.stringify({ data: parts.join('') }));
  assert.ok(sent.length > 5 * 1000 * 1000 && sent.length <= target, `${sent.length} bytes`);
  const started = Date.now();
  const res = await invokeBytes(em, sent);
  assert.equal(res.status, 200, em.stderr());
  assert.equal(res.headers.get('x-amz-function-error'), null, res.body.subarray(0, 300).toString());
  assert.equal(res.body.length, sent.length);
  assert.ok(res.body.equals(sent), 'the 5 MB payload changed on the way');
  assert.ok(Date.now() - started < 5000, `5 MB took ${Date.now() - started} ms`);
});

test('echo: std::runtime_error is a function error and the runtime lives on', async (t) => {
  const em = await emulate(t);
  await em.invoke({ warm: 1 });
  const pid = await runtimePid(em);
  const res = await em.invoke({ throw: 'the ledger does not balance: ✓' });
  assert.equal(res.status, 200, em.stderr());
  assert.equal(res.headers.get('x-amz-function-error'), 'Unhandled');
  const error = JSON.parse(res.body);
  assert.equal(error.errorType, 'std::runtime_error');
  assert.equal(error.errorMessage, 'the ledger does not balance: ✓');
  assert.ok(Array.isArray(error.stackTrace));

  // "Never a dead process": the same runtime serves the next invocation.
  const next = await em.invoke({ after: 'error' });
  assert.equal(next.body, '{"after":"error"}');
  assert.equal(await runtimePid(em), pid, `the runtime was restarted after a thrown exception:\n${em.stderr()}`);
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(alive(pid), `the runtime died after a thrown exception:\n${em.stderr()}`);
  assert.doesNotMatch(em.stderr(), /munmap|double free|corrupted|Aborted|core dumped/);
});

test('echo: every context field and the environment match what was sent and configured', async (t) => {
  const timeoutS = 5;
  const em = await emulate(t, {
    functionName: 'ctx-cpp',
    args: ['--timeout', String(timeoutS), '--memory', '1024', '--region', 'ap-southeast-2'],
  });
  const clientContext = { client: { app_title: 'cpp ✓' }, custom: { k: 'v' }, env: { locale: 'fr' } };
  const traceId = 'Root=1-65f0a2b3-0123456789abcdef01234567;Parent=a1b2c3d4e5f60718;Sampled=0';
  const before = Date.now();
  const res = await em.invoke({ context: true }, {
    headers: {
      'X-Amz-Client-Context': Buffer.from(JSON.stringify(clientContext)).toString('base64'),
      'X-Amzn-Trace-Id': traceId,
    },
  });
  const afterMs = Date.now();
  assert.equal(res.status, 200, em.stderr());
  assert.equal(res.headers.get('x-amz-function-error'), null, res.body);
  const seen = JSON.parse(res.body);

  assert.equal(seen.request_id, res.headers.get('x-amzn-requestid'));
  assert.match(seen.request_id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  assert.match(seen.function_arn, /^arn:aws:lambda:ap-southeast-2:\d{12}:function:ctx-cpp$/);
  assert.equal(seen.xray_trace_id, traceId);
  assert.deepEqual(JSON.parse(seen.client_context), clientContext);
  assert.equal(seen.cognito_identity, '');
  assert.equal(seen.tenant_id, '');
  // The deadline is "now + timeout", taken while the request was in flight.
  const slack = 5; // ms: the clocks round differently
  assert.ok(seen.deadline_ms >= before + timeoutS * 1000 - slack &&
            seen.deadline_ms <= afterMs + timeoutS * 1000 + slack,
  `deadline ${seen.deadline_ms} outside [${before}, ${afterMs}] + ${timeoutS} s`);
  assert.ok(seen.remaining_ms > 0 && seen.remaining_ms <= timeoutS * 1000, `remaining ${seen.remaining_ms}`);
  assert.ok(seen.remaining_ms > (timeoutS - 1) * 1000, `remaining ${seen.remaining_ms}: deadline too early`);

  assert.deepEqual(Object.keys(seen.env).sort(), [
    'AWS_ACCESS_KEY_ID', 'AWS_LAMBDA_FUNCTION_MEMORY_SIZE', 'AWS_LAMBDA_FUNCTION_NAME', 'AWS_LAMBDA_FUNCTION_VERSION',
    'AWS_LAMBDA_LOG_GROUP_NAME', 'AWS_LAMBDA_LOG_STREAM_NAME', 'AWS_PROFILE', 'AWS_REGION',
    'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', '_X_AMZN_TRACE_ID']);
  // The emulator passes none of the caller's AWS settings to the function.
  assert.equal(seen.env.AWS_ACCESS_KEY_ID, null);
  assert.equal(seen.env.AWS_PROFILE, null);
  assert.equal(seen.env.AWS_LAMBDA_FUNCTION_NAME, 'ctx-cpp');
  assert.equal(seen.env.AWS_LAMBDA_FUNCTION_VERSION, '$LATEST');
  assert.equal(seen.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE, '1024');
  assert.equal(seen.env.AWS_REGION, 'ap-southeast-2');
  assert.equal(seen.env.AWS_LAMBDA_LOG_GROUP_NAME, '/aws/lambda/ctx-cpp');
  assert.match(seen.env.AWS_LAMBDA_LOG_STREAM_NAME, /^\d{4}\/\d{2}\/\d{2}\/\[\$LATEST\][0-9a-f]{32}$/);
  assert.equal(seen.env._X_AMZN_TRACE_ID, traceId);

  // The next invocation: no client context, its own trace id, exported again.
  const next = await em.invoke({ context: true });
  const seen2 = JSON.parse(next.body);
  assert.notEqual(seen2.request_id, seen.request_id);
  assert.equal(seen2.client_context, '');
  assert.ok(seen2.xray_trace_id && seen2.xray_trace_id !== traceId, seen2.xray_trace_id);
  assert.equal(seen2.env._X_AMZN_TRACE_ID, seen2.xray_trace_id);
  assert.ok(seen2.deadline_ms > seen.deadline_ms);
});

test('echo: 100 invocations in a row on one process and one Runtime API connection', async (t) => {
  const em = await emulate(t);
  assert.equal((await em.invoke({ warm: true })).status, 200, em.stderr());
  const pid = await runtimePid(em);
  const socketsBefore = await socketsOf(pid);
  assert.ok(socketsBefore.size >= 1, 'the runtime holds its Runtime API connection open');

  const started = Date.now();
  const ids = new Set();
  for (let i = 0; i < 100; i++) {
    const res = await em.invoke({ i });
    assert.equal(res.status, 200, `invocation ${i}`);
    assert.equal(res.body, `{"i":${i}}`, `invocation ${i}`);
    ids.add(res.headers.get('x-amzn-requestid'));
  }
  const elapsed = Date.now() - started;
  assert.equal(ids.size, 100, 'each invocation has its own request id');
  assert.ok(elapsed < 5000, `100 sequential invocations took ${elapsed} ms`);
  assert.equal(await runtimePid(em), pid, 'one runtime process served all of them');
  assert.deepEqual(await socketsOf(pid), socketsBefore,
    'the runtime opened new connections: it does not keep its Runtime API connection alive');
});

test('echo: {"exit":1} is Runtime.ExitError and the next invocation runs on a new runtime', async (t) => {
  const em = await emulate(t);
  assert.equal((await em.invoke({ warm: true })).status, 200, em.stderr());
  const pid = await runtimePid(em);

  const res = await em.invoke({ exit: 1 });
  assert.equal(res.status, 200, em.stderr());
  assert.equal(res.headers.get('x-amz-function-error'), 'Unhandled');
  const requestId = res.headers.get('x-amzn-requestid');
  const error = JSON.parse(res.body);
  assert.equal(error.errorType, 'Runtime.ExitError');
  assert.match(error.errorMessage, new RegExp(`^RequestId: ${requestId} Error: Runtime exited with error: exit status 1`));
  assert.ok(!alive(pid) || !(await childPids(em.child.pid)).includes(pid), 'the old runtime is gone');

  const next = await em.invoke({ after: 'exit' });
  assert.equal(next.status, 200, em.stderr());
  assert.equal(next.headers.get('x-amz-function-error'), null, next.body);
  assert.equal(next.body, '{"after":"exit"}');
  const restarted = await runtimePid(em);
  assert.notEqual(restarted, pid, 'a new runtime process serves the next invocation');

  // Exiting with status 0 mid-invocation is an exit error too, as on Lambda.
  const clean = await em.invoke({ exit: 0 });
  assert.equal(clean.headers.get('x-amz-function-error'), 'Unhandled');
  assert.equal(JSON.parse(clean.body).errorType, 'Runtime.ExitError');
  assert.equal((await em.invoke([1])).body, '[1]');
});

test('hello: answers by name, from a plain or API Gateway event; no name is InvalidEvent', async (t) => {
  const em = await emulate(t, { functionName: 'hello-cpp', command: [helloBin] });
  const plain = await em.invoke({ name: 'Ada' });
  assert.equal(plain.status, 200, em.stderr());
  assert.deepEqual(JSON.parse(plain.body), { message: 'Hello, Ada, from C++' });

  const apigw = await em.invoke({ httpMethod: 'GET', path: '/hello', queryStringParameters: { name: 'Grace' } });
  assert.deepEqual(JSON.parse(apigw.body), { message: 'Hello, Grace, from C++' });
  const body = await em.invoke({ httpMethod: 'POST', body: JSON.stringify({ name: 'Zoë ✓' }) });
  assert.deepEqual(JSON.parse(body.body), { message: 'Hello, Zoë ✓, from C++' });

  const missing = await em.invoke({ nobody: true });
  assert.equal(missing.status, 200);
  assert.equal(missing.headers.get('x-amz-function-error'), 'Unhandled');
  const error = JSON.parse(missing.body);
  assert.equal(error.errorType, 'InvalidEvent');
  assert.match(error.errorMessage, /name/);

  const notObject = await em.invoke('[1,2]');
  assert.equal(JSON.parse(notObject.body).errorType, 'InvalidEvent');
});
