// Routes end to end (docs/routing.md): funcie emulate -> funcie wrap -> redis-server -> two
// `funcie connect --route` sessions and one without a route. Each local copy of the echo
// function answers {"where": its label}; the cloud copy {"where":"cloud"}. The developer is
// named in the client context (what an SDK caller sets with ClientContext), since the echo
// function's hook wants an event of one key.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { echoBin, funcieBin } from './lib/harness.mjs';
import { eventually, startCloud, startConnect, startRedis } from './lib/tunnel.mjs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
let redis;
before(async () => { redis = await startRedis(); });
after(async () => { await redis?.close(); });

async function whereFor(em, dev) {
  const context = Buffer.from(JSON.stringify({ custom: dev === undefined ? {} : { dev } })).toString('base64');
  const r = await em.invoke({ where: true }, { headers: { 'X-Amz-Client-Context': context } });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.headers.get('x-amz-function-error'), null, r.body);
  return JSON.parse(r.body).where;
}

test('each developer gets their own invocations, a session without a route the rest, else the cloud', async (t) => {
  const app = `routes-${process.pid}`;
  const em = await startCloud({ url: redis.url, app, args: ['--timeout', '30'] });
  t.after(() => em.stop());
  const ada = await startConnect({ url: redis.url, app, args: ['--route', 'context:/custom/dev=ada'], command: [echoBin, 'ada'] });
  t.after(() => ada.stop('SIGKILL'));
  const bob = await startConnect({ url: redis.url, app, args: ['--route', 'context:/custom/dev=bob'], command: [echoBin, 'bob'] });
  t.after(() => bob.stop('SIGKILL'));

  for (let i = 0; i < 10; ++i) {
    assert.equal(await whereFor(em, 'ada'), 'ada');
    assert.equal(await whereFor(em, 'bob'), 'bob');
    // Nobody's route holds and nobody takes the rest: the function's own code.
    assert.equal(await whereFor(em, 'carol'), 'cloud');
    assert.equal(await whereFor(em), 'cloud');
  }

  const rest = await startConnect({ url: redis.url, app, command: [echoBin, 'rest'] });
  t.after(() => rest.stop('SIGKILL'));
  // Seen by the function within its presence view's bound (heartbeat/6).
  await eventually(async () => (await whereFor(em, 'carol')) === 'rest', { what: 'carol going to the session without a route' });
  for (let i = 0; i < 10; ++i) {
    assert.equal(await whereFor(em, 'ada'), 'ada');
    assert.equal(await whereFor(em, 'bob'), 'bob');
    assert.equal(await whereFor(em, 'carol'), 'rest');
    assert.equal(await whereFor(em), 'rest');
  }

  // funcie status shows each session's route ("-" for none).
  const { stdout } = await execFileP(funcieBin, ['status', '--backend', redis.url, '--app', app]);
  assert.match(stdout.split('\n')[0], /ROUTE$/);
  const line = (session) => stdout.split('\n').find((l) => l.startsWith(session)) ?? '';
  assert.match(line(ada.session), / context:\/custom\/dev=ada$/, stdout);
  assert.match(line(bob.session), / context:\/custom\/dev=bob$/, stdout);
  assert.match(line(rest.session), / -$/, stdout);

  // Ada leaves: hers now go to the session without a route.
  await ada.stop('SIGINT');
  assert.equal(await whereFor(em, 'ada'), 'rest');
});

test('a route that does not parse is refused at start with its column', async () => {
  const run = (args, cwd) => execFileP(funcieBin, args, { cwd }).then(() => ({ code: 0, stderr: '' }), (e) => ({ code: e.code, stderr: e.stderr }));
  const r = await run(['connect', '--backend', redis.url, '--app', 'a', '--route', '/dev=ada', '--route', '/dev=bob size>3', '--', 'true']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--route '\/dev=bob size>3': column 10: /);
});
