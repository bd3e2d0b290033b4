// The heartbeat bound has one range on both sides (docs/local.md): the function's
// FUNCIE_HEARTBEAT_MS, funcie connect's --heartbeat-ms and funcie.toml's heartbeat_ms all
// take 300 to 60000 ms, and a value outside is refused at start, naming the range (exit 2).
// Real binaries, a real redis-server: a value taken would serve (and not end).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { funcieBin } from './lib/harness.mjs';
import { startRedis } from './lib/tunnel.mjs';

const execFileP = promisify(execFile);
const app = `heartbeat-${process.pid}`;
let redis;
let dir;

before(async () => {
  redis = await startRedis();
  dir = mkdtempSync(path.join(tmpdir(), 'funcie-heartbeat-'));
});
after(async () => {
  await redis?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** `funcie ARGS` in the project's directory; a generous timeout: a refusal ends at once. */
function run(args) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FUNCIE_')));
  return execFileP(funcieBin, args, { cwd: dir, env, timeout: 30000 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr, signal: null }),
    (e) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr, signal: e.signal }));
}

test('--heartbeat-ms above 60000 (which the function would refuse) is refused, naming the range', async () => {
  const r = await run(['connect', '--backend', redis.url, '--app', app, '--heartbeat-ms', '60001', '--', 'true']);
  assert.equal(r.signal, null, `connect took it and served:\n${r.stderr}`);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--heartbeat-ms must be between 300 and 60000/);
});

test('heartbeat_ms above 60000 in funcie.toml is refused, naming the range', async () => {
  writeFileSync(path.join(dir, 'funcie.toml'), [
    `backend = "${redis.url}"`,
    'heartbeat_ms = 120000',
    '[functions.f]',
    `app = "${app}"`,
    'command = ["true"]',
    '',
  ].join('\n'));
  const r = await run(['connect']);
  assert.equal(r.signal, null, `connect took it and served:\n${r.stderr}`);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /'heartbeat_ms' must be an integer from 300 to 60000 \(got 120000\)/);
});
