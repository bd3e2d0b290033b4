// `funcie connect`'s local Runtime API accepts a streamed response (aws-lambda-ric's
// awslambda.streamifyResponse) as Lambda's does, through a real redis-server:
//   funcie emulate -> funcie wrap -> redis-server -> funcie connect -> aws-lambda-ric.
// The tunnel carries the response whole for now (docs/tunnel.md): the caller gets every byte,
// and a throw mid-stream is a function error with its type, never a success with half a body.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { repoRoot } from './lib/harness.mjs';
import { startRedis } from './lib/tunnel.mjs';
import { nodeRuntime, withConnected } from './lib/languages.mjs';

const fixtures = path.join(repoRoot, 'tests/integration/fixtures/node');
let redis;
before(async () => { redis = await startRedis(); });
after(async () => { await redis?.stop(); });

test('a streamed response of the local handler reaches the caller whole', async () => {
  await withConnected({ redis, command: nodeRuntime(fixtures, 'streaming.chunks') }, async ({ em }) => {
    const res = await em.invoke({});
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-amz-function-error'), null, res.body);
    assert.equal(res.body, 'chunk 1 of 3\nchunk 2 of 3\nchunk 3 of 3\n');
  });
});

test('a throw mid-stream in the local handler is a function error, and connect says so', async () => {
  await withConnected({ redis, command: nodeRuntime(fixtures, 'streaming.failMidway') }, async ({ em, local }) => {
    const res = await em.invoke({});
    assert.equal(res.headers.get('x-amz-function-error'), 'Unhandled', res.body);
    const error = JSON.parse(res.body);
    assert.equal(error.errorType, 'TypeError');
    assert.equal(error.errorMessage, 'broke after two chunks');
    await local.waitFor(/TypeError/);
  });
});
