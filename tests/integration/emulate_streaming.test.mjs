// Conformance: `funcie emulate` serves response streaming as Lambda does, checked with AWS's
// own SDK (@aws-sdk/client-lambda, whose event-stream decoder verifies the framing and both
// CRCs of every message) and aws-lambda-ric running awslambda.streamifyResponse handlers.
// Also the rest of the API surface tools call: LogType Tail, GetFunction,
// GetFunctionConfiguration, ListFunctions, AWS's error names and limits.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { peersDir, repoRoot, ricBin, startEmulate } from './lib/harness.mjs';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const require = createRequire(path.join(peersDir, 'package.json'));
const {
  LambdaClient, InvokeCommand, InvokeWithResponseStreamCommand, GetFunctionCommand,
  GetFunctionConfigurationCommand, ListFunctionsCommand,
} = require('@aws-sdk/client-lambda');

const fixtures = path.join(repoRoot, 'tests/integration/fixtures/node');
// A bash + curl runtime: `data: 1`, `\ndata: 2` 400 ms later, then the trailers Stream.GaveUp.
const bashRuntime = path.join(repoRoot, 'tests/integration/fixtures/wrap/streaming_bootstrap.sh');
const name = 'streamer';
const bytes = (s) => new TextEncoder().encode(s);
const text = (u8) => Buffer.from(u8).toString();

const started = [];
after(async () => { for (const { em, lambda } of started) { lambda.destroy(); await em.stop(); } });

/** emulate running `handler` under aws-lambda-ric, and an SDK client for it. */
async function emulateWith(handler, args = [], env = {}) {
  const em = await startEmulate({
    functionName: name, cwd: fixtures, args: ['--handler', handler, ...args],
    command: [process.execPath, ricBin, handler], env,
  });
  const lambda = new LambdaClient({
    endpoint: em.url, region: 'us-east-1', maxAttempts: 1,
    credentials: { accessKeyId: 'AKIDFUNCIETEST', secretAccessKey: 'funcie-test-secret' },
  });
  started.push({ em, lambda });
  return { em, lambda };
}

/** InvokeWithResponseStream; every event with the time it arrived. */
async function invokeStream(lambda, input = {}) {
  const res = await lambda.send(new InvokeWithResponseStreamCommand({ FunctionName: name, Payload: bytes('{}'), ...input }));
  const events = [];
  for await (const event of res.EventStream) events.push({ at: Date.now(), ...event });
  const chunks = events.filter((e) => e.PayloadChunk);
  const complete = events.filter((e) => e.InvokeComplete);
  assert.equal(complete.length, 1, 'one InvokeComplete, last');
  assert.ok(events.at(-1).InvokeComplete);
  return {
    res, chunks, complete: complete[0].InvokeComplete,
    payload: Buffer.concat(chunks.map((c) => Buffer.from(c.PayloadChunk.Payload))),
  };
}

test('InvokeWithResponseStream passes each chunk on as the handler writes it', async (t) => {
  const { em, lambda } = await emulateWith('streaming.chunks');
  const sent = Date.now();
  const { res, chunks, complete, payload } = await invokeStream(lambda);
  assert.equal(res.StatusCode, 200);
  assert.equal(res.ExecutedVersion, '$LATEST');
  assert.equal(res.ResponseStreamContentType, 'application/octet-stream');
  assert.equal(payload.toString(), 'chunk 1 of 3\nchunk 2 of 3\nchunk 3 of 3\n');
  assert.ok(chunks.length >= 3, `one event per chunk (${chunks.length})`);
  assert.equal(complete.ErrorCode, undefined);
  const m = em.stdout().match(/LAST_CHUNK_WRITTEN_AT (\d+)/);
  assert.ok(m, em.stdout());
  assert.ok(chunks[0].at < Number(m[1]),
    `the first chunk reached the caller (${chunks[0].at}) before the last was written (${m[1]})`);
  t.diagnostic(`first PayloadChunk ${chunks[0].at - sent} ms after the call, last chunk written ` +
    `${Number(m[1]) - sent} ms after it, last PayloadChunk ${chunks.at(-1).at - sent} ms after it`);

  // The buffered Invoke of the same function answers the whole stream at once.
  const whole = await lambda.send(new InvokeCommand({ FunctionName: name, Payload: bytes('{}') }));
  assert.equal(whole.FunctionError, undefined);
  assert.equal(text(whole.Payload), 'chunk 1 of 3\nchunk 2 of 3\nchunk 3 of 3\n');
});

test('a throw mid-stream is an error: InvokeComplete with its code, FunctionError on Invoke', async () => {
  const { lambda } = await emulateWith('streaming.failMidway');
  const { payload, complete } = await invokeStream(lambda);
  assert.equal(payload.toString(), 'first\nsecond\n');
  assert.equal(complete.ErrorCode, 'TypeError');
  assert.match(complete.ErrorDetails, /broke after two chunks/);

  const buffered = await lambda.send(new InvokeCommand({ FunctionName: name, Payload: bytes('{}') }));
  assert.equal(buffered.FunctionError, 'Unhandled');
  const error = JSON.parse(text(buffered.Payload));
  assert.equal(error.errorType, 'TypeError');
  assert.equal(error.errorMessage, 'broke after two chunks');
});

test('a crash or a timeout mid-stream ends the stream with the error, and the next invocation runs', async () => {
  const crash = await emulateWith('streaming.crashMidway', ['--concurrency', '1']);
  const crashed = await invokeStream(crash.lambda);
  assert.equal(crashed.payload.toString(), 'partial\n');
  assert.match(crashed.complete.ErrorCode, /^Runtime\.(ExitError|TruncatedResponse)$/);
  const again = await invokeStream(crash.lambda);
  assert.equal(again.payload.toString(), 'partial\n', 'a new runtime took the next one');

  const slow = await emulateWith('streaming.slowMidway', ['--timeout', '1']);
  const late = await invokeStream(slow.lambda);
  assert.equal(late.payload.toString(), 'started\n');
  assert.equal(late.complete.ErrorCode, 'Sandbox.Timedout');
  assert.match(late.complete.ErrorDetails, /Task timed out after 1\.00 seconds/);
});

test('content types as the function sets them; the HttpResponseStream prelude passes', async () => {
  const prelude = await emulateWith('streaming.httpPrelude');
  const { res, payload } = await invokeStream(prelude.lambda);
  assert.equal(res.ResponseStreamContentType, 'application/vnd.awslambda.http-integration-response');
  const nul = payload.indexOf(Buffer.alloc(8));
  assert.deepEqual(JSON.parse(payload.subarray(0, nul)), { statusCode: 201, headers: { 'x-funcie-test': 'prelude' } });
  assert.equal(payload.subarray(nul + 8).toString(), '<p>streamed</p>');

  const csv = await emulateWith('streaming.csv');
  const answer = await invokeStream(csv.lambda);
  assert.equal(answer.res.ResponseStreamContentType, 'text/csv');
  assert.equal(answer.payload.toString(), 'a,b\n1,2\n');
});

test('a bash + curl runtime posting a chunked stream with trailers by hand: accepted as Lambda does, the error reaches the caller', async () => {
  const em = await startEmulate({ functionName: name, cwd: fixtures, command: [bashRuntime] });
  const lambda = new LambdaClient({
    endpoint: em.url, region: 'us-east-1', maxAttempts: 1,
    credentials: { accessKeyId: 'AKIDFUNCIETEST', secretAccessKey: 'funcie-test-secret' },
  });
  started.push({ em, lambda });
  const { res, chunks, payload, complete } = await invokeStream(lambda);
  assert.equal(res.ResponseStreamContentType, 'text/event-stream');
  assert.equal(payload.toString(), 'data: 1\ndata: 2');
  assert.ok(chunks.length >= 1);
  assert.equal(complete.ErrorCode, 'Stream.GaveUp', complete.ErrorDetails);
  assert.match(complete.ErrorDetails, /gave up after two events/);
  // The buffered Invoke of the same runtime: a function error, not the partial body.
  const buffered = await lambda.send(new InvokeCommand({ FunctionName: name, Payload: bytes('{}') }));
  assert.equal(buffered.FunctionError, 'Unhandled');
  assert.equal(JSON.parse(text(buffered.Payload)).errorType, 'Stream.GaveUp');
  assert.match(em.stderr() + em.stdout(), /posted: HTTP\/1\.1 202/, 'the Runtime API answered 202 as Lambda does');
});

test('8 MiB stream through InvokeWithResponseStream; the buffered Invoke refuses it as Lambda does', async () => {
  const { lambda } = await emulateWith('streaming.big');
  const { payload, complete } = await invokeStream(lambda);
  assert.equal(payload.length, 8 * 1024 * 1024);
  assert.equal(complete.ErrorCode, undefined);
  const buffered = await lambda.send(new InvokeCommand({ FunctionName: name, Payload: bytes('{}') }));
  assert.equal(buffered.FunctionError, 'Unhandled');
  assert.equal(JSON.parse(text(buffered.Payload)).errorType, 'Function.ResponseSizeTooLarge');
});

// 200 MiB cost ~6 s of both cores in a release build; under ASan many times that, for nothing
// the release run does not check.
const overLimitSkip = process.env.ASAN_OPTIONS ? 'slow under ASan; the release run checks it' : false;
test('a stream past Lambda\'s 200 MiB streaming limit ends with Function.ResponseSizeTooLarge', { skip: overLimitSkip }, async (t) => {
  // Read raw (not through the SDK, whose CRC check of 200 MiB in JS would take long): the
  // event stream's bytes are counted, and only its tail kept, where InvokeComplete is.
  const { em } = await emulateWith('streaming.overLimit', ['--timeout', '120']);
  const began = Date.now();
  const res = await fetch(`${em.url}/2021-11-15/functions/${name}/response-streaming-invocations`, { method: 'POST', body: '{}' });
  assert.equal(res.status, 200);
  let total = 0;
  let tail = Buffer.alloc(0);
  for await (const piece of res.body) {
    total += piece.length;
    tail = Buffer.concat([tail, piece]).subarray(-4096);
  }
  const end = tail.toString('latin1').slice(-400);
  assert.ok(/InvokeComplete/.test(end) && /"ErrorCode":"Function\.ResponseSizeTooLarge"/.test(end), `the stream's end: ${end}`);
  assert.ok(total > 199 * 1024 * 1024 && total < 203 * 1024 * 1024,
    `the stream carried up to the limit and stopped there (${total} bytes of event stream)`);
  t.diagnostic(`200 MiB streamed through emulate in ${Date.now() - began} ms`);
});

test('a function that does not stream answers InvokeWithResponseStream in one chunk; LogType Tail', async () => {
  const { lambda } = await emulateWith('streaming.buffered');
  const { payload, complete } = await invokeStream(lambda, { Payload: bytes('{"k":"v"}'), LogType: 'Tail' });
  assert.deepEqual(JSON.parse(payload), { echoed: { k: 'v' } });
  const streamLog = Buffer.from(complete.LogResult, 'base64').toString();
  assert.match(streamLog, /buffered handler saw \{"k":"v"\}/);

  const res = await lambda.send(new InvokeCommand({ FunctionName: name, Payload: bytes('{"tail":1}'), LogType: 'Tail' }));
  const log = Buffer.from(res.LogResult, 'base64').toString();
  assert.match(log, /^START RequestId: [0-9a-f-]+ Version: \$LATEST\n/);
  assert.match(log, /buffered handler saw \{"tail":1\}/);
  assert.match(log, /END RequestId: /);
  assert.match(log, /REPORT RequestId: [0-9a-f-]+\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\tMemory Size: 128 MB/);
  assert.ok(Buffer.from(res.LogResult, 'base64').length <= 4096);
  const quiet = await lambda.send(new InvokeCommand({ FunctionName: name, Payload: bytes('{}') }));
  assert.equal(quiet.LogResult, undefined, 'no log unless asked');
});

test('GetFunction, GetFunctionConfiguration and ListFunctions give the configuration emulate runs', async () => {
  const { em, lambda } = await emulateWith('streaming.buffered',
    ['--runtime', 'nodejs22.x', '--memory', '256', '--timeout', '7', '--env', 'STAGE=dev', '--env', 'WITH_EQUALS=a=b']);
  const config = await lambda.send(new GetFunctionConfigurationCommand({ FunctionName: name }));
  assert.equal(config.FunctionName, name);
  assert.equal(config.FunctionArn, `arn:aws:lambda:us-east-1:000000000000:function:${name}`);
  assert.equal(config.Runtime, 'nodejs22.x');
  assert.equal(config.Handler, 'streaming.buffered');
  assert.equal(config.MemorySize, 256);
  assert.equal(config.Timeout, 7);
  assert.equal(config.State, 'Active');
  assert.deepEqual(config.Environment.Variables, { STAGE: 'dev', WITH_EQUALS: 'a=b' });
  assert.match(config.LastModified, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$/);

  const { $metadata, ...configuration } = config;
  assert.equal($metadata.httpStatusCode, 200);
  const fn = await lambda.send(new GetFunctionCommand({ FunctionName: name }));
  assert.deepEqual(fn.Configuration, configuration);
  const list = await lambda.send(new ListFunctionsCommand({}));
  assert.deepEqual(list.Functions, [configuration]);

  await assert.rejects(lambda.send(new GetFunctionCommand({ FunctionName: 'other' })),
    (e) => e.name === 'ResourceNotFoundException');
  await assert.rejects(lambda.send(new InvokeWithResponseStreamCommand({ FunctionName: 'other', Payload: bytes('{}') })),
    (e) => e.name === 'ResourceNotFoundException');
  assert.equal(em.stderr().includes('hunter2'), false);
});

test('AWS error names and limits: RequestEntityTooLargeException, the client context limit', async () => {
  const { lambda } = await emulateWith('streaming.buffered');
  const tooBig = bytes(JSON.stringify({ pad: 'x'.repeat(6 * 1024 * 1024) }));
  await assert.rejects(lambda.send(new InvokeCommand({ FunctionName: name, Payload: tooBig })),
    (e) => e.name === 'RequestEntityTooLargeException');
  await assert.rejects(lambda.send(new InvokeWithResponseStreamCommand({ FunctionName: name, Payload: tooBig })),
    (e) => e.name === 'RequestEntityTooLargeException');

  // 3,583 bytes of base64 are accepted, one group more is not.
  const contextOf = (b64Length) => {
    const json = JSON.stringify({ custom: { pad: 'y'.repeat(b64Length) } });
    let b64 = Buffer.from(json).toString('base64');
    while (b64.length > b64Length) {
      const shorter = JSON.stringify({ custom: { pad: 'y'.repeat(JSON.parse(Buffer.from(b64, 'base64')).custom.pad.length - 1) } });
      b64 = Buffer.from(shorter).toString('base64');
    }
    return b64;
  };
  const fits = contextOf(3580);
  assert.ok(fits.length <= 3583);
  const ok = await lambda.send(new InvokeCommand({ FunctionName: name, Payload: bytes('{}'), ClientContext: fits }));
  assert.equal(ok.StatusCode, 200);
  const over = Buffer.from(JSON.stringify({ custom: { pad: 'z'.repeat(2700) } })).toString('base64');
  assert.ok(over.length > 3583);
  await assert.rejects(lambda.send(new InvokeCommand({ FunctionName: name, Payload: bytes('{}'), ClientContext: over })),
    (e) => e.name === 'InvalidParameterValueException' && /3583/.test(e.message));
});

test('AWS credentials reach the function only with --credentials-from-profile', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'funcie-creds-'));
  const file = path.join(dir, 'credentials');
  await writeFile(file, '[dev]\naws_access_key_id = AKIDFROMPROFILE\naws_secret_access_key = profile-secret-hunter2\naws_session_token = profile-token\n');
  const env = { AWS_SHARED_CREDENTIALS_FILE: file, AWS_CONFIG_FILE: path.join(dir, 'none'),
    AWS_ACCESS_KEY_ID: 'AKIDOFTHEDEVELOPER', AWS_SECRET_ACCESS_KEY: 'developer-secret' };
  const plain = await emulateWith('streaming.credentials', [], env);
  const none = await plain.lambda.send(new InvokeCommand({ FunctionName: name }));
  assert.deepEqual(JSON.parse(text(none.Payload)),
    { AWS_ACCESS_KEY_ID: null, AWS_SECRET_ACCESS_KEY: null, AWS_SESSION_TOKEN: null }, 'none by default');

  const role = await emulateWith('streaming.credentials', ['--credentials-from-profile', 'dev'], env);
  const given = await role.lambda.send(new InvokeCommand({ FunctionName: name }));
  assert.deepEqual(JSON.parse(text(given.Payload)),
    { AWS_ACCESS_KEY_ID: 'AKIDFROMPROFILE', AWS_SECRET_ACCESS_KEY: 'profile-secret-hunter2', AWS_SESSION_TOKEN: 'profile-token' });
  assert.ok(!role.em.stderr().includes('hunter2') && !role.em.stdout().includes('hunter2'), 'no secret in a log');
});
