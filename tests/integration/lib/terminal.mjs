// `funcie connect` on a real pseudo-terminal, as a person runs it: script(1) gives it a pty
// (stdin, stdout and stderr all the terminal, in the terminal's foreground), the test types
// into it and reads the screen. A shell around funcie records the terminal's state before
// and after (the file status flags of fds 0-2, which funcie shares with that shell, and the
// termios settings), so a test can check that funcie gave the terminal back as it found it.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { funcieBin } from './harness.mjs';
import { eventually } from './tunnel.mjs';

const quote = (a) => `'${String(a).replaceAll("'", "'\\''")}'`;

/**
 * Runs `funcie connect ARGS` in a pty of `columns` x `rows`. With `exec`, funcie replaces the
 * shell (it is then the terminal's session leader, as in a terminal window that runs it
 * directly) and nothing is recorded. Returns { child, screen(), waitFor(re), pid(), type(text),
 * state(), exited }.
 */
export function connectInPty(t, args, { cwd, env = {}, columns = 200, rows = 50, exec = false } = {}) {
  const funcie = [funcieBin, 'connect', ...args].map(quote).join(' ');
  const state = `s() { grep -h '^flags' /proc/$$/fdinfo/0 /proc/$$/fdinfo/1 /proc/$$/fdinfo/2 | tr -s ' \\t' ' ' | tr '\\n' ' '; stty -g; }`;
  const size = `stty cols ${columns} rows ${rows}`;
  const command = exec
    ? `${size}; exec ${funcie}`
    : `${size}; ${state}; B=$(s); ${funcie}; A=$(s); echo "terminal before: $B"; echo "terminal after: $A"`;
  const child = spawn('script', ['-q', '-e', '-f', '-c', command, '/dev/null'], {
    cwd,
    env: { ...process.env, SHELL: '/bin/sh', TERM: 'xterm-256color', NO_COLOR: '', FORCE_COLOR: '', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let screen = '';
  child.stdout.on('data', (d) => { screen += d; });
  child.stderr.on('data', (d) => { screen += d; });
  const exited = once(child, 'exit');
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  const pty = {
    child,
    exited,
    screen: () => screen,
    async waitFor(re, ms = 15000) {
      await eventually(async () => re.test(screen), { ms, what: `${re} on the terminal; got:\n${screen.slice(-4000)}` });
      return screen.match(re);
    },
    /** funcie's pid, from its start block. */
    async pid() {
      return Number((await pty.waitFor(/pid (\d+)/))[1]);
    },
    type(text) { child.stdin.write(text); },
    /** After the shell ends: what it recorded before and after funcie ran. */
    state() {
      const before = screen.match(/terminal before: ([^\r\n]*)/);
      const after = screen.match(/terminal after: ([^\r\n]*)/);
      return { before: before?.[1], after: after?.[1] };
    },
  };
  return pty;
}
