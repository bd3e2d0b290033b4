// `funcie connect` on a real terminal (a pty from script(1)), as a developer lives with it all
// day (docs/local.md, "Output"): every line a handler prints reaches the screen in order, the
// terminal is given back as it was found, and closing the terminal leaves the tunnel as
// Ctrl-C does (brief rule 12).
//   funcie emulate -> funcie wrap -> redis-server -> funcie connect (on the pty) -> runtime.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { echoBin, ended, ricBin } from './lib/harness.mjs';
import { startCloud, startRedis, where } from './lib/tunnel.mjs';
import { connectInPty } from './lib/terminal.mjs';

const sanitized = Boolean(process.env.ASAN_OPTIONS);
let redis;
let appNumber = 0;
const nextApp = () => `term-${process.pid}-${++appNumber}`;

before(async () => { redis = await startRedis(); });
after(async () => { await redis?.close(); });

async function cloud(t, timeout = 60) {
  const app = nextApp();
  const em = await startCloud({ url: redis.url, app, args: ['--timeout', String(timeout)] });
  t.after(() => em.stop());
  return { app, em };
}

test('50,000 lines printed in one invocation all reach the terminal, in order, and the terminal is given back as found', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'funcie-term-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // One write of ~3.5 MB: far more than a pty's buffer, so the console must wait for the
  // terminal rather than drop what it did not take.
  writeFileSync(path.join(dir, 'handler.mjs'), `
export const handler = async (event) => {
  const lines = [];
  for (let i = 0; i < event.lines; ++i) lines.push('line ' + String(i).padStart(5, '0') + ' ' + 'x'.repeat(40));
  process.stdout.write(lines.join('\\n') + '\\n');
  return { printed: event.lines };
};
`);
  const { app, em } = await cloud(t);
  const pty = connectInPty(t, ['--backend', redis.url, '--app', app, '--', process.execPath, ricBin, 'handler.handler'], { cwd: dir });
  await pty.waitFor(/serving app/);
  await pty.waitFor(/r reloads/);  // keys are read: the case that used to set O_NONBLOCK
  const pid = await pty.pid();

  const r = await em.invoke({ lines: 50000 });
  assert.equal(r.headers.get('x-amz-function-error'), null, r.body);
  assert.equal(JSON.parse(r.body).printed, 50000);
  await pty.waitFor(/line 49999 x{40}\r?\n/, 60000);

  process.kill(pid, 'SIGINT');
  const [code] = await pty.exited;
  assert.equal(code, 0, pty.screen().slice(-2000));

  const seen = [...pty.screen().matchAll(/line (\d{5}) (x*)\r?$/gm)];
  assert.equal(seen.length, 50000, 'every line arrived');
  const firstWrong = seen.findIndex((m, i) => Number(m[1]) !== i || m[2].length !== 40);
  assert.equal(firstWrong, -1, `in order and whole; first wrong: ${seen[firstWrong]?.[0]}`);

  const { before: was, after: is } = pty.state();
  assert.ok(was && is, pty.screen().slice(-2000));
  assert.equal(is, was, 'the file status flags (O_NONBLOCK) and termios settings of the terminal are unchanged');
});

test('closing the terminal leaves like Ctrl-C: a held request is answered at once, the next invocation runs in the cloud', async (t) => {
  const { app, em } = await cloud(t);
  const pty = connectInPty(t, ['--backend', redis.url, '--app', app, '--hold', '--', echoBin, 'local'], { exec: true });
  await pty.waitFor(/serving app/);
  const pid = await pty.pid();
  assert.equal(await where(em), 'local');

  const held = em.invoke({ throw: 'not fixed yet' });
  await pty.waitFor(/held/);

  // The terminal window closes: its side of the pty goes away, the kernel hangs it up and
  // sends SIGHUP to the session.
  const closed = Date.now();
  pty.child.kill('SIGKILL');
  assert.ok(await ended(pid, 10000), 'funcie connect ended');
  const took = Date.now() - closed;

  const r = await held;
  assert.equal(r.headers.get('x-amz-function-error'), 'Unhandled');
  assert.equal(JSON.parse(r.body).errorType, 'Funcie.ConsumerLeft', r.body);
  assert.equal(await where(em), 'cloud', 'no ghost consumer takes the next invocation');
  // Leaving takes well under a second; the room is for a loaded machine (and ASan's exit).
  assert.ok(took < (sanitized ? 3000 : 1000), `ended ${took} ms after the terminal closed`);
});
