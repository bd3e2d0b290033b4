// A backend URL the broker refuses (a wrong password, a database number it does not have)
// is said at start of `funcie connect` (and by `funcie status`), with what to do, exit 2 and
// no password in it, instead of "waiting for Redis" without end (docs/local.md). Real
// binaries, a real redis-server with an ACL user and 4 databases.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { funcieBin } from './lib/harness.mjs';
import { startRedis } from './lib/tunnel.mjs';

const execFileP = promisify(execFile);
const password = 'right-pass-7d1c';
let redis;

before(async () => {
  redis = await startRedis({ user: 'ada', password, args: ['--databases', '4'] });
});
after(async () => {
  await redis?.close();
});

/** `funcie connect` against URL; a generous timeout: it must end on its own. */
function connect(url) {
  const args = ['connect', '--backend', url, '--app', `refused-${process.pid}`, '--', 'true'];
  return execFileP(funcieBin, args, { timeout: 30000 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr, signal: null }),
    (e) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr, signal: e.signal }));
}

test('a wrong password: connect says so at start and exits 2, without the password', async () => {
  const r = await connect(`redis://ada:wrong-pass-5e2a@127.0.0.1:${redis.port}`);
  assert.equal(r.signal, null, `connect did not end by itself:\n${r.stderr}`);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /refused the credentials for user ada/);
  assert.match(r.stderr, /check the user, password and database number in the backend URL/);
  assert.doesNotMatch(r.stderr, /waiting for/);
  assert.doesNotMatch(r.stderr, /wrong-pass-5e2a/);
});

test('a database number the server does not have: connect says so at start and exits 2', async () => {
  const r = await connect(`redis://ada:${password}@127.0.0.1:${redis.port}/99`);
  assert.equal(r.signal, null, `connect did not end by itself:\n${r.stderr}`);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /refused SELECT 99/);
  assert.match(r.stderr, /check the user, password and database number in the backend URL/);
  assert.doesNotMatch(r.stderr, /waiting for/);
  assert.doesNotMatch(r.stderr, new RegExp(password));
});

test('funcie status with a wrong password: the server\'s reason, what to check, exit 2 (the user can fix it)', async () => {
  const args = ['status', '--backend', `redis://ada:wrong-pass-5e2a@127.0.0.1:${redis.port}`, '--app', `refused-${process.pid}`];
  const r = await execFileP(funcieBin, args, { timeout: 30000 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }));
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /refused the credentials for user ada/);
  assert.match(r.stderr, /check the user, password and database number in the backend URL/);
  assert.doesNotMatch(r.stderr, /wrong-pass-5e2a/);
});
