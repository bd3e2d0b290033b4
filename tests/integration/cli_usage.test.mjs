// What a new user sees when a command line is wrong (brief rule 9, docs/errors.md item 6):
// one clear line that names what was wrong and what to do, and exit status 2, before
// anything starts. Runs the real binary; nothing else is needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { funcieBin } from './lib/harness.mjs';

function funcie(...args) {
  const r = spawnSync(funcieBin, args, { encoding: 'utf8', timeout: 20000, stdio: ['ignore', 'pipe', 'pipe'] });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('a mistyped command is named, with the nearest command and the list, exit 2', () => {
  const r = funcie('conect', '--app', 'orders');
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /unknown command 'conect' \(did you mean 'connect'\?\); the commands are /);
  assert.match(r.stderr, /emulate, wrap, proxy, connect, status/);

  const far = funcie('--log-level', 'debug', 'deploy');
  assert.equal(far.code, 2, far.stderr);
  assert.match(far.stderr, /unknown command 'deploy'; the commands are /);
  assert.doesNotMatch(far.stderr, /did you mean/);

  // A real command still parses as before (here: its own missing flag).
  const known = funcie('--log-level', 'debug', 'emulate');
  assert.equal(known.code, 2);
  assert.match(known.stderr, /--function is required/);
});

test('emulate --host that is not an IP address is a usage error naming the flag, exit 2', () => {
  const r = funcie('emulate', '--function', 'fn', '--port', '0', '--host', 'localhost', '--', 'true');
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--host must be an IP address, such as 127\.0\.0\.1 .* \(got 'localhost'\)/);
  assert.doesNotMatch(r.stderr, /another process using the port/);
});

test('emulate --host with an address this machine does not have says so, exit 2', () => {
  // 192.0.2.1 is TEST-NET-1 (RFC 5737): never an address of this machine.
  const r = funcie('emulate', '--function', 'fn', '--port', '0', '--host', '192.0.2.1', '--', 'true');
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /cannot listen on 192\.0\.2\.1:\d+: .*no interface of this machine has the address 192\.0\.2\.1; give --host 127\.0\.0\.1/);
  assert.doesNotMatch(r.stderr, /another process using the port/);
});

test('connect with a runtime command that is not there says so at start, not at the first invocation', async () => {
  const { spawn } = await import('node:child_process');
  const { once } = await import('node:events');
  // No broker is needed to see it: port 1 refuses, and connect keeps trying meanwhile.
  const child = spawn(funcieBin, ['connect', '--backend', 'redis://127.0.0.1:1', '--app', 'typo', '--no-history',
    '--', 'npx-aws-lambda-ric-typo', 'index.handler'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  const exited = once(child, 'exit');
  const deadline = Date.now() + 15000;
  while (!/not found on PATH/.test(output) && Date.now() < deadline && child.exitCode === null) {
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill('SIGINT');
  await exited;
  assert.match(output, /the runtime command 'npx-aws-lambda-ric-typo' is not found on PATH: each invocation fails \(Runtime\.InvalidEntrypoint\)/);

  // A command that is there gets no such line.
  const ok = spawn(funcieBin, ['connect', '--backend', 'redis://127.0.0.1:1', '--app', 'fine', '--no-history',
    '--', 'true'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let okOutput = '';
  ok.stderr.on('data', (d) => { okOutput += d; });
  const okExited = once(ok, 'exit');
  const okDeadline = Date.now() + 15000;
  while (!/waiting for Redis/.test(okOutput) && ok.exitCode === null && Date.now() < okDeadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.match(okOutput, /waiting for Redis/, 'it started');
  ok.kill('SIGINT');
  await okExited;
  assert.doesNotMatch(okOutput, /runtime command/);
});

test('invoke with an event that is not JSON refuses it before the handler runs, as Lambda does, exit 2', async () => {
  const { mkdtempSync, writeFileSync, existsSync, rmSync } = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'funcie-usage-'));
  try {
    writeFileSync(path.join(dir, 'bad.json'), '{"name": "Ada",');
    // The handler would leave a file behind if it were started.
    const r = spawnSync(funcieBin, ['invoke', '--no-history', '--event', 'bad.json', '--', 'sh', '-c', 'touch ran'],
      { cwd: dir, encoding: 'utf8', timeout: 20000 });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--event: 'bad\.json' is not one valid JSON value, and Lambda refuses such a payload before the function runs \(InvalidRequestContentException\): fix the JSON/);
    assert.equal(existsSync(path.join(dir, 'ran')), false, 'the handler was not started');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a flag given a value of the wrong type says what it wants and where to read more, exit 2', () => {
  const port = funcie('emulate', '--function', 'fn', '--port', 'abc', '--', 'true');
  assert.equal(port.code, 2, port.stderr);
  assert.match(port.stderr, /^--port: 'abc' is not a whole number, 0 or more\. Port of the Invoke API .* See 'funcie emulate --help'\.\n$/);
  const beat = funcie('connect', '--app', 'orders', '--heartbeat-ms', '1.5', '--', 'true');
  assert.equal(beat.code, 2, beat.stderr);
  assert.match(beat.stderr, /^--heartbeat-ms: '1\.5' is not a whole number\. .* See 'funcie connect --help'\.\n$/);
  assert.doesNotMatch(beat.stderr, /Could not convert/);
});
