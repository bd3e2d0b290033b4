// The zips of `funcie package` (docs/packaging.md), proven without AWS: each is unpacked into
// an otherwise empty root (no /lib, /lib64, /usr, /etc, /bin: only /var/task, /opt and the
// mount points /proc, /dev, /tmp, as on Lambda) and run in a bubblewrap sandbox by
// `funcie emulate`; it forwards through a real redis-server to `funcie connect` outside:
//   funcie emulate -> bwrap (the zip, its own loader and libraries) -> redis -> funcie connect.
// The zips are built here, with `funcie package`, into a temporary directory.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, lstatSync, readlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { echoBin, funcieBin, startEmulate } from './lib/harness.mjs';
import { startConnect, startRedis, where } from './lib/tunnel.mjs';

const execFileP = promisify(execFile);
const startBin = process.env.FUNCIE_EXAMPLE_START ?? path.join(path.dirname(echoBin), 'funcie_example_start');

// What Lambda sets for provided.al2023: the bundled libraries must win over these.
const lambdaLibraryPath = '/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib';

function which(name) {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}
const bwrap = which('bwrap');
const unzip = which('unzip');

let work;
let redis;
let tlsRedis;
const zips = {};
let appNumber = 0;
const nextApp = () => `package-${process.pid}-${++appNumber}`;

async function funciePackage(args) {
  const { stdout } = await execFileP(funcieBin, ['package', ...args], { maxBuffer: 16 << 20 });
  return stdout;
}

before(async () => {
  assert.ok(bwrap, 'bubblewrap (bwrap) is needed: scripts/deps.sh installs it');
  assert.ok(unzip, 'unzip is needed: scripts/deps.sh installs it');
  work = mkdtempSync(path.join(os.tmpdir(), 'funcie-package-'));
  zips.start = path.join(work, 'start.zip');
  zips.echo = path.join(work, 'echo.zip');
  zips.layer = path.join(work, 'funcie-layer.zip');
  zips.proxy = path.join(work, 'funcie-proxy.zip');
  const outputs = await Promise.all([
    funciePackage([startBin, '-o', zips.start]),
    funciePackage([echoBin, '-o', zips.echo]),
    funciePackage(['--layer', '-o', zips.layer]),
    funciePackage(['--proxy', '-o', zips.proxy]),
  ]);
  for (const out of outputs) assert.match(out, /wrote \S+\.zip: \d+ files, .* unpacked, .* zipped/);
  redis = await startRedis();
  tlsRedis = await startRedis({ tls: true });
});

after(async () => {
  await redis?.close();
  await tlsRedis?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

/**
 * A fresh root: the zips unpacked at var/task and opt, empty mount points proc, dev, tmp,
 * and `files` ({"etc/hosts": text}) if any. Nothing else.
 */
function makeRoot(t, { task, opt, files = {} }) {
  const root = mkdtempSync(path.join(work, 'root-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  for (const dir of ['var/task', 'opt', 'proc', 'dev', 'tmp']) mkdirSync(path.join(root, dir), { recursive: true });
  if (task) spawnChecked(unzip, ['-q', task, '-d', path.join(root, 'var/task')]);
  if (opt) spawnChecked(unzip, ['-q', opt, '-d', path.join(root, 'opt')]);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    writeFileSync(path.join(root, name), text);
  }
  return root;
}

function spawnChecked(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** The root's top level: exactly what Lambda's code may rely on, and no system at all. */
function assertEmptyRoot(root, extra = []) {
  assert.deepEqual(readdirSync(root).sort(), ['dev', 'opt', 'proc', 'tmp', 'var', ...extra].sort());
  assert.deepEqual(readdirSync(path.join(root, 'var')), ['task']);
  for (const dir of ['lib', 'lib64', 'usr', 'bin', 'sbin']) {
    assert.throws(() => statSync(path.join(root, dir)), { code: 'ENOENT' }, `${dir} is in the root`);
  }
  if (!extra.includes('etc')) assert.throws(() => statSync(path.join(root, 'etc')), { code: 'ENOENT' });
}

/** The sandbox command: ROOT as a read-only /, Lambda's mounts, the environment passed on. */
function sandbox(root, entry, binds = []) {
  return [bwrap, '--ro-bind', root, '/', '--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', ...binds,
    '--chdir', '/var/task', '--setenv', 'LAMBDA_TASK_ROOT', '/var/task', '--die-with-parent', '--', ...entry];
}

/** `funcie emulate` running `command` with FUNCIE_BACKEND=url for `app`. */
async function cloud(t, { app, url, command, env = {} }) {
  const fnEnv = { FUNCIE_BACKEND: url, FUNCIE_APP: app, LD_LIBRARY_PATH: lambdaLibraryPath, ...env };
  const envArgs = Object.entries(fnEnv).flatMap(([k, v]) => ['--env', `${k}=${v}`]);
  const em = await startEmulate({ functionName: app, args: [...envArgs, '--timeout', '30'], command });
  t.after(() => em.stop());
  return em;
}

async function connect(t, options) {
  const local = await startConnect(options);
  t.after(() => local.stop('SIGKILL'));
  return local;
}

function functionError(res) {
  assert.equal(res.status, 200, res.body);
  assert.equal(res.headers.get('x-amz-function-error'), 'Unhandled', res.body);
  return JSON.parse(res.body);
}

test('the zips hold bootstrap, the loader and the libraries, with their modes', async (t) => {
  const root = makeRoot(t, { task: zips.proxy, opt: zips.layer });
  const task = path.join(root, 'var/task');
  assert.equal(statSync(path.join(task, 'bootstrap')).mode & 0o777, 0o755);
  const bundle = readdirSync(path.join(task, 'bundle'));
  // The proxy and the layer ship funcie-cloud (wrap and proxy only), not the developer's
  // funcie: no zip writer, no project-file parser; the C++ runtime, mbedTLS, fmt, spdlog,
  // Boost.JSON, hiredis and inih are in the binary, and it needs no libm. So the bundle is the
  // loader and libc, nothing else.
  assert.deepEqual(bundle.sort(), ['ld-linux-x86-64.so.2', 'libc.so.6']);
  // What a deployment uploads: 6.6 MB each before funcie-cloud linked its C++ libraries in,
  // 5.1 MB before it linked OpenSSL in, 4.44 MB with OpenSSL static, 2.98 MB on mbedTLS now
  // (docs/packaging.md, "Sizes"); the target was half of 6.7 MB.
  for (const zip of [zips.proxy, zips.layer]) {
    assert.ok(statSync(zip).size < 3.2e6, `${zip}: ${statSync(zip).size} bytes`);
  }
  assert.equal(statSync(path.join(task, 'bundle/ld-linux-x86-64.so.2')).mode & 0o777, 0o755);
  assert.equal(statSync(path.join(task, 'bundle/libc.so.6')).mode & 0o777, 0o644);
  const opt = path.join(root, 'opt');
  assert.equal(statSync(path.join(opt, 'funcie-wrapper')).mode & 0o777, 0o755);
  assert.ok(lstatSync(path.join(opt, 'funcie/bin/funcie')).isSymbolicLink());
  assert.equal(readlinkSync(path.join(opt, 'funcie/bin/funcie')), '../../funcie-wrapper');
  assert.ok(readdirSync(path.join(opt, 'funcie/bundle')).includes('libc.so.6'));
  assert.ok(!readdirSync(opt).includes('lib'), 'nothing in /opt/lib, which is in Lambda\'s LD_LIBRARY_PATH');
  assertEmptyRoot(root);

  // In the sandbox: the binaries start from their own loader, through the symlink too.
  const env = { ...process.env };
  delete env.AWS_LAMBDA_RUNTIME_API;
  const inSandbox = (entry) => {
    const cmd = sandbox(root, entry);
    return spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', env });
  };
  for (const entry of [['/opt/funcie/bin/funcie', '--version'], ['/var/task/bootstrap', '--version']]) {
    const r = inSandbox(entry);
    assert.equal(r.status, 0, `${entry.join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, /^funcie \d+\.\d+\.\d+/);
  }
  // Named funcie-wrapper, funcie is `funcie wrap -- ARGS` (which runs only inside Lambda).
  const r = inSandbox(['/opt/funcie-wrapper', '/var/task/bootstrap']);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /funcie wrap runs inside Lambda/);
  // The same zip twice gives the same bytes.
  const again = path.join(work, 'proxy-again.zip');
  await funciePackage(['--proxy', '-o', again]);
  assert.ok(spawnSync('cmp', [again, zips.proxy]).status === 0, 'deterministic zip');
});

test('a run_handler function\'s zip carries no TLS library (funcie::runtime links none)', () => {
  const r = spawnSync(unzip, ['-Z1', zips.echo], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^bootstrap$/m);
  assert.match(r.stdout, /^bundle\/libc\.so\.6$/m);
  assert.doesNotMatch(r.stdout, /libssl|libcrypto|libmbed/);
});

test('control: the unpackaged binary cannot start in such a root (no system loader there)', async (t) => {
  const root = makeRoot(t, {});
  copyFileSync(echoBin, path.join(root, 'var/task/bootstrap'));
  assertEmptyRoot(root);
  const cmd = sandbox(root, ['/var/task/bootstrap']);
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /No such file or directory/);
});

test('(a) function zip of a funcie::start C++ function: its own answer, then the local handler', async (t) => {
  const root = makeRoot(t, { task: zips.start });
  assertEmptyRoot(root);
  // funcie::start("hello", ...) names its app itself.
  const em = await cloud(t, { app: 'hello', url: redis.url, command: sandbox(root, ['/var/task/bootstrap']) });
  let res = await em.invoke({ where: true });
  assert.equal(res.headers.get('x-amz-function-error'), null, res.body);
  assert.deepEqual(JSON.parse(res.body), { message: 'hello from the cloud' });

  await connect(t, { url: redis.url, app: 'hello' });
  assert.equal(await where(em), 'local');
  res = await em.invoke({ where: true });
  assert.deepEqual(JSON.parse(res.body), { where: 'local' });
});

test('(b) layer: /opt/funcie-wrapper runs the function\'s runtime, as a managed runtime\'s exec wrapper', async (t) => {
  const root = makeRoot(t, { task: zips.echo, opt: zips.layer });
  assertEmptyRoot(root);
  const app = nextApp();
  // A managed runtime's bootstrap runs: $AWS_LAMBDA_EXEC_WRAPPER <runtime command> <args>.
  const em = await cloud(t, {
    app, url: redis.url, env: { AWS_LAMBDA_EXEC_WRAPPER: '/opt/funcie-wrapper' },
    command: sandbox(root, ['/opt/funcie-wrapper', '/var/task/bootstrap']),
  });
  assert.equal(await where(em), 'echo', 'nobody connected: the function itself answers');
  await connect(t, { url: redis.url, app });
  assert.equal(await where(em), 'local');
  const big = JSON.stringify({ big: 'x'.repeat(300000) });
  const res = await em.invoke(big);
  assert.ok(res.body === big, 'the local handler\'s answer, byte for byte');
});

test('(c) proxy zip: Funcie.NoConsumer with nobody connected, then the local handler', async (t) => {
  const root = makeRoot(t, { task: zips.proxy });
  assertEmptyRoot(root);
  const app = nextApp();
  const em = await cloud(t, { app, url: redis.url, command: sandbox(root, ['/var/task/bootstrap']) });
  const error = functionError(await em.invoke({ where: true }));
  assert.equal(error.errorType, 'Funcie.NoConsumer');
  assert.ok(error.errorMessage.includes(`127.0.0.1:${redis.port}`), error.errorMessage);
  await connect(t, { url: redis.url, app });
  assert.equal(await where(em), 'local');
  assert.equal(await where(em), 'local');
});

test('proxy zip over rediss://: mbedTLS starts in the empty root (CA from FUNCIE_CA_FILE)', async (t) => {
  const root = makeRoot(t, { task: zips.proxy });
  assertEmptyRoot(root);
  const app = nextApp();
  const em = await cloud(t, {
    app, url: tlsRedis.url, env: { FUNCIE_CA_FILE: '/tmp/ca.crt' },
    command: sandbox(root, ['/var/task/bootstrap'], ['--ro-bind', tlsRedis.caFile, '/tmp/ca.crt']),
  });
  assert.equal(functionError(await em.invoke({ where: true })).errorType, 'Funcie.NoConsumer');
  await connect(t, { url: tlsRedis.url, app, args: ['--ca-file', tlsRedis.caFile] });
  assert.equal(await where(em), 'local');
});

test('host names: resolved through /etc/hosts (Lambda has one); without /etc only IPs reach Redis', async (t) => {
  const name = 'redis.funcie.test';
  const url = `redis://${name}:${redis.port}`;
  const withHosts = makeRoot(t, { task: zips.proxy, files: { 'etc/hosts': `127.0.0.1 ${name}\n` } });
  assertEmptyRoot(withHosts, ['etc']);
  assert.deepEqual(readdirSync(path.join(withHosts, 'etc')), ['hosts'], 'no nsswitch.conf, no resolv.conf');
  const app = nextApp();
  await connect(t, { url: redis.url, app });
  const em = await cloud(t, { app, url, command: sandbox(withHosts, ['/var/task/bootstrap']) });
  assert.equal(await where(em), 'local', 'the host name resolved with libc\'s built-in files module');

  const bare = makeRoot(t, { task: zips.proxy });
  assertEmptyRoot(bare);
  const em2 = await cloud(t, { app, url, command: sandbox(bare, ['/var/task/bootstrap']) });
  const error = functionError(await em2.invoke({ where: true }));
  assert.equal(error.errorType, 'Funcie.NoConsumer', 'no /etc/hosts, no DNS server: the broker is unreachable');
});

test('funcie package says what is wrong', async () => {
  const run = (args) => spawnSync(funcieBin, ['package', ...args], { encoding: 'utf8' });
  let r = run([]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /name the function's binary/);
  r = run([path.join(work, 'nope'), '-o', path.join(work, 'x.zip')]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /nope: no such file/);
  const script = path.join(work, 'script.sh');
  writeFileSync(script, '#!/bin/sh\necho hi\n');
  r = run([script, '-o', path.join(work, 'x.zip')]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /not an ELF executable/);
  r = run([echoBin, '-o', path.join(work, 'no/such/dir/x.zip')]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /not a directory/);
});
