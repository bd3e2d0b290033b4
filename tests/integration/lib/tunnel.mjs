// Shared by the tunnel tests: a real redis-server on a free loopback port, the cloud side
// (`funcie emulate` running `funcie wrap -- echo cloud`) and the local side (`funcie connect
// -- echo local`). Everything started here is stopped by pid in stop().
import { spawn, execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { echoBin, funcieBin, startEmulate } from './harness.mjs';

// How long a test waits for what should come (only a failure waits it out): a sanitized build
// on two busy cores (CI) can take several times the release build's time.
const defaultWaitMs = process.env.ASAN_OPTIONS ? 30000 : 10000;

const execFileP = promisify(execFile);

/** A free TCP port on 127.0.0.1 (bound, then released). */
export async function freePort() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/** Resolves once something accepts on 127.0.0.1:port, rejects after `ms`. */
async function waitForPort(port, ms = 5000) {
  for (const until = Date.now() + ms; ;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing accepted on port ${port} within ${ms} ms`);
    await sleep(20);
  }
}

/**
 * Starts redis-server on a free port (or `port`), with optional `password`, an ACL `user`
 * and `tls` (a CA and a certificate for 127.0.0.1 made with openssl). Returns
 * { port, url, dir, caFile, pid, cli(...args), stop(), restart() }.
 */
export async function startRedis({ port, password, user, tls = false, args = [] } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'funcie-redis-'));
  port = port ?? (await freePort());
  let caFile;
  const extra = [];
  if (tls) {
    caFile = path.join(dir, 'ca.crt');
    const sh = `set -e; cd ${dir}
      openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=funcie-test-ca -keyout ca.key -out ca.crt 2>/dev/null
      openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr 2>/dev/null
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ext.cnf
      openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out server.crt 2>/dev/null`;
    await execFileP('bash', ['-c', sh]);
    extra.push('--port', '0', '--tls-port', String(port), '--tls-cert-file', path.join(dir, 'server.crt'),
      '--tls-key-file', path.join(dir, 'server.key'), '--tls-ca-cert-file', caFile, '--tls-auth-clients', 'no');
  } else {
    extra.push('--port', String(port));
  }
  if (password && !user) extra.push('--requirepass', password);
  if (user) {
    const acl = path.join(dir, 'users.acl');
    writeFileSync(acl, `user default off\nuser ${user} on >${password} ~* &* +@all\n`);
    extra.push('--aclfile', acl);
  }
  const argv = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extra, ...args];
  let child;
  let log = '';
  const start = async () => {
    child = spawn('redis-server', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d) => { log += d; });
    child.stderr.on('data', (d) => { log += d; });
    await waitForPort(port);
  };
  await start();
  const scheme = tls ? 'rediss' : 'redis';
  const auth = user ? `${user}:${encodeURIComponent(password)}@` : password ? `:${encodeURIComponent(password)}@` : '';
  const redis = {
    port,
    dir,
    caFile,
    url: `${scheme}://${auth}127.0.0.1:${port}`,
    get pid() { return child.pid; },
    log: () => log,
    /** redis-cli against this server; resolves its stdout. */
    async cli(...args) {
      const conn = ['-h', '127.0.0.1', '-p', String(port)];
      if (tls) conn.push('--tls', '--cacert', caFile);
      if (user) conn.push('--user', user);
      if (password) conn.push('--pass', password, '--no-auth-warning');
      const { stdout } = await execFileP('redis-cli', [...conn, ...args], { maxBuffer: 64 << 20 });
      return stdout;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
    async restart() {
      await redis.stop();
      await start();
    },
    async close() {
      await redis.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return redis;
}

/** Collects a child's output and lets a test wait for a line. */
function watch(child) {
  const out = { stdout: '', stderr: '', all: '' };  // all: both, in arrival order
  const waiters = [];
  const check = () => {
    for (let i = waiters.length - 1; i >= 0; --i) {
      const w = waiters[i];
      const m = out.all.slice(w.from).match(w.re);
      if (m) { waiters.splice(i, 1); clearTimeout(w.timer); w.resolve(m); }
    }
  };
  for (const stream of ['stdout', 'stderr']) {
    child[stream].on('data', (d) => {
      out[stream] += d;
      out.all += d;
      if (process.env.FUNCIE_TEST_VERBOSE) process.stderr.write(d);
      check();
    });
  }
  child.on('exit', () => {
    for (const w of waiters.splice(0)) { clearTimeout(w.timer); w.reject(new Error(`exited before ${w.re}: ${out.stderr}`)); }
  });
  return {
    out,
    /** Resolves the match of `re` in output written after `from` (default: all of it). */
    waitFor(re, { ms = defaultWaitMs, from = 0 } = {}) {
      return new Promise((resolve, reject) => {
        const w = { re, from, resolve, reject };
        w.timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`no ${re} within ${ms} ms; output:\n${out.stdout}${out.stderr}`));
        }, ms);
        waiters.push(w);
        check();
      });
    },
    length: () => out.all.length,
  };
}

/**
 * Starts `funcie connect --backend URL --app APP ARGS -- COMMAND` (default: the echo
 * function labelled "local"), or `funcie connect ARGS` in `cwd` with `project`, and
 * resolves once it serves (the first app, for a project). Returns
 * { child, pid, session, out, waitFor(re), stop(signal) }.
 */
export async function startConnect({ url, app, args = [], command = [echoBin, 'local'], env = {}, waitServing = true, cwd, project = false }) {
  // project: `funcie connect ARGS` alone, reading funcie.toml from cwd.
  const argv = project ? ['connect', ...args] : ['connect', '--backend', url, '--app', app, ...args, '--', ...command];
  const child = spawn(funcieBin, argv, {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const w = watch(child);
  const c = {
    child,
    pid: child.pid,
    session: null,
    out: w.out,
    waitFor: w.waitFor,
    length: w.length,
    exited: once(child, 'exit'),
    async stop(signal = 'SIGINT') {
      if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, signal: child.signalCode };
      const exited = c.exited;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      const [code, sig] = await exited;
      clearTimeout(timer);
      return { code, signal: sig };
    },
  };
  if (waitServing) {
    const m = await w.waitFor(/serving app \S+ through \S+ \(session ([0-9a-f]{8})\)/);
    c.session = m[1];
  }
  return c;
}

/**
 * The cloud side: `funcie emulate` whose runtime is `funcie wrap -- echo cloud`, configured
 * with FUNCIE_BACKEND=url and FUNCIE_APP=app (plus `env`, as more function variables).
 */
export async function startCloud({ url, app, env = {}, args = [], command } = {}) {
  const fnEnv = { FUNCIE_BACKEND: url, FUNCIE_APP: app, ...env };
  const envArgs = Object.entries(fnEnv).filter(([, v]) => v !== undefined).flatMap(([k, v]) => ['--env', `${k}=${v}`]);
  return startEmulate({
    functionName: app,
    args: [...envArgs, ...args],
    command: command ?? [funcieBin, 'wrap', '--', echoBin, 'cloud'],
  });
}

/** Invokes with {"where":true} and resolves "cloud" or "local" (or throws on anything else). */
export async function where(em) {
  const r = await em.invoke({ where: true });
  if (r.status !== 200 || r.headers.get('x-amz-function-error')) {
    throw new Error(`invoke failed: ${r.status} ${r.body}`);
  }
  return JSON.parse(r.body).where;
}

/** Polls `fn` until it resolves truthy; throws after `ms`. */
export async function eventually(fn, { ms = defaultWaitMs, every = 50, what = 'condition' } = {}) {
  for (const until = Date.now() + ms; ;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > until) throw new Error(`${what} not reached within ${ms} ms`);
    await sleep(every);
  }
}
