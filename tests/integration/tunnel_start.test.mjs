// funcie::start, the C++ library form: the same binary is the function in the cloud (under
// funcie emulate, forwarding through a real redis-server) and, run on the laptop without
// AWS_LAMBDA_RUNTIME_API, the consumer that answers for it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { repoRoot, startEmulate } from './lib/harness.mjs';
import { eventually, startRedis } from './lib/tunnel.mjs';

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
