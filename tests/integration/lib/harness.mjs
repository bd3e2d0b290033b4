// Shared by the integration tests: start `funcie emulate` on a free port, invoke it, and
// stop everything by pid. Every process started here is killed in `stop()`.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const peersDir = path.join(repoRoot, 'tests/peers');
export const funcieBin = process.env.FUNCIE_BIN ?? path.join(repoRoot, 'build/funcie');
export const echoBin = process.env.FUNCIE_EXAMPLE_ECHO ?? path.join(repoRoot, 'build/examples/funcie_example_echo');
export const helloBin = process.env.FUNCIE_EXAMPLE_HELLO ?? path.join(repoRoot, 'build/examples/funcie_example_hello');
export const ricBin = path.join(peersDir, 'node_modules/aws-lambda-ric/bin/index.mjs');

/**
 * Starts `funcie emulate --port 0 ARGS -- COMMAND` and resolves once it prints where it
 * listens. Returns { url, port, child, stderr(), stop() }.
 */
export async function startEmulate({ functionName = 'fn', args = [], command, cwd, env } = {}) {
  const child = spawn(funcieBin, ['emulate', '--function', functionName, '--port', '0', ...args, '--', ...command], {
    cwd: cwd ?? repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; if (process.env.FUNCIE_TEST_VERBOSE) process.stderr.write(d); });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`funcie emulate did not start: ${stderr}`)), 10000);
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = stdout.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`funcie emulate exited with ${code}: ${stderr}`)); });
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    port,
    child,
    stderr: () => stderr,
    /** Everything emulate printed on stdout (the runtime's own stdout lines among it). */
    stdout: () => stdout,
    invokeUrl: (name = functionName) => `${url}/2015-03-31/functions/${encodeURIComponent(name)}/invocations`,
    /** POST an event (string or object); resolves { status, headers, body(text) }. */
    async invoke(event, { name = functionName, headers = {} } = {}) {
      const body = typeof event === 'string' ? event : JSON.stringify(event);
      const res = await fetch(this.invokeUrl(name), { method: 'POST', body, headers });
      return { status: res.status, headers: res.headers, body: await res.text() };
    },
    /** SIGINT (what Ctrl-C sends) and wait for the exit; SIGKILL if it takes over 5 s. */
    async stop(signal = 'SIGINT') {
      return stopChild(child, signal);
    },
  };
}

/** True while a process with this pid exists. */
/** Sends `signal` to `child` and waits for its exit; SIGKILL if it takes over 5 s. */
export async function stopChild(child, signal = 'SIGINT') {
  if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, signal: child.signalCode };
  const exited = once(child, 'exit');
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  const [code, sig] = await exited;
  clearTimeout(timer);
  return { code, signal: sig };
}

export function alive(pid) {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

/** Pids of the direct children of `pid` (from /proc). */
export async function childPids(pid) {
  const { readFile, readdir } = await import('node:fs/promises');
  const out = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch { /* gone */ }
  }
  return out;
}

/**
 * True while a process with this pid exists and is not a zombie. Use it rather than alive()
 * for grandchildren: an orphan that was killed stays a zombie until PID 1 reaps it, and in
 * some containers PID 1 never does.
 */
export async function running(pid) {
  const { readFile } = await import('node:fs/promises');
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Resolves true once running(pid) is false, or false if it is still running after `ms`. */
export async function ended(pid, ms = 2000) {
  for (const until = Date.now() + ms; ;) {
    if (!(await running(pid))) return true;
    if (Date.now() >= until) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
}
