// The target flags every command shares (docs/targets.md): one precedence, the flag, then
// funcie.toml, then FUNCIE_*. Real binaries, a real redis-server, a real project file.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { echoBin, funcieBin } from './lib/harness.mjs';
import { eventually, freePort, startConnect, startRedis } from './lib/tunnel.mjs';

const execFileP = promisify(execFile);
let redis;
let dir;
const orders = `targets-${process.pid}-orders`;
const billing = `targets-${process.pid}-billing`;

before(async () => {
  redis = await startRedis();
  dir = mkdtempSync(path.join(tmpdir(), 'funcie-targets-'));
  writeFileSync(path.join(dir, 'funcie.toml'), [
    `backend = "${redis.url}"`,
    '[functions.orders]',
    `app = "${orders}"`,
    `command = ["${echoBin}", "local"]`,
    '[functions.billing]',
    `app = "${billing}"`,
    `command = ["${echoBin}", "local"]`,
    '',
  ].join('\n'));
});
after(async () => {
  await redis?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The environment without the FUNCIE_* variables, plus `extra`. */
function envWith(extra = {}) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FUNCIE_')));
  return { ...env, ...extra };
}

/** `funcie ARGS` in the project's directory: { code, stdout, stderr }. */
function run(args, env = envWith()) {
  return execFileP(funcieBin, args, { cwd: dir, env, timeout: 30000 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }));
}

test('funcie status reads funcie.toml: each function\'s app on the file\'s broker, the flag first, FUNCIE_* last', async () => {
  const local = await startConnect({ project: true, cwd: dir, env: envWith(), waitServing: false });
  try {
    await local.waitFor(new RegExp(`serving app ${billing} `));
    await local.waitFor(new RegExp(`serving app ${orders} `));
    const nobody = `redis://127.0.0.1:${await freePort()}`;

    // No flag and no variable: the file gives the broker and the apps.
    let r = await eventually(async () => {
      const s = await run(['status', '--json']);
      return s.code === 0 && JSON.parse(s.stdout).length === 2 ? s : false;
    }, { what: 'status listing both functions\' consumers' });
    const listed = JSON.parse(r.stdout);
    assert.deepEqual(listed.map((c) => c.app).sort(), [billing, orders].sort());
    assert.ok(listed.every((c) => c.pid === local.pid), r.stdout);

    // The file wins over FUNCIE_BACKEND and FUNCIE_APP.
    r = await run(['status', '--only', 'billing'], envWith({ FUNCIE_BACKEND: nobody, FUNCIE_APP: 'other' }));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(String(local.pid)));
    assert.doesNotMatch(r.stdout, /no consumer/);

    // The flag wins over the file: a broker nobody listens on is an error (exit 1) naming it.
    r = await run(['status', '--backend', nobody]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /127\.0\.0\.1/);

    // --app is one app outside the project: FUNCIE_BACKEND gives its broker.
    r = await run(['status', '--app', orders], envWith({ FUNCIE_BACKEND: redis.url }));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(String(local.pid)));

    // An unknown function is the user's to fix, with the names there are.
    r = await run(['status', '--only', 'nope']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--only nope: .* has no such function \(it has orders, billing\)/);
  } finally {
    await local.stop('SIGKILL');
  }
});
