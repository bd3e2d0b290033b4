// `funcie connect` under a shell's job control, as a developer uses it in a terminal: Ctrl-Z
// stops it, `fg` brings it back, and the single keys ('r' reloads) work again without Enter.
// The shell gives the terminal back in its own line mode when a job stops; funcie sets its
// single keys again when it is continued in the foreground.
//   funcie emulate -> funcie wrap -> redis-server -> funcie connect (in bash, on a pty).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { echoBin, funcieBin } from './lib/harness.mjs';
import { eventually, startCloud, startRedis, where } from './lib/tunnel.mjs';

let redis;
before(async () => { redis = await startRedis(); });
after(async () => { await redis?.close(); });

/** The state letter of `pid` (T: stopped) and whether its group holds the terminal. */
async function job(pid) {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0], foreground: fields[2] === fields[5] };
}

const quote = (a) => `'${String(a).replaceAll("'", "'\\''")}'`;

/** An interactive bash (job control on) on a pty of its own; type() into it, read screen(). */
function interactiveShell(t) {
  // bash sets its own PS1 over the environment's: the prompt comes from an rc file.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'funcie-jobs-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'bashrc'), "PS1='shell$ '\nbind 'set enable-bracketed-paste off'\n");
  const child = spawn('script', ['-q', '-e', '-f', '-c', `bash --noprofile --rcfile ${quote(path.join(dir, 'bashrc'))} -i`, '/dev/null'], {
    env: { ...process.env, SHELL: '/bin/bash', TERM: 'xterm-256color', NO_COLOR: '1' },
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
  return {
    exited,
    screen: () => screen,
    type(text) { child.stdin.write(text); },
    /** Resolves once `re` matches what came after offset `from`. */
    async waitFor(re, { from = 0, ms = 15000 } = {}) {
      await eventually(async () => re.test(screen.slice(from)), { ms, what: `${re} on the terminal; got:\n${screen.slice(-3000)}` });
      return screen.slice(from).match(re);
    },
  };
}

test('after Ctrl-Z and fg, r reloads at once again (no Enter), and invocations come back to this machine', async (t) => {
  const app = `jc-${process.pid}`;
  const em = await startCloud({ url: redis.url, app, args: ['--timeout', '30'] });
  t.after(() => em.stop());
  const sh = interactiveShell(t);
  await sh.waitFor(/shell\$ $/);
  const connect = [funcieBin, 'connect', '--backend', redis.url, '--app', app, '--', echoBin, 'local'].map(quote).join(' ');
  sh.type(`${connect}\n`);
  const pid = Number((await sh.waitFor(/r reloads, Ctrl-C leaves \(pid (\d+)/))[1]);
  assert.equal(await where(em), 'local');

  // Before the stop: a single r reloads.
  let mark = sh.screen().length;
  sh.type('r');
  await sh.waitFor(/reloaded \(r pressed\)/, { from: mark });

  await sleep(500);
  mark = sh.screen().length;
  sh.type('\x1a');  // Ctrl-Z
  await sh.waitFor(/Stopped/, { from: mark });
  await eventually(async () => (await job(pid)).state === 'T', { what: 'funcie connect stopped' });
  await sh.waitFor(/shell\$ $/, { from: mark });
  // As a person would, a moment after the prompt; typed again if the shell dropped it (it
  // may flush what was typed while it set the terminal back for itself).
  const continued = async () => {
    const j = await job(pid);
    return j.state !== 'T' && j.foreground;
  };
  for (let attempt = 0; ; ++attempt) {
    await sleep(300);
    sh.type('fg\n');
    try {
      await eventually(continued, { ms: 3000, what: 'funcie connect continued in the foreground' });
      break;
    } catch (e) {
      if (attempt === 3) throw e;
    }
  }
  await sleep(300);

  // After fg: a single r, no Enter, reloads again. In the shell's line mode it would wait
  // in the line buffer until Enter, and be echoed.
  mark = sh.screen().length;
  sh.type('r');
  await sh.waitFor(/reloaded \(r pressed\)/, { from: mark });
  assert.doesNotMatch(sh.screen().slice(mark), /^r/m, 'the key is not echoed');

  // The session may have lapsed while stopped (the heartbeat bound); either way the next
  // invocations reach this machine again.
  await eventually(async () => (await where(em)) === 'local', { what: 'invocations back on this machine after fg' });

  mark = sh.screen().length;
  sh.type('\x03');  // Ctrl-C
  await sh.waitFor(/shell\$ $/, { from: mark });
  sh.type('exit\n');
  await sh.exited;
  assert.equal(await where(em), 'cloud');
});
