// Routes end to end (docs/routing.md, docs/sqs.md "Routes"), on each backend: funcie emulate
// -> funcie wrap -> redis-server, fauxqs or local-aws-sqs -> two `funcie connect --route`
// sessions and one without a route. Each local copy of the echo function answers
// {"where": its label}; the cloud copy {"where":"cloud"}. The developer is named in the
// client context (what an SDK caller sets with ClientContext), since the echo function's
// hook wants an event of one key.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { echoBin, funcieBin } from './lib/harness.mjs';
import { eventually, startCloud, startConnect, startRedis } from './lib/tunnel.mjs';
import { sqsTunnelTarget, startSqs } from './lib/sqs.mjs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

// Each backend: start() its server, target() a fresh app on it: { backendArgs (funcie
// connect / status), env, cloud(), connect({ args, command }) }, and how soon a warm
// function sees a session come or go (Redis: its view's bound, heartbeat/6; SQS: its next
// presence read, FUNCIE_SQS_PRESENCE_MS, 1 s here).
const backends = [
  {
    name: 'Redis',
    async start() {
      const redis = await startRedis();
      let n = 0;
      return {
        stop: () => redis.close(),
        target() {
          const app = `routes-${process.pid}-${++n}`;
          return {
            app,
            env: {},
            backendArgs: ['--backend', redis.url, '--app', app],
            cloud: ({ args = [] } = {}) => startCloud({ url: redis.url, app, args }),
            connect: ({ args = [], command } = {}) => startConnect({ url: redis.url, app, args, command }),
          };
        },
      };
    },
  },
  ...[['faux', 'fauxqs'], ['local', 'local-aws-sqs']].map(([kind, name]) => ({
    name,
    async start() {
      const sqs = await startSqs({ kind });
      return {
        stop: () => sqs.stop(),
        target: () => sqsTunnelTarget(sqs, { env: { FUNCIE_SQS_PRESENCE_MS: '1000' } }),
      };
    },
  })),
];

async function whereFor(em, dev) {
  const context = Buffer.from(JSON.stringify({ custom: dev === undefined ? {} : { dev } })).toString('base64');
  const r = await em.invoke({ where: true }, { headers: { 'X-Amz-Client-Context': context } });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.headers.get('x-amz-function-error'), null, r.body);
  return JSON.parse(r.body).where;
}

/** whereFor, and how long it took (ms). */
async function timedWhereFor(em, dev) {
  const t0 = Date.now();
  const where = await whereFor(em, dev);
  return { where, ms: Date.now() - t0 };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

for (const backend of backends) {
  describe(`routes on ${backend.name}`, () => {
    let server;
    before(async () => { server = await backend.start(); });
    after(async () => { await server?.stop(); });

    test('each developer gets their own invocations, a session without a route the rest, else the cloud', async (t) => {
      const target = await server.target();
      const em = await target.cloud({ args: ['--timeout', '30'] });
      t.after(() => em.stop());
      const ada = await target.connect({ args: ['--route', 'context:/custom/dev=ada'], command: [echoBin, 'ada'] });
      t.after(() => ada.stop('SIGKILL'));
      const bob = await target.connect({ args: ['--route', 'context:/custom/dev=bob'], command: [echoBin, 'bob'] });
      t.after(() => bob.stop('SIGKILL'));
      // The function sees both sessions within its presence bound.
      await eventually(async () => (await whereFor(em, 'ada')) === 'ada' && (await whereFor(em, 'bob')) === 'bob',
        { what: 'both routed sessions seen by the function' });

      // Mixed invocations, 15 rounds of 4: each developer only gets their own.
      const unmatched = [];
      for (let i = 0; i < 15; ++i) {
        assert.equal(await whereFor(em, 'ada'), 'ada');
        assert.equal(await whereFor(em, 'bob'), 'bob');
        // Nobody's route holds and nobody takes the rest: the function's own code, at once
        // (nothing is offered, so no claim window is waited on SQS).
        const carol = await timedWhereFor(em, 'carol');
        assert.equal(carol.where, 'cloud');
        const nobody = await timedWhereFor(em);
        assert.equal(nobody.where, 'cloud');
        unmatched.push(carol.ms, nobody.ms);
      }
      assert.ok(median(unmatched) < 1000, `unmatched invocations waited for something (median ${median(unmatched)} ms)`);

      const rest = await target.connect({ command: [echoBin, 'rest'] });
      t.after(() => rest.stop('SIGKILL'));
      await eventually(async () => (await whereFor(em, 'carol')) === 'rest', { what: 'carol going to the session without a route' });
      for (let i = 0; i < 10; ++i) {
        assert.equal(await whereFor(em, 'ada'), 'ada');
        assert.equal(await whereFor(em, 'bob'), 'bob');
        assert.equal(await whereFor(em, 'carol'), 'rest');
        assert.equal(await whereFor(em), 'rest');
      }

      // funcie status shows each session's route ("-" for none).
      const { stdout } = await execFileP(funcieBin, ['status', ...target.backendArgs], { env: { ...process.env, ...target.env } });
      assert.match(stdout.split('\n')[0], /ROUTE$/);
      const line = (session) => stdout.split('\n').find((l) => l.startsWith(session)) ?? '';
      assert.match(line(ada.session), / context:\/custom\/dev=ada$/, stdout);
      assert.match(line(bob.session), / context:\/custom\/dev=bob$/, stdout);
      assert.match(line(rest.session), / -$/, stdout);

      // Ada leaves: hers now go to the session without a route (on SQS once the function has
      // read the tags again; an offer to her before that runs in the cloud).
      await ada.stop('SIGINT');
      await eventually(async () => (await whereFor(em, 'ada')) === 'rest', { what: "ada's invocations going to the session without a route" });
      assert.equal(await whereFor(em, 'bob'), 'bob');
    });

    test('a route that does not parse is refused at start with its column', async () => {
      const target = await server.target();
      const run = (args) => execFileP(funcieBin, args, { env: { ...process.env, ...target.env } })
        .then(() => ({ code: 0, stderr: '' }), (e) => ({ code: e.code, stderr: e.stderr }));
      const r = await run(['connect', ...target.backendArgs, '--route', '/dev=ada', '--route', '/dev=bob size>3', '--', 'true']);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--route '\/dev=bob size>3': column 10: /);
    });
  });
}

test('on SQS, routes longer than the request queue\'s tags can carry are refused at start, saying how long', async () => {
  const sqs = await startSqs({ kind: 'faux' });
  try {
    const target = await sqsTunnelTarget(sqs);
    const long = `/requestContext/http/path^=/orders/${'x'.repeat(200)}`;
    const routes = Array.from({ length: 6 }, (_, i) => ['--route', `${long}${i}`]).flat();
    const r = await execFileP(funcieBin, ['connect', ...target.backendArgs, ...routes, '--', echoBin, 'x'], { env: { ...process.env, ...target.env } })
      .then(() => ({ code: 0, stderr: '' }), (e) => ({ code: e.code, stderr: e.stderr }));
    assert.notEqual(r.code, 0, 'funcie connect started with routes the tags cannot carry');
    assert.match(r.stderr, /the routes take \d+ characters in the request queue's tags .* may take 1024/, r.stderr);
  } finally {
    await sqs.stop();
  }
});
