// Conformance: AWS's own Node.js runtime client, aws-lambda-ric, runs unmodified Node handlers
// under `funcie emulate`. Whatever the handler sees and returns must be what Lambda would give.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { repoRoot, ricBin, startEmulate } from './lib/harness.mjs';

const fixtures = path.join(repoRoot, 'tests/integration/fixtures/node');
const helloDir = path.join(repoRoot, 'examples/node-hello');
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Starts emulate with aws-lambda-ric running `handler` from `cwd`; stopped after the test. */
async function ric(t, { handler, cwd = fixtures, functionName = 'node-fn', args = [] }) {
  const em = await startEmulate({
    functionName,
    cwd,
    args: ['--handler', handler, ...args],
    command: [process.execPath, ricBin, handler],
  });
  t.after(() => em.stop());
  return em;
}

test('a Node handler run by aws-lambda-ric returns its result as the Invoke response', async (t) => {
  const em = await ric(t, { handler: 'index.handler', cwd: helloDir, functionName: 'hello' });
  const res = await em.invoke({ name: 'Ada' });
  assert.equal(res.status, 200, em.stderr());
  assert.equal(res.headers.get('x-amz-function-error'), null);
  assert.equal(res.headers.get('x-amz-executed-version'), '$LATEST');
  const requestId = res.headers.get('x-amzn-requestid');
  assert.match(requestId, uuid);
  const body = JSON.parse(res.body);
  assert.equal(body.message, 'Hello, Ada, from Node.js');
  assert.equal(body.requestId, requestId);
  assert.equal(body.functionName, 'hello');
  // The body is exactly what the handler returned (JSON.stringify of it), not re-serialized.
  assert.equal(res.body, JSON.stringify(body));
});

test('a thrown TypeError is a function error with its type and message', async (t) => {
  const em = await ric(t, { handler: 'handlers.fail' });
  const res = await em.invoke({ message: 'cannot read the order' });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-amz-function-error'), 'Unhandled');
  const error = JSON.parse(res.body);
  assert.equal(error.errorType, 'TypeError');
  assert.equal(error.errorMessage, 'cannot read the order');
  // aws-lambda-ric sends the stack as "trace"; it must come through to the caller untouched.
  assert.ok(Array.isArray(error.trace), res.body);
  assert.match(error.trace[0], /^TypeError: cannot read the order/);
  assert.ok(error.trace.some((line) => line.includes('handlers.mjs')), res.body);

  // The error did not kill the runtime: a second invocation is handled the same way.
  const again = await em.invoke({ message: 'second' });
  assert.equal(again.headers.get('x-amz-function-error'), 'Unhandled');
  assert.equal(JSON.parse(again.body).errorMessage, 'second');
});

test('the context and environment the handler sees match what was sent and configured', async (t) => {
  const em = await ric(t, {
    handler: 'handlers.context',
    functionName: 'ctx-fn',
    args: ['--region', 'eu-west-3', '--memory', '512', '--timeout', '7',
      '--env', 'GREETING=hello world', '--env', 'EMPTY_VALUE=', '--env', 'WITH_EQUALS=a=b=c'],
  });
  const clientContext = {
    client: { installation_id: 'inst-1', app_title: 'funcie tests', app_version_code: '7' },
    custom: { tenant: 'acme', nested: { n: 1 } },
    env: { platform: 'linux', locale: 'en_GB' },
  };
  const traceId = 'Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1';
  const res = await em.invoke({ probe: 'ctx' }, {
    headers: {
      'X-Amz-Client-Context': Buffer.from(JSON.stringify(clientContext)).toString('base64'),
      'X-Amzn-Trace-Id': traceId,
    },
  });
  assert.equal(res.status, 200, em.stderr());
  assert.equal(res.headers.get('x-amz-function-error'), null, res.body);
  const seen = JSON.parse(res.body);

  assert.deepEqual(seen.event, { probe: 'ctx' });
  assert.equal(seen.awsRequestId, res.headers.get('x-amzn-requestid'));
  assert.match(seen.awsRequestId, uuid);
  assert.match(seen.invokedFunctionArn, /^arn:aws:lambda:eu-west-3:\d{12}:function:ctx-fn$/);
  assert.equal(seen.functionName, 'ctx-fn');
  assert.equal(seen.functionVersion, '$LATEST');
  assert.equal(seen.memoryLimitInMB, '512');
  assert.equal(seen.logGroupName, '/aws/lambda/ctx-fn');
  assert.match(seen.logStreamName, /^\d{4}\/\d{2}\/\d{2}\/\[\$LATEST\][0-9a-f]{32}$/);
  assert.ok(seen.remainingMs > 0 && seen.remainingMs <= 7000, `remaining ${seen.remainingMs} ms`);
  assert.ok(seen.remainingMs > 5000, `remaining ${seen.remainingMs} ms: deadline too early`);
  assert.deepEqual(seen.clientContext, clientContext);
  assert.equal(seen.identity, null); // a plain Invoke carries no Cognito identity

  const env = seen.env;
  assert.equal(env.AWS_REGION, 'eu-west-3');
  assert.equal(env.AWS_DEFAULT_REGION, 'eu-west-3');
  assert.equal(env.AWS_LAMBDA_FUNCTION_NAME, 'ctx-fn');
  assert.equal(env.AWS_LAMBDA_FUNCTION_VERSION, '$LATEST');
  assert.equal(env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE, '512');
  assert.equal(env.AWS_LAMBDA_LOG_GROUP_NAME, '/aws/lambda/ctx-fn');
  assert.equal(env.AWS_LAMBDA_LOG_STREAM_NAME, seen.logStreamName);
  assert.equal(env.LAMBDA_TASK_ROOT, fixtures);
  assert.equal(env._HANDLER, 'handlers.context');
  assert.equal(env.TZ, ':UTC');
  assert.equal(env._X_AMZN_TRACE_ID, traceId);
  assert.match(env.AWS_LAMBDA_RUNTIME_API, /^127\.0\.0\.1:\d+$/);
  assert.equal(env.GREETING, 'hello world');
  assert.equal(env.EMPTY_VALUE, '');
  assert.equal(env.WITH_EQUALS, 'a=b=c');

  // A second invocation gets a new request id and its own trace id; the environment stays.
  const second = await em.invoke({ probe: 2 });
  const seen2 = JSON.parse(second.body);
  assert.equal(seen2.awsRequestId, second.headers.get('x-amzn-requestid'));
  assert.notEqual(seen2.awsRequestId, seen.awsRequestId);
  assert.equal(seen2.pid, seen.pid, 'one warm runtime serves both');
  assert.equal(seen2.clientContext, null, 'client context does not leak into the next invocation');
  assert.ok(seen2.env._X_AMZN_TRACE_ID, 'a trace id is generated when the caller sends none');
  assert.notEqual(seen2.env._X_AMZN_TRACE_ID, traceId);
  assert.match(seen2.env._X_AMZN_TRACE_ID, /^Root=1-[0-9a-f]{8}-[0-9a-f]{24}/);
});

test('an async handler reads a 1 MB event whole', async (t) => {
  const em = await ric(t, { handler: 'handlers.digest' });
  // Not one repeated byte: a position-dependent pattern, so a lost or reordered chunk shows.
  let data = '';
  for (let i = 0; data.length < 1024 * 1024; i++) data += `${i.toString(36)}|`;
  data = data.slice(0, 1024 * 1024);
  const res = await em.invoke({ data });
  assert.equal(res.status, 200, em.stderr());
  assert.equal(res.headers.get('x-amz-function-error'), null, res.body.slice(0, 500));
  assert.deepEqual(JSON.parse(res.body), {
    length: data.length,
    sha256: createHash('sha256').update(data).digest('hex'),
    first: data.slice(0, 8),
    last: data.slice(-8),
  });
});

test('return values: undefined is null, a string is a JSON string, over 6 MB is an error', async (t) => {
  const em = await ric(t, { handler: 'handlers.shape' });
  const none = await em.invoke({ kind: 'undefined' });
  assert.equal(none.status, 200, em.stderr());
  assert.equal(none.headers.get('x-amz-function-error'), null);
  assert.equal(none.body, 'null');
  assert.equal((await em.invoke({ kind: 'string' })).body, '"a plain string ✓"');

  const tooBig = await em.invoke({ size: 7 * 1000 * 1000 });
  assert.equal(tooBig.status, 200);
  assert.equal(tooBig.headers.get('x-amz-function-error'), 'Unhandled');
  assert.equal(JSON.parse(tooBig.body).errorType, 'Function.ResponseSizeTooLarge');
  // A response just under the limit still goes through, on the same runtime.
  const justUnder = await em.invoke({ size: 6 * 1024 * 1024 - 2 }); // plus the two quotes
  assert.equal(justUnder.headers.get('x-amz-function-error'), null, justUnder.body.slice(0, 300));
  assert.equal(justUnder.body.length, 6 * 1024 * 1024);
});

test('init errors reported by aws-lambda-ric reach the caller, on every invocation', async (t) => {
  const missing = await ric(t, { handler: 'no_such_module.handler' });
  for (let i = 0; i < 2; i++) {
    const res = await missing.invoke({});
    assert.equal(res.status, 200, missing.stderr());
    assert.equal(res.headers.get('x-amz-function-error'), 'Unhandled');
    const error = JSON.parse(res.body);
    assert.equal(error.errorType, 'Runtime.ImportModuleError', res.body);
    assert.match(error.errorMessage, /no_such_module/);
  }
  const notExported = await ric(t, { handler: 'handlers.no_such_export' });
  const res = await notExported.invoke({});
  assert.equal(res.headers.get('x-amz-function-error'), 'Unhandled');
  assert.equal(JSON.parse(res.body).errorType, 'Runtime.HandlerNotFound', res.body);
});
