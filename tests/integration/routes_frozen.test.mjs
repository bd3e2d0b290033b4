// A frozen-and-thawed function (docs/routing.md, "What is built"): the forwarder inside
// `funcie wrap` is stopped with SIGSTOP for 30 s, as Lambda freezes an idle environment,
// while a developer with a route connects. Thawed, its first invocation must go by the
// sessions present now, not by the presence view it read before the freeze. Long (30 s):
// label "release" (tests/CMakeLists.txt), so the ASan step does not run it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { childPids, echoBin } from './lib/harness.mjs';
import { startCloud, startConnect, startRedis } from './lib/tunnel.mjs';
import { readFile } from 'node:fs/promises';

let redis;
before(async () => { redis = await startRedis(); });
after(async () => { await redis?.close(); });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function whereFor(em, dev) {
  const context = Buffer.from(JSON.stringify({ custom: { dev } })).toString('base64');
  const r = await em.invoke({ where: true }, { headers: { 'X-Amz-Client-Context': context } });
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body).where;
}

test('a forwarder stopped for 30 s does not act on the presence it saw before', async (t) => {
  const app = `frozen-${process.pid}`;
  const em = await startCloud({ url: redis.url, app, args: ['--timeout', '30'] });
  t.after(() => em.stop());
  const rest = await startConnect({ url: redis.url, app, command: [echoBin, 'rest'] });
  t.after(() => rest.stop('SIGKILL'));
  assert.equal(await whereFor(em, 'ada'), 'rest');  // the view now: one session, no route

  // The forwarder is `funcie wrap`, the emulator's child.
  let wrap;
  for (const pid of await childPids(em.child.pid)) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.split('\0').includes('wrap')) wrap = pid;
  }
  assert.ok(wrap, 'funcie wrap found');
  process.kill(wrap, 'SIGSTOP');
  let thawed = false;
  t.after(() => { if (!thawed) process.kill(wrap, 'SIGCONT'); });
  const ada = await startConnect({ url: redis.url, app, args: ['--route', 'context:/custom/dev=ada'], command: [echoBin, 'ada'] });
  t.after(() => ada.stop('SIGKILL'));
  await sleep(30000);
  process.kill(wrap, 'SIGCONT');
  thawed = true;
  // The first invocation after the thaw: Ada's, not the session the old view knew.
  assert.equal(await whereFor(em, 'ada'), 'ada');
  assert.equal(await whereFor(em, 'bob'), 'rest');
});
