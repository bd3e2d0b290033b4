// `funcie secret` (docs/security.md): makes a shared secret, and shows the key ids of the one
// a side holds without ever printing it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { funcieBin } from './lib/harness.mjs';

let dir;
before(() => { dir = mkdtempSync(path.join(os.tmpdir(), 'funcie-secret-')); });
after(() => { rmSync(dir, { recursive: true, force: true }); });

/** Runs funcie with `args`, without any FUNCIE_SECRET* of the caller's environment. */
function funcie(args, env = {}) {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('FUNCIE_SECRET')));
  return spawnSync(funcieBin, args, { env: { ...clean, ...env }, encoding: 'utf8', timeout: 10_000 });
}

test('funcie secret prints 32 random bytes in base64 and nothing else', () => {
  const one = funcie(['secret']);
  assert.equal(one.status, 0, one.stderr);
  assert.match(one.stdout, /^[A-Za-z0-9+/]{43}=\n$/);
  assert.equal(one.stdout.length, 45, 'forty-four characters and a newline');
  assert.equal(Buffer.from(one.stdout.trim(), 'base64').length, 32);
  assert.equal(one.stderr, '');
  const two = funcie(['secret']);
  assert.equal(two.status, 0, two.stderr);
  assert.notEqual(two.stdout, one.stdout, 'two runs make two secrets');
});

test('--key-id shows 16 hex digits per key, never the secret', () => {
  const secret = funcie(['secret']).stdout.trim();
  const file = path.join(dir, 'one.secret');
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  const fromFile = funcie(['secret', '--key-id', '--secret-file', file]);
  assert.equal(fromFile.status, 0, fromFile.stderr);
  assert.match(fromFile.stdout, /^[0-9a-f]{16}\n$/);
  assert.ok(!fromFile.stdout.includes(secret) && !fromFile.stderr.includes(secret));

  // The same secret from the environment has the same key id.
  const fromEnv = funcie(['secret', '--key-id'], { FUNCIE_SECRET: secret });
  assert.equal(fromEnv.status, 0, fromEnv.stderr);
  assert.equal(fromEnv.stdout, fromFile.stdout);

  // During a rotation: the current key's id, then the previous one's.
  const previous = funcie(['secret']).stdout.trim();
  const rotating = path.join(dir, 'two.secret');
  writeFileSync(rotating, `${previous}\r\n${secret}\r\n`, { mode: 0o600 });
  const both = funcie(['secret', '--key-id', '--secret-file', rotating]);
  assert.equal(both.status, 0, both.stderr);
  const ids = both.stdout.trim().split('\n');
  assert.equal(ids.length, 2, both.stdout);
  assert.equal(`${ids[1]}\n`, fromFile.stdout);
  assert.notEqual(ids[0], ids[1]);
  const envBoth = funcie(['secret', '--key-id'], { FUNCIE_SECRET: previous, FUNCIE_SECRET_PREVIOUS: secret });
  assert.equal(envBoth.stdout, both.stdout);
});

test('a secret that cannot be used fails with exit 1 and a message without it', () => {
  const short = 'SHORT-secret-15';
  const file = path.join(dir, 'short.secret');
  writeFileSync(file, `${short}\n`);
  for (const res of [
    funcie(['secret', '--key-id', '--secret-file', file]),
    funcie(['secret', '--key-id'], { FUNCIE_SECRET: short }),
  ]) {
    assert.equal(res.status, 1, res.stderr);
    assert.equal(res.stdout, '');
    assert.match(res.stderr, /^funcie secret: .*funcie secret/);
    assert.ok(!res.stderr.includes(short), res.stderr);
  }
  const missing = funcie(['secret', '--key-id', '--secret-file', path.join(dir, 'nope.secret')]);
  assert.equal(missing.status, 1, missing.stderr);
  assert.match(missing.stderr, /nope\.secret/);
});

test('usage errors exit 2', () => {
  const none = funcie(['secret', '--key-id']);
  assert.equal(none.status, 2, none.stderr);
  assert.match(none.stderr, /--secret-file/);
  const fileAlone = funcie(['secret', '--secret-file', path.join(dir, 'one.secret')]);
  assert.equal(fileAlone.status, 2, fileAlone.stderr);
  assert.equal(fileAlone.stdout, '');
});
