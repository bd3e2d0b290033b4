// The Redis tunnel end to end with the real binaries and a real redis-server:
//   funcie emulate -> funcie wrap -> redis-server -> funcie connect -> the local runtime.
// The cloud copy of the function answers {"where":"cloud"}, the local one {"where":"local"}.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { funcieBin } from './lib/harness.mjs';
import { eventually, startCloud, startConnect, startRedis, where } from './lib/tunnel.mjs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
let redis;
let appNumber = 0;
const nextApp = () => `tunnel-${process.pid}-${++appNumber}`;

before(async () => { redis = await startRedis(); });
after(async () => { await redis?.close(); });

/** Starts the cloud side and a consumer for a fresh app; always stops both. */
async function withTunnel({ cloudArgs = [], connectArgs = [], connect = true } = {}, body) {
  const app = nextApp();
  const em = await startCloud({ url: redis.url, app, args: [...(cloudArgs.includes('--timeout') ? [] : ['--timeout', '30']), ...cloudArgs] });
  let local;
  try {
    if (connect) local = await startConnect({ url: redis.url, app, args: connectArgs });
    return await body({ app, em, local });
  } finally {
    await local?.stop('SIGKILL');
    await em.stop();
  }
}

test('with nobody connected the function answers from the cloud', async () => {
  await withTunnel({ connect: false }, async ({ em }) => {
    assert.equal(await where(em), 'cloud');
    assert.equal(await where(em), 'cloud');
  });
});

test('with a consumer connected the local handler answers, and the cloud again after it leaves', async () => {
  await withTunnel({}, async ({ em, local }) => {
    assert.equal(await where(em), 'local');
    assert.equal(await where(em), 'local');
    const { code } = await local.stop('SIGINT');
    assert.equal(code, 0, 'Ctrl-C leaves with status 0');
    assert.equal(await where(em), 'cloud');
  });
});

test('payloads and errors come back byte for byte', async () => {
  await withTunnel({}, async ({ em }) => {
    // Unicode, escapes, odd spacing: the local echo must return exactly these bytes.
    const event = ' {"text":"z\\u00fcrich \\"quoted\\" \\n","emoji":"🦆","n":[1,2.50,-0e3],"big":"' +
      'x'.repeat(1 << 20) + '"}  ';
    const ok = await em.invoke(event);
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('x-amz-function-error'), null);
    assert.equal(ok.body, event);

    const failed = await em.invoke({ throw: 'the local handler broke' });
    assert.equal(failed.status, 200);
    assert.equal(failed.headers.get('x-amz-function-error'), 'Unhandled');
    const error = JSON.parse(failed.body);
    assert.equal(error.errorType, 'std::runtime_error');
    assert.equal(error.errorMessage, 'the local handler broke');
  });
});

test('the handler sees the cloud context: request id, deadline, ARN, trace id, function environment', async () => {
  await withTunnel({ cloudArgs: ['--memory', '512', '--region', 'eu-west-1'] }, async ({ app, em }) => {
    const traceId = 'Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1';
    const clientContext = Buffer.from(JSON.stringify({ custom: { who: 'test' } })).toString('base64');
    const before = Date.now();
    const r = await em.invoke({ context: true }, { headers: { 'X-Amzn-Trace-Id': traceId, 'X-Amz-Client-Context': clientContext } });
    assert.equal(r.status, 200, r.body);
    const ctx = JSON.parse(r.body);
    assert.match(ctx.request_id, /^[0-9a-f-]{36}$/);
    assert.equal(ctx.function_arn, `arn:aws:lambda:eu-west-1:000000000000:function:${app}`);
    assert.equal(ctx.xray_trace_id, traceId);
    assert.deepEqual(JSON.parse(ctx.client_context).custom, { who: 'test' });
    // The cloud's deadline (30 s timeout), not one the laptop made up.
    // (An ASan runtime takes about a second to start before the cloud's clock starts.)
    const slack = process.env.ASAN_OPTIONS ? 3000 : 1000;
    assert.ok(ctx.deadline_ms > before + 25000 && ctx.deadline_ms < before + 30000 + slack, `deadline ${ctx.deadline_ms - before} ms ahead`);
    assert.equal(ctx.env.AWS_LAMBDA_FUNCTION_NAME, app);
    assert.equal(ctx.env.AWS_LAMBDA_FUNCTION_VERSION, '$LATEST');
    assert.equal(ctx.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE, '512');
    assert.equal(ctx.env.AWS_REGION, 'eu-west-1');
    assert.equal(ctx.env.AWS_LAMBDA_LOG_GROUP_NAME, `/aws/lambda/${app}`);
    assert.match(ctx.env.AWS_LAMBDA_LOG_STREAM_NAME ?? '', /\[\$LATEST\]/);
    assert.equal(ctx.env._X_AMZN_TRACE_ID, traceId);
  });
});

test('a local handler slower than the deadline gets a clear timeout error before the deadline', async () => {
  await withTunnel({ cloudArgs: ['--timeout', '3'] }, async ({ em }) => {
    const started = Date.now();
    const r = await em.invoke({ sleep_ms: 10000 });
    const took = Date.now() - started;
    assert.equal(r.headers.get('x-amz-function-error'), 'Unhandled');
    const error = JSON.parse(r.body);
    assert.equal(error.errorType, 'Funcie.Timeout', r.body);
    // The deadline's clock starts once the runtime is up: under ASan that start takes ~1 s,
    // on a loaded machine a few hundred ms (the handler's 10 s are far beyond either).
    const coldStart = process.env.ASAN_OPTIONS ? 2000 : 1500;
    assert.ok(took < 3000 + coldStart, `answered after ${took} ms, the deadline was 3000 ms`);
    assert.ok(took > 2000, `answered after ${took} ms: too early`);
  });
});

test('two consumers: every invocation runs exactly once', async () => {
  await withTunnel({ cloudArgs: ['--concurrency', '20'] }, async ({ app, em, local }) => {
    const second = await startConnect({ url: redis.url, app });
    try {
      const results = await Promise.all(Array.from({ length: 40 }, () => em.invoke({ context: true })));
      const ids = results.map((r) => { assert.equal(r.status, 200, r.body); return JSON.parse(r.body).request_id; });
      assert.equal(new Set(ids).size, 40);
      // Each request id appears in exactly one consumer's log.
      await eventually(async () => ids.every((id) => (local.out.stderr + second.out.stderr).includes(id.slice(0, 8))), { what: 'all logged' });
      for (const id of ids) {
        const short = id.slice(0, 8);
        const count = [local, second].filter((c) => c.out.stderr.includes(short)).length;
        assert.equal(count, 1, `request ${id} ran on ${count} consumers`);
      }
    } finally {
      await second.stop('SIGKILL');
    }
  });
});

// Under ASan (a Debug build) 20 at once starve the consumer's heartbeat: 4 there, 20 in release.
const BIG_AT_ONCE = process.env.ASAN_OPTIONS ? 4 : 20;
test('6 MB request and 6 MB response, 20 of them at once', async () => {
  await withTunnel({ cloudArgs: ['--concurrency', '20'], connectArgs: ['--concurrency', '20'] }, async ({ em }) => {
    const big = (i) => `{"i":${i},"pad":"${String(i % 10).repeat(6291456 - 40)}"}`;
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: BIG_AT_ONCE }, (_, i) => em.invoke(big(i))));
    results.forEach((r, i) => {
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('x-amz-function-error'), null, r.body.slice(0, 300));
      assert.equal(r.body.length, big(i).length);
      assert.ok(r.body === big(i), `payload ${i} differs`);
    });
    console.log(`${BIG_AT_ONCE} x 6 MB round trips in ${Date.now() - started} ms`);
  });
});

// 64 environments on each side are 128 processes starting at once; under ASan on two cores
// they cannot all finish Lambda's 10 s init in time, so the sanitizer run (scripts/test.sh
// sets ASAN_OPTIONS) checks 16. The release run checks the real 64.
const IN_FLIGHT = process.env.ASAN_OPTIONS ? 16 : 64;

test(`${IN_FLIGHT} invocations in flight at once all run locally, in parallel`, async () => {
  const n = String(IN_FLIGHT);
  await withTunnel({ cloudArgs: ['--concurrency', n], connectArgs: ['--concurrency', n] }, async ({ em }) => {
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: IN_FLIGHT }, () => em.invoke({ sleep_ms: 1000 })));
    const took = Date.now() - started;
    for (const r of results) {
      assert.equal(r.status, 200);
      assert.equal(r.body, '{"sleep_ms":1000}');
    }
    assert.ok(took < 15000, `${IN_FLIGHT} one-second invocations took ${took} ms`);
    assert.equal(await where(em), 'local');
  });
});

test('garbage in the session\'s inbox and forged responses are dropped; the right answer still arrives', async () => {
  await withTunnel({}, async ({ app, em, local }) => {
    // Each session pops its own inbox (docs/routing.md).
    const session = (await redis.cli('ZRANGE', `funcie:{${app}}:consumers`, '0', '0')).trim();
    assert.ok(session.startsWith(local.session), session);
    await redis.cli('RPUSH', `funcie:{${app}}:inbox:${session}`, 'garbage \u0001\u00ff not an envelope');
    await redis.cli('RPUSH', `funcie:{${app}}:inbox:${session}`, '0123456789abcdef0123456789abcdef\nfuncie/1 request\n{"id":"0123456789abcdef0123456789abcdef","app":"other"}\n');
    await local.waitFor(/notice|envelope|dropp/i);
    const pending = em.invoke({ sleep_ms: 1500 });
    const claim = await eventually(async () => (await redis.cli('--scan', '--pattern', `funcie:{${app}}:claim:*`)).trim(), { what: 'a claim key' });
    const id = claim.split(':').pop();
    const resp = `funcie:{${app}}:resp:${id}`;
    await redis.cli('RPUSH', resp, 'forged garbage');
    await redis.cli('RPUSH', resp, `funcie/1 response\n{"id":"${id}","app":"${app}","consumer":"00000000000000000000000000000000","outcome":"success"}\n{"forged":true}`);
    await redis.cli('RPUSH', `funcie:{${app}}:resp:ffffffffffffffffffffffffffffffff`, 'late answer nobody waits for');
    const r = await pending;
    assert.equal(r.status, 200);
    assert.equal(r.body, '{"sleep_ms":1500}', 'the real local answer, not a forged one');
    assert.equal(await where(em), 'local', 'both sides still work');
  });
});

test('funcie status lists connected consumers and what they hold', async () => {
  await withTunnel({}, async ({ app, em, local }) => {
    const pending = em.invoke({ sleep_ms: 2500 });
    await eventually(async () => {
      const { stdout } = await execFileP(funcieBin, ['status', '--backend', redis.url, '--app', app, '--json']);
      const list = JSON.parse(stdout);
      return list.length === 1 && list[0].pid === local.pid && list[0].in_flight === 1;
    }, { what: 'status showing one consumer with one request in flight' });
    const { stdout } = await execFileP(funcieBin, ['status', '--backend', redis.url, '--app', app]);
    assert.match(stdout, new RegExp(local.session));
    assert.match(stdout, new RegExp(String(local.pid)));
    await pending;
    await local.stop('SIGINT');
    const { stdout: none } = await execFileP(funcieBin, ['status', '--backend', redis.url, '--app', app]);
    assert.match(none, /no consumer/i);
  });
});

test('bad flags and URLs are refused with a clear error and no password in it', async () => {
  const run = (args) => execFileP(funcieBin, args).then(() => ({ code: 0, stderr: '' }), (e) => ({ code: e.code, stderr: e.stderr }));
  let r = await run(['connect', '--backend', 'redis://:hunter2@127.0.0.1:notaport', '--app', 'a', '--', 'true']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /port/i);
  assert.doesNotMatch(r.stderr, /hunter2/);
  r = await run(['connect', '--backend', 'mqtt://127.0.0.1', '--app', 'a', '--', 'true']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /redis/);
  r = await run(['connect', '--backend', redis.url, '--app', 'bad{app}', '--', 'true']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /app/);
  r = await run(['status', '--backend', 'redis://:hunter2@127.0.0.1:1', '--app', 'a']);
  assert.equal(r.code, 1);
  assert.doesNotMatch(r.stderr, /hunter2/);
  // An option no command knows is the user's to fix too: exit 2, naming it.
  for (const command of ['connect', 'status', 'doctor']) {
    r = await run([command, '--no-such-option']);
    assert.equal(r.code, 2, `${command}: ${r.stderr}`);
    assert.match(r.stderr, /--no-such-option/);
  }
  r = await run(['status', '--backend', redis.url, '--app', 'bad{app}']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /app/);
});
