// The tunnel under faults, with the real binaries and a real redis-server: a consumer killed,
// stopped or leaving mid-request, a consumer coming back, Redis going away and coming back,
// and Redis with TLS and an ACL user.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { eventually, startCloud, startConnect, startRedis, where } from './lib/tunnel.mjs';

let redis;
let appNumber = 0;
const nextApp = () => `faults-${process.pid}-${++appNumber}`;

before(async () => { redis = await startRedis(); });
after(async () => { await redis?.close(); });

async function withTunnel({ server = () => redis, cloudArgs = [], cloudEnv = {}, connectArgs = [] } = {}, body) {
  const app = nextApp();
  const em = await startCloud({ url: server().url, app, env: cloudEnv, args: [...(cloudArgs.includes('--timeout') ? [] : ['--timeout', '30']), ...cloudArgs] });
  const consumers = [];
  const connect = async (opts = {}) => {
    const c = await startConnect({ url: server().url, app, args: connectArgs, ...opts });
    consumers.push(c);
    return c;
  };
  try {
    return await body({ app, em, connect });
  } finally {
    for (const c of consumers) {
      try { process.kill(c.pid, 'SIGCONT'); } catch { /* gone */ }
      await c.stop('SIGKILL');
    }
    await em.stop();
  }
}

/**
 * Starts an invocation that sleeps locally; resolves once a consumer has claimed it. Under a
 * loaded CI machine the consumer may be too slow to claim within the heartbeat bound, and the
 * forwarder then rightly runs it in the cloud: that attempt is awaited and another started.
 */
async function startSlowInvocation(em, local, app, ms = 20000) {
  const claimKeys = async () => (await redis.cli('--scan', '--pattern', `funcie:{${app}}:claim:*`)).trim().split('\n').filter(Boolean);
  for (let attempt = 1; ; ++attempt) {
    // Claims of earlier invocations (the where() probe, a retried attempt) live on for a while:
    // drop them, so that the claim found below is this invocation's own.
    await redis.cli('DEL', ...(await claimKeys()), 'none');
    const mark = local.length();
    const started = Date.now();
    const result = em.invoke({ sleep_ms: ms });
    const owner = await eventually(async () => {
      const keys = (await redis.cli('--scan', '--pattern', `funcie:{${app}}:claim:*`)).trim().split('\n').filter(Boolean);
      for (const key of keys) {
        const value = (await redis.cli('GET', key)).trim();
        if (value && value !== 'cloud') return value;
        if (value === 'cloud') return 'cloud';
      }
      return undefined;
    }, { what: 'a claimed request' });
    if (owner !== 'cloud') return { result, started, mark };
    assert.ok(attempt < 3, 'the consumer never claimed the request in time');
    await result;
  }
}

for (const signal of ['SIGKILL', 'SIGSTOP']) {
  test(`a consumer ${signal === 'SIGKILL' ? 'killed' : 'stopped'} mid-request fails it within the 3 s heartbeat bound; the next invocation runs in the cloud`, async () => {
    await withTunnel({}, async ({ app, em, connect }) => {
      const local = await connect();
      assert.equal(await where(em), 'local');
      const { result } = await startSlowInvocation(em, local, app);
      const cut = Date.now();
      process.kill(local.pid, signal);
      const r = await result;
      const failedAfter = Date.now() - cut;
      assert.equal(r.headers.get('x-amz-function-error'), 'Unhandled');
      assert.equal(JSON.parse(r.body).errorType, 'Funcie.ConsumerLost', r.body);
      assert.ok(failedAfter <= 4500, `failed ${failedAfter} ms after the consumer was cut off`);
      // A stopped consumer is still subscribed for a moment: the invocation may wait up to
      // the bound, but it runs in the cloud, and then at once.
      const t0 = Date.now();
      assert.equal(await where(em), 'cloud');
      assert.ok(Date.now() - t0 <= 4500, `next invocation took ${Date.now() - t0} ms`);
      const t1 = Date.now();
      assert.equal(await where(em), 'cloud');
      assert.ok(Date.now() - t1 < 1000, `the one after took ${Date.now() - t1} ms`);
    });
  });
}

test('Ctrl-C on the consumer fails its in-flight requests at once', async () => {
  await withTunnel({}, async ({ app, em, connect }) => {
    const local = await connect();
    const { result } = await startSlowInvocation(em, local, app);
    const cut = Date.now();
    local.child.kill('SIGINT');
    const r = await result;
    const took = Date.now() - cut;
    const error = JSON.parse(r.body);
    assert.equal(error.errorType, 'Funcie.ConsumerLeft', r.body);
    assert.match(error.errorMessage, /stopped/);
    assert.ok(took < 2000, `failed ${took} ms after Ctrl-C`);
    const [code] = await local.exited;
    assert.equal(code, 0);
    assert.equal(await where(em), 'cloud');
  });
});

test('a consumer that comes back never sees a request made before it reconnected', async () => {
  await withTunnel({}, async ({ em, connect }) => {
    const local = await connect();
    assert.equal(await where(em), 'local');
    process.kill(local.pid, 'SIGSTOP');
    // Its inbox wait (BLPOP, a heartbeat/6 = 500 ms) lapses; then, while it is stopped, an
    // invocation is assigned to it, nobody takes it, it is withdrawn and runs in the cloud.
    await sleep(1000);
    const old = await em.invoke({ context: true });
    const oldId = JSON.parse(old.body).request_id;
    assert.ok(oldId);
    await sleep(3500); // its session has lapsed by now
    const mark = local.length();
    process.kill(local.pid, 'SIGCONT');
    await local.waitFor(/reconnected app \S+ to \S+ \(session [0-9a-f]{8}\)/, { from: mark });
    assert.equal(await where(em), 'local');
    const fresh = await em.invoke({ context: true });
    const freshId = JSON.parse(fresh.body).request_id;
    await eventually(async () => local.out.stderr.includes(freshId.slice(0, 8)), { what: 'fresh request logged' });
    assert.ok(!local.out.stderr.includes(oldId.slice(0, 8)), 'the old request reached the consumer');
  });
});

test('Redis stopped: the function answers from the cloud without paying a connect on every invocation; Redis back: forwarding resumes', async () => {
  const own = await startRedis();
  try {
    await withTunnel({ server: () => own }, async ({ em, connect }) => {
      const local = await connect();
      assert.equal(await where(em), 'local');
      await own.stop();
      const times = [];
      for (let i = 0; i < 10; ++i) {
        const t0 = performance.now();
        assert.equal(await where(em), 'cloud');
        times.push(performance.now() - t0);
      }
      assert.ok(times[0] < 1000, `first invocation with Redis down took ${times[0]} ms`);
      const rest = times.slice(1).sort((a, b) => a - b);
      assert.ok(rest[Math.floor(rest.length / 2)] < 50, `later invocations took ${rest.join(', ')} ms`);
      const mark = local.length();
      await own.restart();
      await local.waitFor(/reconnected app \S+ to/, { from: mark, ms: 15000 });
      await eventually(async () => (await where(em)) === 'local', { ms: 15000, every: 200, what: 'forwarding to resume' });
    });
  } finally {
    await own.close();
  }
});

test('Redis with TLS (own CA) and an ACL user carries the whole path', async () => {
  const secure = await startRedis({ tls: true, user: 'funcie', password: 'p@ss:word/1' });
  try {
    await withTunnel({
      server: () => secure,
      cloudEnv: { FUNCIE_CA_FILE: secure.caFile },
      connectArgs: ['--ca-file', secure.caFile],
    }, async ({ em, connect }) => {
      assert.equal(await where(em), 'cloud');
      const local = await connect();
      assert.doesNotMatch(local.out.stdout + local.out.stderr, /p@ss/, 'the password is never printed');
      assert.equal(await where(em), 'local');
    });
    // Without the CA the certificate is refused, and connect says so.
    const app = nextApp();
    const refused = await startConnect({ url: secure.url, app, waitServing: false });
    try {
      await refused.waitFor(/certificate/i, { ms: 10000 });
    } finally {
      await refused.stop('SIGKILL');
    }
  } finally {
    await secure.close();
  }
});
