// Response streaming through the tunnel, through each real broker (redis-server, and the
// SQS servers fauxqs and local-aws-sqs on 256 KiB queues):
//   @aws-sdk/client-lambda -> funcie emulate -> funcie wrap -> broker -> funcie connect
//   -> aws-lambda-ric running awslambda.streamifyResponse handlers.
// The local handler's chunks travel as numbered pieces as they are written (docs/tunnel.md
// and docs/sqs.md, "Streamed responses"), and wrap posts them to the Runtime API as a
// streamed response: the caller's first byte comes before the handler writes its last, a
// throw mid-stream reaches the caller as the error of InvokeComplete, and more than 6 MB
// passes. The same through `funcie proxy`, and `--hold` holds a stream that fails before its
// first byte. On SQS nothing is left on the queues afterwards.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { funcieBin, peersDir, repoRoot } from './lib/harness.mjs';
import { eventually, startRedis } from './lib/tunnel.mjs';
import { nodeRuntime, redisTunnel, withConnected } from './lib/languages.mjs';
import { sqsTunnel, startSqs } from './lib/sqs.mjs';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const require = createRequire(path.join(peersDir, 'package.json'));
const { LambdaClient, InvokeWithResponseStreamCommand } = require('@aws-sdk/client-lambda');

const fixtures = path.join(repoRoot, 'tests/integration/fixtures/node');
// Posts `data: 1`, then `\ndata: 2` 400 ms later, then the trailers Stream.GaveUp, by hand.
const bashRuntime = path.join(repoRoot, 'tests/integration/fixtures/wrap/streaming_bootstrap.sh');
const secret = 'c3RyZWFtZWQgcGllY2VzIGFyZSBzZWFsZWQgdG9vLCAzMiBieXRlcw==';
let secretDir;
before(() => {
  secretDir = mkdtempSync(path.join(os.tmpdir(), 'funcie-stream-secret-'));
  writeFileSync(path.join(secretDir, 'secret'), `${secret}\n`, { mode: 0o600 });
});
after(() => {
  if (secretDir) rmSync(secretDir, { recursive: true, force: true });
});

/** Each broker the tests run through: start() resolves { tunnel, stop() }. */
const brokers = [
  { name: 'Redis', start: async () => { const redis = await startRedis(); return { tunnel: redisTunnel(redis), stop: () => redis.stop() }; } },
  ...['faux', 'local'].map((kind) => ({
    name: kind === 'faux' ? 'SQS (fauxqs)' : 'SQS (local-aws-sqs)',
    start: async () => { const sqs = await startSqs({ kind }); return { tunnel: sqsTunnel(sqs), stop: () => sqs.stop() }; },
  })),
];

/** On SQS: resolves once both queues of the app are empty (docs/sqs.md, "Nothing circulates"). */
async function nothingLeft(tunnel) {
  if (!tunnel.depth) return;
  await eventually(async () => (await tunnel.depth()) === 0, { ms: 10000, every: 250, what: 'both queues empty' });
}

/** InvokeWithResponseStream on the cloud side; every event with the time it arrived. */
async function invokeStream(em, functionName) {
  const lambda = new LambdaClient({
    endpoint: em.url, region: 'us-east-1', maxAttempts: 1,
    credentials: { accessKeyId: 'AKIDFUNCIETEST', secretAccessKey: 'funcie-test-secret' },
  });
  try {
    const sent = Date.now();
    const res = await lambda.send(new InvokeWithResponseStreamCommand({
      FunctionName: functionName, Payload: new TextEncoder().encode('{}'),
    }));
    const events = [];
    for await (const event of res.EventStream) events.push({ at: Date.now(), ...event });
    const chunks = events.filter((e) => e.PayloadChunk);
    const complete = events.filter((e) => e.InvokeComplete);
    assert.equal(complete.length, 1, 'one InvokeComplete');
    assert.ok(events.at(-1).InvokeComplete, 'InvokeComplete last');
    return {
      res, sent, chunks, complete: complete[0].InvokeComplete,
      payload: Buffer.concat(chunks.map((c) => Buffer.from(c.PayloadChunk.Payload))),
    };
  } finally {
    lambda.destroy();
  }
}

const sealed = () => ({
  cloudArgs: ['--env', `FUNCIE_SECRET=${secret}`],
  connectArgs: ['--secret-file', path.join(secretDir, 'secret')],
});

for (const broker of brokers) {
  describe(`streaming through the tunnel on ${broker.name}`, () => {
    const b = {};
    before(async () => { Object.assign(b, await broker.start()); });
    after(async () => { await b.stop?.(); });

    test('the local handler\'s chunks reach the caller as they are written (sealed)', async (t) => {
      await withConnected({ backend: b.tunnel, command: nodeRuntime(fixtures, 'streaming.chunks'), ...sealed() },
        async ({ em, local, functionName, tunnel }) => {
          const { res, sent, chunks, complete, payload } = await invokeStream(em, functionName);
          assert.equal(res.StatusCode, 200);
          assert.equal(payload.toString(), 'chunk 1 of 3\nchunk 2 of 3\nchunk 3 of 3\n');
          assert.equal(complete.ErrorCode, undefined);
          assert.ok(chunks.length >= 2, `the chunks came apart (${chunks.length} PayloadChunk events)`);
          const m = (await local.waitFor(/LAST_CHUNK_WRITTEN_AT (\d+)/))[1];
          const first = Number((await local.waitFor(/FIRST_CHUNK_WRITTEN_AT (\d+)/))[1]);
          assert.ok(chunks[0].at < Number(m),
            `the first chunk reached the caller (${chunks[0].at}) before the last was written (${m})`);
          t.diagnostic(`through the tunnel on ${broker.name}: first PayloadChunk ${chunks[0].at - sent} ms after the call, ` +
            `${chunks[0].at - first} ms after the handler wrote it (time to first byte); ` +
            `last chunk written ${Number(m) - sent} ms after the call, last PayloadChunk ${chunks.at(-1).at - sent} ms after it`);
          assert.doesNotMatch(local.out.all, /cannot be held|not held/);
          await nothingLeft(tunnel);
        });
    });

    test('through funcie proxy (the proxy-only bootstrap) the chunks reach the caller as they are written', async (t) => {
      await withConnected({ backend: b.tunnel, command: nodeRuntime(fixtures, 'streaming.chunks'), cloudCommand: [funcieBin, 'proxy'] },
        async ({ em, local, functionName }) => {
          const { sent, chunks, complete, payload } = await invokeStream(em, functionName);
          assert.equal(payload.toString(), 'chunk 1 of 3\nchunk 2 of 3\nchunk 3 of 3\n');
          assert.equal(complete.ErrorCode, undefined, complete.ErrorDetails);
          const m = (await local.waitFor(/LAST_CHUNK_WRITTEN_AT (\d+)/))[1];
          assert.ok(chunks[0].at < Number(m),
            `the first chunk reached the caller (${chunks[0].at}) before the last was written (${m})`);
          t.diagnostic(`through funcie proxy: first PayloadChunk ${chunks[0].at - sent} ms after the call`);
        });
    });

    test('a bash + curl runtime streaming by hand behind funcie connect: pieces, content type and trailers reach the caller', async (t) => {
      await withConnected({ backend: b.tunnel, command: [bashRuntime] }, async ({ em, local, functionName }) => {
        const { res, sent, chunks, complete, payload } = await invokeStream(em, functionName);
        assert.equal(res.ResponseStreamContentType, 'text/event-stream');
        assert.equal(payload.toString(), 'data: 1\ndata: 2');
        assert.equal(complete.ErrorCode, 'Stream.GaveUp', complete.ErrorDetails);
        assert.match(complete.ErrorDetails, /gave up after two events/);
        assert.ok(payload.toString().startsWith(Buffer.from(chunks[0].PayloadChunk.Payload).toString()));
        // connect's local Runtime API answered the hand-made post as Lambda's does, and the
        // invocation's line says it failed (not "ok").
        await local.waitFor(/posted: HTTP\/1\.1 202/);
        await local.waitFor(/ direct +[\d.]+m?s error Stream\.GaveUp: gave up after two events/);
        t.diagnostic(`bash + curl on ${broker.name}: ${chunks.length} PayloadChunk events, the first ${chunks[0].at - sent} ms after the call`);
      });
    });

    test('--hold holds a stream that fails before its first byte; the fixed handler\'s stream reaches the caller', async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'funcie-stream-hold-'));
      const mode = path.join(dir, 'mode.txt');
      writeFileSync(mode, 'broken');
      try {
        await withConnected({
          backend: b.tunnel, command: nodeRuntime(fixtures, 'streaming.failFirstUntilFixed'),
          connectArgs: ['--hold', '--env', `FUNCIE_TEST_MODE_FILE=${mode}`],
        }, async ({ em, local, functionName }) => {
          let settled = false;
          const pending = invokeStream(em, functionName).finally(() => { settled = true; });
          await local.waitFor(/held TypeError/);
          await sleep(300);
          assert.equal(settled, false, 'the caller is still waiting while the request is held');
          writeFileSync(mode, 'fixed');
          process.kill(local.pid, 'SIGUSR1');
          const { payload, complete } = await pending;
          assert.equal(complete.ErrorCode, undefined, complete.ErrorDetails);
          assert.equal(payload.toString(), 'fixed 1\nfixed 2\n');
        });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test('a throw mid-stream is the error of InvokeComplete; --hold says it cannot hold it', async () => {
      await withConnected({ backend: b.tunnel, command: nodeRuntime(fixtures, 'streaming.failMidway'), connectArgs: ['--hold'] },
        async ({ em, local, functionName }) => {
          const { payload, complete } = await invokeStream(em, functionName);
          assert.equal(payload.toString(), 'first\nsecond\n');
          assert.equal(complete.ErrorCode, 'TypeError');
          assert.match(complete.ErrorDetails, /broke after two chunks/);
          await local.waitFor(/not held: it failed after streaming 13 bytes/);
        });
    });

    test('the buffered Invoke of a streaming handler through the tunnel: the whole body, or the error', async () => {
      await withConnected({ backend: b.tunnel, command: nodeRuntime(fixtures, 'streaming.chunks') }, async ({ em }) => {
        const res = await em.invoke({});
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('x-amz-function-error'), null, res.body);
        assert.equal(res.body, 'chunk 1 of 3\nchunk 2 of 3\nchunk 3 of 3\n');
      });
      await withConnected({ backend: b.tunnel, command: nodeRuntime(fixtures, 'streaming.failMidway') }, async ({ em, local }) => {
        const res = await em.invoke({});
        assert.equal(res.headers.get('x-amz-function-error'), 'Unhandled', res.body);
        const error = JSON.parse(res.body);
        assert.equal(error.errorType, 'TypeError');
        assert.equal(error.errorMessage, 'broke after two chunks');
        await local.waitFor(/TypeError/);
      });
    });

    test('a stream over 6 MB passes through the tunnel', async (t) => {
      await withConnected({ backend: b.tunnel, command: nodeRuntime(fixtures, 'streaming.big') }, async ({ em, functionName, tunnel }) => {
        const { sent, payload, complete, chunks } = await invokeStream(em, functionName);
        assert.equal(complete.ErrorCode, undefined, complete.ErrorDetails);
        assert.equal(payload.length, 8 * 1024 * 1024);
        assert.ok(payload.every((byte) => byte === 0x62), 'every byte as written');
        t.diagnostic(`8 MiB streamed through the tunnel on ${broker.name} in ${chunks.at(-1).at - sent} ms, ${chunks.length} PayloadChunk events`);
        await nothingLeft(tunnel);
      });
    });

    test('a consumer killed mid-stream: the stream ends with Funcie.ConsumerLost within the heartbeat bound', async (t) => {
      await withConnected({
        backend: b.tunnel, command: nodeRuntime(fixtures, 'streaming.slowMidway'),
        cloudArgs: ['--env', 'FUNCIE_HEARTBEAT_MS=1000'], connectArgs: ['--heartbeat-ms', '1000'],
      }, async ({ em, local, functionName }) => {
        const lambda = new LambdaClient({
          endpoint: em.url, region: 'us-east-1', maxAttempts: 1,
          credentials: { accessKeyId: 'AKIDFUNCIETEST', secretAccessKey: 'funcie-test-secret' },
        });
        try {
          const res = await lambda.send(new InvokeWithResponseStreamCommand({
            FunctionName: functionName, Payload: new TextEncoder().encode('{}'),
          }));
          const events = [];
          let killedAt;
          for await (const event of res.EventStream) {
            events.push({ at: Date.now(), ...event });
            if (event.PayloadChunk && !killedAt) {
              killedAt = Date.now();
              local.child.kill('SIGKILL');
            }
          }
          const complete = events.at(-1).InvokeComplete;
          assert.ok(complete, 'InvokeComplete last');
          assert.equal(Buffer.from(events[0].PayloadChunk.Payload).toString(), 'started\n');
          assert.equal(complete.ErrorCode, 'Funcie.ConsumerLost', complete.ErrorDetails);
          const took = events.at(-1).at - killedAt;
          t.diagnostic(`on ${broker.name} the stream ended ${took} ms after the consumer was killed (heartbeat 1000 ms)`);
          assert.ok(took < 4000, `ended ${took} ms after the kill, within the heartbeat bound`);
        } finally {
          lambda.destroy();
        }
      });
    });
  });
}
