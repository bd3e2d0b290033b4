// funcie doctor (docs/deploy.md, "Check before you invoke") against a real redis-server and
// a real SQS server from npm: one line per check, the fix under each problem, exit 0 when
// nothing FAILED and 1 otherwise, and never a password or a secret in what it prints.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { funcieBin } from './lib/harness.mjs';
import { freePort, startConnect, startRedis } from './lib/tunnel.mjs';
import { startSqs } from './lib/sqs.mjs';

const execFileP = promisify(execFile);

const password = 'doctor-pa55word-never-shown';
const goodSecret = 'Zm9yIHRoZSBkb2N0b3IgdGVzdCBvbmx5LCAzMiBieXRlcw==';  // 32+ characters
let dir;

/** Runs `funcie doctor ARGS` in an empty directory (no funcie.toml); resolves { code, stdout, stderr, all }. */
async function doctor(args, { env = {} } = {}) {
  const childEnv = { ...process.env, ...env };
  for (const name of ['FUNCIE_BACKEND', 'FUNCIE_APP', 'FUNCIE_SECRET', 'FUNCIE_SECRET_PREVIOUS']) {
    if (!(name in env)) delete childEnv[name];
  }
  for (const [name, value] of Object.entries(env)) if (value === undefined) delete childEnv[name];
  try {
    const { stdout, stderr } = await execFileP(funcieBin, ['doctor', ...args], { cwd: dir, env: childEnv, timeout: 60000 });
    return { code: 0, stdout, stderr, all: stdout + stderr };
  } catch (e) {
    if (typeof e.code !== 'number') throw e;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr, all: e.stdout + e.stderr };
  }
}

/** The line of check `what` ("broker", "secret"...) and the fix line under it, if any. */
/// The output with each finding's wrapped detail on one line.
const flat = (out) => out.replace(/\n\s+(?!fix: )/g, ' ');

function lineOf(out, what) {
  const lines = out.split('\n');
  const i = lines.findIndex((l) => new RegExp(`^(ok|info|warning|FAILED)\\s+${what}:`).test(l));
  assert.ok(i >= 0, `no line for ${what} in:\n${out}`);
  // Continuation lines of a long detail are indented; the fix line follows them.
  let j = i + 1;
  while (j < lines.length && /^\s/.test(lines[j]) && !/^\s+fix: /.test(lines[j])) j += 1;
  const fix = lines[j]?.match(/^\s+fix: (.*)$/);
  return { level: lines[i].split(/\s+/)[0], text: lines[i], fix: fix ? fix[1] : null };
}

before(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'funcie-doctor-'));
  writeFileSync(path.join(dir, 'good.secret'), `${goodSecret}\n`, { mode: 0o600 });
  writeFileSync(path.join(dir, 'short.secret'), 'tooShort123\n', { mode: 0o600 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('funcie doctor with Redis', () => {
  let redis;
  before(async () => { redis = await startRedis({ password }); });
  after(async () => { await redis?.close(); });

  test('all ok: exit 0, every line ok, the key id shown, the password never', async () => {
    const r = await doctor(['--backend', redis.url, '--app', 'doctor-ok', '--secret-file', path.join(dir, 'good.secret')]);
    assert.equal(r.code, 0, r.all);
    assert.equal(lineOf(r.stdout, 'backend URL').level, 'ok');
    assert.equal(lineOf(r.stdout, 'app').level, 'ok');
    assert.match(lineOf(r.stdout, 'secret').text, /^ok\s+secret: key [0-9a-f]{16} /);
    assert.match(lineOf(r.stdout, 'broker').text, /^ok\s+broker: redis:\/\/:\*\*\*\*@127\.0\.0\.1:\d+ answered PING \(Redis \d+\.\d+/);
    assert.match(lineOf(r.stdout, 'consumers').text, /^info\s+consumers: nobody is connected to app doctor-ok/);
    assert.doesNotMatch(r.stdout, /^(warning|FAILED)/m);
    assert.match(r.stdout, /funcie doctor: all checks passed\n$/);
    assert.ok(!r.all.includes(password), r.all);
    assert.ok(!r.all.includes(goodSecret), r.all);
  });

  test('shows who is connected', async () => {
    const connect = await startConnect({ url: redis.url, app: 'doctor-seen', args: ['--secret-file', path.join(dir, 'good.secret')] });
    try {
      const r = await doctor(['--backend', redis.url, '--app', 'doctor-seen', '--secret-file', path.join(dir, 'good.secret')]);
      assert.equal(r.code, 0, r.all);
      assert.match(lineOf(r.stdout, 'consumers').text, new RegExp(`^info\\s+consumers: 1 connected to app doctor-seen: ${connect.session} on \\S+ \\(pid ${connect.pid}, 0 in flight\\)`));
      assert.ok(!r.all.includes(password));
    } finally {
      await connect.stop();
    }
  });

  test('wrong port: FAILED with a fix, exit 1, the password never shown', async () => {
    const port = await freePort();
    const url = `redis://:${password}@127.0.0.1:${port}`;
    const r = await doctor(['--backend', url, '--app', 'doctor-port', '--timeout-ms', '1000', '--secret-file', path.join(dir, 'good.secret')]);
    assert.equal(r.code, 1, r.all);
    const broker = lineOf(r.stdout, 'broker');
    assert.equal(broker.level, 'FAILED');
    assert.match(broker.text, new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.match(broker.fix, /host and port/);
    assert.match(lineOf(r.stdout, 'backend URL').text, /^ok\s+backend URL: redis:\/\/:\*\*\*\*@/);
    assert.match(r.stdout, /funcie doctor: 1 FAILED/);
    assert.ok(!r.all.includes(password), r.all);
  });

  test('wrong password: FAILED saying to fix the credentials, neither password shown', async () => {
    const wrong = 'not-the-right-one-42';
    const url = `redis://:${wrong}@127.0.0.1:${redis.port}`;
    const r = await doctor(['--backend', url, '--app', 'doctor-auth']);
    assert.equal(r.code, 1, r.all);
    const broker = lineOf(r.stdout, 'broker');
    assert.equal(broker.level, 'FAILED');
    assert.match(broker.fix, /credentials in the URL/);
    assert.ok(!r.all.includes(wrong) && !r.all.includes(password), r.all);
    // No password at all on a server that wants one.
    const none = await doctor(['--backend', `redis://127.0.0.1:${redis.port}`, '--app', 'doctor-auth']);
    assert.equal(none.code, 1, none.all);
    assert.match(lineOf(none.stdout, 'broker').fix, /wants a password/);
  });

  test('no secret is a warning, not a failure', async () => {
    const r = await doctor(['--backend', redis.url, '--app', 'doctor-nosecret']);
    assert.equal(r.code, 0, r.all);
    const secret = lineOf(r.stdout, 'secret');
    assert.equal(secret.level, 'warning');
    assert.match(secret.fix, /funcie secret/);
    assert.match(r.stdout, /no check FAILED \(1 warning\)/);
  });

  test('too-short secret: FAILED with the fix, the secret never shown', async () => {
    const fromFile = await doctor(['--backend', redis.url, '--app', 'doctor-short', '--secret-file', path.join(dir, 'short.secret')]);
    assert.equal(fromFile.code, 1, fromFile.all);
    const line = lineOf(fromFile.stdout, 'secret');
    assert.equal(line.level, 'FAILED');
    assert.match(line.fix, /funcie secret > FILE/);
    assert.ok(!fromFile.all.includes('tooShort123'), fromFile.all);

    const fromEnv = await doctor(['--backend', redis.url, '--app', 'doctor-short'], { env: { FUNCIE_SECRET: 'tooShortToo456' } });
    assert.equal(fromEnv.code, 1, fromEnv.all);
    assert.equal(lineOf(fromEnv.stdout, 'secret').level, 'FAILED');
    assert.match(lineOf(fromEnv.stdout, 'secret').text, /FUNCIE_SECRET/);
    assert.ok(!fromEnv.all.includes('tooShortToo456'), fromEnv.all);
  });

  test('bad URL and app: FAILED each, nothing reached', async () => {
    const r = await doctor(['--backend', 'redis://:secretpw@127.0.0.1:notaport', '--app', 'bad app']);
    assert.equal(r.code, 1, r.all);
    assert.equal(lineOf(r.stdout, 'backend URL').level, 'FAILED');
    assert.equal(lineOf(r.stdout, 'app').level, 'FAILED');
    assert.doesNotMatch(r.stdout, /broker:/);
    assert.ok(!r.all.includes('secretpw'), r.all);
  });

  test('--function-env: a function environment file, checked with the forwarder\'s reader', async () => {
    const envFile = path.join(dir, 'function.env.json');
    writeFileSync(envFile, JSON.stringify({
      FUNCIE_BACKEND: redis.url,
      FUNCIE_APP: 'doctor-fn',
      FUNCIE_SECRET: goodSecret,
      FUNCIE_HEARTBEAT_MSS: '3000',
      AWS_LAMBDA_EXEC_WRAPPER: '/opt/funcie-wrapper',
    }));
    const r = await doctor(['--function-env', '--env-file', envFile, '--secret-file', path.join(dir, 'good.secret')]);
    assert.equal(r.code, 0, r.all);
    assert.equal(lineOf(r.stdout, 'variable FUNCIE_HEARTBEAT_MSS').level, 'warning');
    assert.equal(lineOf(r.stdout, 'function environment').level, 'ok');
    assert.equal(lineOf(r.stdout, 'secret match').level, 'ok');
    assert.equal(lineOf(r.stdout, 'broker').level, 'ok');
    assert.ok(!r.all.includes(password) && !r.all.includes(goodSecret), r.all);

    // A value the forwarder refuses: FAILED naming the variable.
    writeFileSync(envFile, 'FUNCIE_BACKEND=redis://127.0.0.1:1\nFUNCIE_APP=doctor-fn\nFUNCIE_DEADLINE_MARGIN_MS=soon\n');
    const bad = await doctor(['--function-env', '--env-file', envFile]);
    assert.equal(bad.code, 1, bad.all);
    assert.match(lineOf(bad.stdout, 'function environment').text, /^FAILED\s+function environment: .*FUNCIE_DEADLINE_MARGIN_MS/);
  });

  test('usage errors exit 2', async () => {
    assert.equal((await doctor(['--timeout-ms', '5', '--backend', redis.url, '--app', 'x'])).code, 2);
    assert.equal((await doctor(['--function-env', '--backend', redis.url])).code, 2);
    assert.equal((await doctor(['--function-env', '--env-file', path.join(dir, 'missing.env')])).code, 2);
  });
});

describe('funcie doctor with SQS', () => {
  let sqs;
  before(async () => { sqs = await startSqs({ kind: 'faux', queues: [{ name: 'doctor-requests' }] }); });
  after(async () => { await sqs?.stop(); });

  const env = () => ({
    AWS_ACCESS_KEY_ID: 'AKIAFUNCIEDOCTOR0001',
    AWS_SECRET_ACCESS_KEY: 'doctor-aws-secret-never-shown',
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL_SQS: sqs.endpoint,
    AWS_EC2_METADATA_DISABLED: 'true',
  });

  test('one queue missing: FAILED naming the queue, the other ok, keys never shown', async () => {
    const request = sqs.urls['doctor-requests'];
    const response = request.replace(/doctor-requests$/, 'doctor-responses-missing');
    const r = await doctor(['--backend', 'sqs://', '--app', 'doctor-sqs', '--request-queue', request,
      '--response-queue', response, '--secret-file', path.join(dir, 'good.secret')], { env: env() });
    assert.equal(r.code, 1, r.all);
    assert.equal(lineOf(r.stdout, 'SQS region').level, 'ok');
    assert.match(lineOf(r.stdout, 'AWS credentials').text, /^ok\s+AWS credentials: from environment/);
    assert.match(lineOf(r.stdout, 'request queue').text, /^ok\s+request queue: .*doctor-requests exists/);
    const missing = lineOf(r.stdout, 'response queue');
    assert.equal(missing.level, 'FAILED');
    assert.match(missing.text, /doctor-responses-missing/);
    assert.match(missing.fix, /create the response queue/);
    assert.ok(!r.all.includes('doctor-aws-secret-never-shown') && !r.all.includes('AKIAFUNCIEDOCTOR0001'), r.all);
  });

  test('both queues there: exit 0', async () => {
    const [response] = await sqs.createQueues([{ name: 'doctor-responses' }]);
    const r = await doctor(['--backend', 'sqs://', '--app', 'doctor-sqs', '--request-queue', sqs.urls['doctor-requests'],
      '--response-queue', response, '--secret-file', path.join(dir, 'good.secret')], { env: env() });
    assert.equal(r.code, 0, r.all);
    assert.equal(lineOf(r.stdout, 'response queue').level, 'ok');
    assert.match(lineOf(r.stdout, 'consumers').text, /^info\s+consumers: nobody is connected/);
    // The settings in effect, and fauxqs answers a batched receive at once.
    assert.equal(lineOf(r.stdout, 'SQS settings').level, 'ok');
    assert.match(flat(r.stdout), /SQS settings: claim window 2000 ms.*receive batch 10/);
    assert.match(flat(r.stdout), /ok\s+batched receives: a receive of up to 10 returned in \d+ ms/);
  });

  test('SQS settings by flag, then variable; a bad one is one line, exit 2', async () => {
    const response = sqs.urls['doctor-requests'].replace(/requests$/, 'responses');
    const args = ['--backend', 'sqs://', '--app', 'doctor-sqs', '--request-queue', sqs.urls['doctor-requests'],
      '--response-queue', response, '--secret-file', path.join(dir, 'good.secret')];
    let r = await doctor([...args, '--sqs-claim-ms', '700'], { env: { ...env(), FUNCIE_SQS_CLAIM_MS: '900', FUNCIE_SQS_ABSENT_MS: '0' } });
    assert.match(flat(r.stdout), /SQS settings: claim window 700 ms, absent after 0 ms/, r.all);
    r = await doctor(args, { env: { ...env(), FUNCIE_SQS_RECEIVE_BATCH: 'lots' } });
    assert.equal(r.code, 2, r.all);
    assert.match(flat(r.stderr), /FUNCIE_SQS_RECEIVE_BATCH must be a whole number of messages from 1 to 10, not 'lots'/);
  });

  test('no credentials: FAILED with where to get them', async () => {
    const noKeys = { ...env(), AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, AWS_SESSION_TOKEN: undefined,
      AWS_PROFILE: undefined, AWS_CONTAINER_CREDENTIALS_FULL_URI: undefined, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: undefined,
      AWS_SHARED_CREDENTIALS_FILE: path.join(dir, 'none'), AWS_CONFIG_FILE: path.join(dir, 'none') };
    const r = await doctor(['--backend', 'sqs://', '--app', 'doctor-sqs', '--request-queue', sqs.urls['doctor-requests'],
      '--response-queue', sqs.urls['doctor-requests'].replace(/requests$/, 'x')], { env: noKeys });
    assert.equal(r.code, 1, r.all);
    const creds = lineOf(r.stdout, 'AWS credentials');
    assert.equal(creds.level, 'FAILED');
    assert.match(creds.fix, /AWS_PROFILE|AWS_ACCESS_KEY_ID/);
  });
});

describe('funcie doctor with an SQS server that holds batched receives', () => {
  let sqs;
  before(async () => { sqs = await startSqs({ kind: 'local', queues: [{ name: 'held-requests' }, { name: 'held-responses' }] }); });
  after(async () => { await sqs?.stop(); });

  test('the probe warns and says what to set; with a batch of 1 there is no probe', async () => {
    const env = {
      AWS_ACCESS_KEY_ID: 'AKIAFUNCIEDOCTOR0001', AWS_SECRET_ACCESS_KEY: 'doctor-aws-secret-never-shown',
      AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_SQS: sqs.endpoint, AWS_EC2_METADATA_DISABLED: 'true',
    };
    const args = ['--backend', 'sqs://', '--app', 'doctor-held', '--request-queue', sqs.urls['held-requests'],
      '--response-queue', sqs.urls['held-responses']];
    let r = await doctor(args, { env });
    const held = lineOf(r.stdout, 'batched receives');
    assert.equal(held.level, 'warning', r.all);
    assert.match(held.fix, /FUNCIE_SQS_RECEIVE_BATCH=1/);
    r = await doctor([...args, '--sqs-receive-batch', '1'], { env });
    assert.match(flat(r.stdout), /SQS settings: [^\n]*receive batch 1,/, r.all);
    assert.ok(!r.stdout.includes('batched receives'), r.all);
  });
});
