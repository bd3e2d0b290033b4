// Conformance: the AWS CLI (`aws lambda ...`, as a developer types it) against `funcie emulate`:
// invoke with --log-type Tail, get-function, get-function-configuration, list-functions, and
// AWS's error names. scripts/deps.sh installs Debian's awscli (v2); where `aws` is not installed
// these tests are skipped and say so (the same calls are checked through the JS SDK in
// emulate_streaming.test.mjs, which also covers InvokeWithResponseStream: CLI v1 has no
// invoke-with-response-stream).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot, ricBin, startEmulate } from './lib/harness.mjs';

const run = promisify(execFile);
const fixtures = path.join(repoRoot, 'tests/integration/fixtures/node');
const name = 'cli-fn';

let dir;
let em;
let version;
let env;
try {
  const { stdout, stderr } = await run('aws', ['--version'], { timeout: 60000 });
  version = (stdout + stderr).match(/aws-cli\/(\d+)\./)?.[1];
} catch { /* not installed */ }
const skip = version ? false : 'the AWS CLI (aws) is not installed';

before(async () => {
  if (skip) return;
  dir = await mkdtemp(path.join(os.tmpdir(), 'funcie-cli-'));
  // No profile, pager or retry of the developer's: only what this test sets.
  env = {
    ...process.env, AWS_CONFIG_FILE: path.join(dir, 'none'),
    AWS_SHARED_CREDENTIALS_FILE: path.join(dir, 'none'), AWS_ACCESS_KEY_ID: 'AKIDFUNCIETEST',
    AWS_SECRET_ACCESS_KEY: 'funcie-test-secret', AWS_DEFAULT_REGION: 'us-east-1',
    AWS_MAX_ATTEMPTS: '1', AWS_RETRY_MODE: 'standard', AWS_PAGER: '',
  };
  for (const k of Object.keys(env)) if (/^AWS_(PROFILE|SESSION_TOKEN|ENDPOINT_URL|REGION|CA_BUNDLE)/.test(k)) delete env[k];
  em = await startEmulate({
    functionName: name, cwd: fixtures,
    args: ['--handler', 'streaming.buffered', '--runtime', 'nodejs22.x', '--memory', '256', '--env', 'STAGE=dev'],
    command: [process.execPath, ricBin, 'streaming.buffered'],
  });
});

after(async () => {
  await em?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** `aws lambda ARGS --endpoint-url EMULATE`; resolves { code, stdout, stderr }. */
async function aws(...args) {
  try {
    const { stdout, stderr } = await run('aws', ['lambda', ...args, '--endpoint-url', em.url],
      { env, timeout: 60000, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    if (e.code === undefined || typeof e.code === 'string') throw e;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

// CLI v2 reads --payload as base64 unless told otherwise; v1 takes it as it is.
const rawPayload = () => (version === '1' ? [] : ['--cli-binary-format', 'raw-in-base64-out']);

test('aws lambda invoke --log-type Tail: the payload, and the log tail as Lambda frames it', { skip }, async () => {
  const out = path.join(dir, 'out.json');
  const r = await aws('invoke', '--function-name', name, '--log-type', 'Tail', '--payload', '{"k":"v"}', ...rawPayload(), out);
  assert.equal(r.code, 0, r.stderr);
  const answer = JSON.parse(r.stdout);
  assert.equal(answer.StatusCode, 200);
  assert.equal(answer.ExecutedVersion, '$LATEST');
  assert.equal(answer.FunctionError, undefined);
  assert.deepEqual(JSON.parse(await readFile(out, 'utf8')), { echoed: { k: 'v' } });
  const log = Buffer.from(answer.LogResult, 'base64').toString();
  assert.match(log, /^START RequestId: [0-9a-f-]+ Version: \$LATEST\n/);
  assert.match(log, /buffered handler saw \{"k":"v"\}/);
  assert.match(log, /REPORT RequestId: [0-9a-f-]+\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\tMemory Size: 256 MB/);
});

test('aws lambda get-function, get-function-configuration, list-functions: the configuration emulate runs', { skip }, async () => {
  const config = JSON.parse((await aws('get-function-configuration', '--function-name', name)).stdout);
  assert.equal(config.FunctionName, name);
  assert.equal(config.FunctionArn, `arn:aws:lambda:us-east-1:000000000000:function:${name}`);
  assert.equal(config.Runtime, 'nodejs22.x');
  assert.equal(config.Handler, 'streaming.buffered');
  assert.equal(config.MemorySize, 256);
  assert.equal(config.State, 'Active');
  assert.deepEqual(config.Environment.Variables, { STAGE: 'dev' });
  const fn = JSON.parse((await aws('get-function', '--function-name', name)).stdout);
  assert.deepEqual(fn.Configuration, config);
  const list = JSON.parse((await aws('list-functions')).stdout);
  assert.deepEqual(list.Functions, [config]);
});

test('aws lambda: AWS\'s error names reach the CLI (ResourceNotFoundException, RequestEntityTooLargeException)', { skip }, async () => {
  const missing = await aws('get-function', '--function-name', 'other');
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /ResourceNotFoundException/);
  const big = path.join(dir, 'big.json');
  await writeFile(big, JSON.stringify({ pad: 'x'.repeat(6 * 1024 * 1024) }));
  const tooBig = await aws('invoke', '--function-name', name, '--payload', `fileb://${big}`, path.join(dir, 'o.json'));
  assert.notEqual(tooBig.code, 0);
  assert.match(tooBig.stderr, /RequestEntityTooLargeException/);
});
