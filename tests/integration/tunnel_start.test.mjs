// funcie::start, the C++ library form: the same binary is the function in the cloud (under
// funcie emulate, forwarding through a real redis-server) and, run on the laptop without
// AWS_LAMBDA_RUNTIME_API, the consumer that answers for it. In the cloud it also forwards to
// `funcie connect` running any runtime, and posts a streamed answer to Lambda as it comes
// (docs/tunnel.md, "Streamed responses", 9).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { createRequire } from 'node:module';
import { peersDir, repoRoot, startEmulate } from './lib/harness.mjs';
import { eventually, startConnect, startRedis } from './lib/tunnel.mjs';
import { nodeRuntime } from './lib/languages.mjs';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const require = createRequire(path.join(peersDir, 'package.json'));
const { LambdaClient, InvokeWithResponseStreamCommand } = require('@aws-sdk/client-lambda');
const nodeFixtures = path.join(repoRoot, 'tests/integration/fixtures/node');

const startBin = process.env.FUNCIE_EXAMPLE_START ?? path.join(repoRoot, 'build/examples/funcie_example_start');
let redis;
before(async () => { redis = await startRedis(); });
after(async () => { await redis?.close(); });

const message = async (em) => {
  const r = await em.invoke({});
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body).message;
};

test('funcie::start answers in the cloud, forwards to the same binary run locally, and back', async () => {
  const em = await startEmulate({
    functionName: 'hello',
    args: ['--env', `FUNCIE_BACKEND=${redis.url}`],
    command: [startBin],
  });
  const env = { ...process.env, FUNCIE_BACKEND: redis.url };
  delete env.AWS_LAMBDA_RUNTIME_API;
  let local;
  try {
    assert.equal(await message(em), 'hello from the cloud');
    local = spawn(startBin, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    local.stdout.on('data', (d) => { out += d; });
    local.stderr.on('data', (d) => { out += d; });
    await eventually(async () => /serving app hello/.test(out), { what: 'the local consumer to serve' });
    assert.doesNotMatch(out, /AWS_LAMBDA_RUNTIME_API/);
    assert.equal(await message(em), 'hello from your machine');
    const exited = once(local, 'exit');
    local.kill('SIGINT');
    const [code] = await exited;
    assert.equal(code, 0, out);
    assert.equal(await message(em), 'hello from the cloud');
  } finally {
    if (local && local.exitCode === null) local.kill('SIGKILL');
    await em.stop();
  }
});

/** InvokeWithResponseStream through the SDK; every event with the time it arrived. */
async function invokeStream(em, functionName) {
  const lambda = new LambdaClient({
    endpoint: em.url, region: 'us-east-1', maxAttempts: 1,
    credentials: { accessKeyId: 'AKIDFUNCIETEST', secretAccessKey: 'funcie-test-secret' },
  });
  try {
    const res = await lambda.send(new InvokeWithResponseStreamCommand({ FunctionName: functionName, Payload: new TextEncoder().encode('{}') }));
    const events = [];
    for await (const event of res.EventStream) events.push({ at: Date.now(), ...event });
    assert.ok(events.at(-1)?.InvokeComplete, 'InvokeComplete last');
    const chunks = events.filter((e) => e.PayloadChunk);
    return {
      chunks, complete: events.at(-1).InvokeComplete,
      payload: Buffer.concat(chunks.map((c) => Buffer.from(c.PayloadChunk.Payload))).toString(),
    };
  } finally {
    lambda.destroy();
  }
}

test('funcie::start in the cloud posts a connected handler\'s stream to Lambda as it is written', async (t) => {
  // The example's app is "hello"; this redis-server is this file's own, so nobody else is on it.
  const em = await startEmulate({ functionName: 'hello', args: ['--env', `FUNCIE_BACKEND=${redis.url}`], command: [startBin] });
  let local;
  try {
    const startConnectFor = (handler) => startConnect({ url: redis.url, app: 'hello', command: nodeRuntime(nodeFixtures, handler) });
    local = await startConnectFor('streaming.chunks');
    const sent = Date.now();
    const { chunks, complete, payload } = await invokeStream(em, 'hello');
    assert.equal(complete.ErrorCode, undefined, complete.ErrorDetails);
    assert.equal(payload, 'chunk 1 of 3\nchunk 2 of 3\nchunk 3 of 3\n');
    const last = Number((await local.waitFor(/LAST_CHUNK_WRITTEN_AT (\d+)/))[1]);
    assert.ok(chunks[0].at < last, `the first chunk reached the caller (${chunks[0].at}) before the last was written (${last})`);
    const first = Number((await local.waitFor(/FIRST_CHUNK_WRITTEN_AT (\d+)/))[1]);
    t.diagnostic(`through funcie::start: first PayloadChunk ${chunks[0].at - sent} ms after the call, ` +
      `${chunks[0].at - first} ms after the handler wrote it; last written ${last - sent} ms after the call`);
    await local.stop('SIGINT');

    local = await startConnectFor('streaming.failMidway');
    const failed = await invokeStream(em, 'hello');
    assert.equal(failed.payload, 'first\nsecond\n');
    assert.equal(failed.complete.ErrorCode, 'TypeError');
    assert.match(failed.complete.ErrorDetails, /broke after two chunks/);
  } finally {
    await local?.stop('SIGINT');
    await em.stop();
  }
});
