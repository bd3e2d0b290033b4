// Conformance: AWS's own SDK (@aws-sdk/client-lambda) calls `funcie emulate` as if it were the
// Lambda service. The function is funcie's C++ echo example, so payloads come back unchanged.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';
import { echoBin, peersDir, startEmulate } from './lib/harness.mjs';

// The SDK warns once per process that it will soon need Node 22; that is not this test's news.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const require = createRequire(path.join(peersDir, 'package.json'));
const { LambdaClient, InvokeCommand, ResourceNotFoundException } = require('@aws-sdk/client-lambda');

const name = 'sdk-fn';
const region = 'us-east-1';
let em;
let lambda;

before(async () => {
  em = await startEmulate({ functionName: name, args: ['--region', region], command: [echoBin] });
  lambda = new LambdaClient({
    endpoint: em.url,
    region,
    credentials: { accessKeyId: 'AKIDFUNCIETEST', secretAccessKey: 'funcie-test-secret' },
    maxAttempts: 1, // a retry would hide a failure and could run an invocation twice
  });
});

after(async () => {
  lambda?.destroy();
  await em?.stop();
});

const bytes = (s) => new TextEncoder().encode(s);
const text = (u8) => new TextDecoder().decode(u8);

async function invoke(input) {
  return lambda.send(new InvokeCommand({ FunctionName: name, ...input }));
}

/** The invocation context the echo function saw, from its {"context":true} hook. */
async function contextSeen(input = {}) {
  const out = await invoke({ Payload: bytes('{"context":true}'), ...input });
  assert.equal(out.StatusCode, 200);
  assert.equal(out.FunctionError, undefined, out.Payload && text(out.Payload));
  return { out, seen: JSON.parse(text(out.Payload)) };
}

test('Invoke: the payload comes back byte for byte', async () => {
  const payload = '{"k":"v","unicode":"héllo wörld ✓ 日本 🎉","escaped":"a\\"b\\\\c\\u0000\\n","num":1.50,"arr":[ 1 , 2 ]}';
  const out = await invoke({ Payload: bytes(payload) });
  assert.equal(out.StatusCode, 200);
  assert.equal(out.FunctionError, undefined);
  assert.equal(out.ExecutedVersion, '$LATEST');
  assert.ok(out.Payload instanceof Uint8Array);
  assert.deepEqual(Buffer.from(out.Payload), Buffer.from(bytes(payload)));
  assert.match(out.$metadata.requestId, /^[0-9a-f-]{36}$/);
});

test('Invoke: a 1 MB payload comes back byte for byte', async () => {
  let s = '';
  for (let i = 0; s.length < 1024 * 1024; i++) s += `${i},`;
  const payload = `[${s.slice(0, 1024 * 1024 - 3)}0]`;
  const sent = Buffer.from(payload);
  assert.equal(sent.length, 1024 * 1024);
  const out = await invoke({ Payload: sent });
  assert.equal(out.StatusCode, 200);
  assert.equal(out.FunctionError, undefined);
  assert.equal(out.Payload.length, sent.length);
  assert.ok(Buffer.from(out.Payload).equals(sent), 'the 1 MB payload changed on the way');
});

test('Invoke: 6 MB is the largest payload; one byte more is RequestEntityTooLargeException', async () => {
  const limit = 6 * 1024 * 1024;
  const json = (n) => { const b = Buffer.alloc(n, 'z'); b[0] = 0x22; b[n - 1] = 0x22; return b; };
  const sent = json(limit);
  const out = await invoke({ Payload: sent });
  assert.equal(out.StatusCode, 200);
  assert.equal(out.FunctionError, undefined);
  assert.ok(Buffer.from(out.Payload).equals(sent), 'the 6 MB payload changed on the way');
  await assert.rejects(invoke({ Payload: json(limit + 1) }), (err) => {
    assert.equal(err.name, 'RequestEntityTooLargeException');
    assert.equal(err.$metadata.httpStatusCode, 413);
    return true;
  });
  // The emulator is still serving after refusing the request.
  assert.equal(text((await invoke({ Payload: bytes('{"still":"here"}') })).Payload), '{"still":"here"}');
});

test('Invoke: parallel calls each get their own payload back', async () => {
  const payloads = Array.from({ length: 16 }, (_, i) => `{"caller":${i},"pad":"${String(i).repeat(300 + i)}"}`);
  const outs = await Promise.all(payloads.map((p) => invoke({ Payload: bytes(p) })));
  outs.forEach((out, i) => {
    assert.equal(out.StatusCode, 200);
    assert.equal(text(out.Payload), payloads[i], `caller ${i} got another caller's result`);
  });
  assert.equal(new Set(outs.map((o) => o.$metadata.requestId)).size, payloads.length);
});

test('Invoke: a thrown exception is FunctionError "Unhandled" with the error payload', async () => {
  const out = await invoke({ Payload: bytes('{"throw":"the order has no items"}') });
  assert.equal(out.StatusCode, 200);
  assert.equal(out.FunctionError, 'Unhandled');
  const error = JSON.parse(text(out.Payload));
  assert.equal(error.errorType, 'std::runtime_error');
  assert.equal(error.errorMessage, 'the order has no items');
  assert.ok(Array.isArray(error.stackTrace));
});

test('Invoke: an unknown function is ResourceNotFoundException', async () => {
  await assert.rejects(
    lambda.send(new InvokeCommand({ FunctionName: 'no-such-fn', Payload: bytes('{}') })),
    (err) => {
      assert.equal(err.name, 'ResourceNotFoundException');
      assert.ok(err instanceof ResourceNotFoundException);
      assert.equal(err.$metadata.httpStatusCode, 404);
      assert.match(err.message, /no-such-fn/);
      assert.equal(err.Type, 'User');
      return true;
    },
  );
  // A function of the same name in another region or account is another function.
  for (const other of [
    `arn:aws:lambda:eu-west-1:000000000000:function:${name}`,
    `arn:aws:lambda:${region}:123456789012:function:${name}`,
    `${name}:7`,
  ]) {
    await assert.rejects(invoke({ FunctionName: other, Payload: bytes('{}') }),
      (err) => err.name === 'ResourceNotFoundException', other);
  }
});

test('Invoke: a payload that is not JSON is InvalidRequestContentException', async () => {
  await assert.rejects(invoke({ Payload: bytes('{"unterminated": ') }), (err) => {
    assert.equal(err.name, 'InvalidRequestContentException');
    assert.equal(err.$metadata.httpStatusCode, 400);
    return true;
  });
});

test('Invoke: InvocationType Event is accepted with 202 and then runs', async () => {
  const out = await invoke({ InvocationType: 'Event', Payload: bytes('{"sleep_ms":50}') });
  assert.equal(out.StatusCode, 202);
  assert.equal(out.FunctionError, undefined);
  assert.equal(out.Payload?.length ?? 0, 0);
  const requestId = out.$metadata.requestId;
  assert.ok(requestId, 'the 202 carries the request id');
  // It runs in the background: emulate logs its REPORT line once the function is done.
  const until = Date.now() + 5000;
  while (!em.stderr().includes(`REPORT RequestId: ${requestId}`)) {
    assert.ok(Date.now() < until, `the Event invocation ${requestId} never ran:\n${em.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
});

test('Invoke: InvocationType DryRun is 204 and does not run the function', async () => {
  const reports = em.stderr().split('REPORT').length;
  const out = await invoke({ InvocationType: 'DryRun', Payload: bytes('{"a":1}') });
  assert.equal(out.StatusCode, 204);
  assert.equal(out.Payload?.length ?? 0, 0);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(em.stderr().split('REPORT').length, reports, 'a DryRun ran the function');
});

test('Invoke: ClientContext reaches the function as Lambda-Runtime-Client-Context', async () => {
  const clientContext = {
    client: { installation_id: 'i-123', app_title: 'Shop', app_version_name: '1.2.3' },
    custom: { user: 'ada', 'unicode ✓': 'ö' },
    env: { platform: 'Android', make: 'x', model: 'y', locale: 'de_DE' },
  };
  const { out, seen } = await contextSeen({
    ClientContext: Buffer.from(JSON.stringify(clientContext)).toString('base64'),
  });
  assert.deepEqual(JSON.parse(seen.client_context), clientContext);
  assert.equal(seen.request_id, out.$metadata.requestId);
  assert.equal(seen.function_arn, `arn:aws:lambda:${region}:000000000000:function:${name}`);
  assert.equal(seen.env.AWS_LAMBDA_FUNCTION_NAME, name);
});

test('Invoke: ClientContext that is not base64 is rejected, not passed on', async () => {
  await assert.rejects(invoke({ ClientContext: '%%% not base64 %%%', Payload: bytes('{}') }), (err) => {
    assert.equal(err.$metadata.httpStatusCode, 400);
    return true;
  });
});

test('Invoke: by full ARN, by name:$LATEST and with Qualifier $LATEST', async () => {
  const arn = `arn:aws:lambda:${region}:000000000000:function:${name}`;
  const cases = [
    [{ FunctionName: arn }, arn],
    [{ FunctionName: `${arn}:$LATEST` }, `${arn}:$LATEST`],
    [{ FunctionName: `${name}:$LATEST` }, `${arn}:$LATEST`],
    [{ FunctionName: name, Qualifier: '$LATEST' }, `${arn}:$LATEST`],
    [{ FunctionName: `000000000000:function:${name}` }, arn],
  ];
  for (const [input, invokedArn] of cases) {
    const { out, seen } = await contextSeen(input);
    assert.equal(out.ExecutedVersion, '$LATEST', JSON.stringify(input));
    assert.equal(seen.function_arn, invokedArn, JSON.stringify(input));
    const echoed = await invoke({ ...input, Payload: bytes('{"by":"arn"}') });
    assert.equal(text(echoed.Payload), '{"by":"arn"}', JSON.stringify(input));
  }
});
