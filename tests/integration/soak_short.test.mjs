// The soak test (tests/soak/soak.mjs, docs/soak.md), short: 40 s and at least 1500 invocations
// of mixed sizes through funcie emulate -> funcie wrap -> redis-server -> funcie connect, the
// consumer killed (every third time Ctrl-C) every ~3 s and restarted, Redis restarted twice. Passes when
// soak.mjs finds every invocation answered once, by its own handler or with a documented
// fault, nothing run twice, and flat memory (not checked in a sanitizer build: ASan keeps
// freed memory in quarantine). The long run is `bash scripts/soak.sh`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { funcieBin, repoRoot } from './lib/harness.mjs';

const sanitized = readFileSync(funcieBin).includes('__asan_init');

test('soak, short: every invocation answered once and correctly while the consumer and Redis are restarted', { timeout: 280000 }, async () => {
  const args = [
    path.join(repoRoot, 'tests/soak/soak.mjs'),
    '--invocations', '1500',
    '--min-seconds', '40',
    '--concurrency', '12',
    '--kill-every', '3',
    '--sigint-every', '3',
    '--broker-restarts', '2',
    '--max-seconds', '200',
    '--progress-every', '0',
    '--memory-check', String(!sanitized),
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; if (process.env.FUNCIE_TEST_VERBOSE) process.stderr.write(d); });
  child.stderr.on('data', (d) => { out += d; });
  const [code, signal] = await once(child, 'exit');
  console.log(out);
  assert.equal(code, 0, `soak.mjs exited ${code ?? signal}:\n${out}`);
  assert.match(out, /soak: PASS/);
});
