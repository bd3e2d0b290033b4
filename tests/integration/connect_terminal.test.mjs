// `funcie connect` on a real terminal (a pty from script(1)), as a developer lives with it all
// day (docs/local.md, "Output"): every line a handler prints reaches the screen in order, the
// terminal is given back as it was found, and closing the terminal leaves the tunnel as
// Ctrl-C does (brief rule 12).
//   funcie emulate -> funcie wrap -> redis-server -> funcie connect (on the pty) -> runtime.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { echoBin, ended, repoRoot, ricBin } from './lib/harness.mjs';
import { startCloud, startRedis, where } from './lib/tunnel.mjs';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectInPty } from './lib/terminal.mjs';

const sanitized = Boolean(process.env.ASAN_OPTIONS);
let redis;
let appNumber = 0;
const nextApp = () => `t-${++appNumber}`;  // short: the serving line fits in 80 columns

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

  const started = Date.now();
  const r = await em.invoke({ lines: 50000 });
  assert.equal(r.headers.get('x-amz-function-error'), null, r.body);
  assert.equal(JSON.parse(r.body).printed, 50000);
  await pty.waitFor(/line 49999 x{40}\r?\n/, 60000);
  console.log(`50,000 lines (3.3 MB) on the terminal ${Date.now() - started} ms after the invocation began`);

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

test('Ctrl-C right after an invocation is answered: its line is still printed before funcie exits', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'funcie-term-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'handler.mjs'), `
export const handler = async () => { console.log('printed just before the answer'); return { ok: true }; };
`);
  const { app, em } = await cloud(t);
  const pty = connectInPty(t, ['--backend', redis.url, '--app', app, '--', process.execPath, ricBin, 'handler.handler'], { cwd: dir });
  await pty.waitFor(/r reloads/);
  const pid = await pty.pid();
  const r = await em.invoke({});
  assert.equal(r.headers.get('x-amz-function-error'), null, r.body);
  assert.deepEqual(JSON.parse(r.body), { ok: true }, 'answered locally');
  process.kill(pid, 'SIGINT');  // at once: the line waits for the runtime's output to settle
  const [code] = await pty.exited;
  assert.equal(code, 0, pty.screen().slice(-2000));
  const plain = pty.screen().replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '');
  const id = plain.match(/\[t-\d+#1 ([0-9a-f]{8})\][^\n]*printed just before the answer/)?.[1];
  assert.ok(id, `the handler's line carries its request id:\n${plain.slice(-2000)}`);
  assert.match(plain, new RegExp(`\\d\\d:\\d\\d:\\d\\d\\.\\d{3} ${id} direct`), `the invocation's line:\n${plain.slice(-2000)}`);
});

test('a terminal that stops reading (Ctrl-S) holds the handler back, not the session: heartbeats go on, and every line arrives once it reads again', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'funcie-term-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'handler.mjs'), `
export const handler = async (event) => {
  if (event.where) return { where: 'local' };
  const lines = [];
  for (let i = 0; i < event.lines; ++i) lines.push('line ' + String(i).padStart(5, '0') + ' ' + 'y'.repeat(40));
  process.stdout.write(lines.join('\\n') + '\\n');
  return { printed: event.lines };
};
`);
  const heartbeat = 1000;  // the bound past which the cloud takes a silent session for dead
  const { app, em } = await cloud(t);
  const pty = connectInPty(t, ['--backend', redis.url, '--app', app, '--heartbeat-ms', String(heartbeat), '--', process.execPath, ricBin, 'handler.handler'], { cwd: dir });
  await pty.waitFor(/r reloads/);
  const pid = await pty.pid();
  assert.equal(await where(em), 'local');

  // Ctrl-S: the terminal takes no more output until Ctrl-Q. The handler then prints 3.3 MB,
  // far more than funcie's queue, the pipe and the pty hold together.
  pty.type('\u0013');
  await sleep(200);
  const shown = pty.screen().length;
  const printing = em.invoke({ lines: 50000 });
  // Four heartbeat bounds with the terminal stopped: the session must stay alive meanwhile.
  await sleep(4 * heartbeat);
  const probe = await em.invoke({ where: true });  // a second environment runs it
  assert.equal(probe.headers.get('x-amz-function-error'), null, probe.body);
  assert.equal(JSON.parse(probe.body).where, 'local', 'the session is alive while the terminal is stopped');
  await sleep(heartbeat);
  assert.ok(pty.screen().length - shown < 4096, `the terminal was stopped (${pty.screen().length - shown} bytes shown meanwhile)`);

  pty.type('\u0011');  // Ctrl-Q: the terminal reads again
  const r = await printing;
  assert.equal(r.headers.get('x-amz-function-error'), null, r.body);
  assert.equal(JSON.parse(r.body).printed, 50000, 'answered by the local handler, its session never lost');
  await pty.waitFor(/line 49999 y{40}\r?\n/, 60000);
  assert.doesNotMatch(pty.screen(), /reconnected app/, 'no new session was needed');
  // The invocation's line follows once its runtime's output has been quiet for a moment.
  const printedId = pty.screen().replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '').match(/\[t-\d+#1 ([0-9a-f]{8})\] line 00000/)?.[1];
  assert.ok(printedId, 'the handler\'s lines carry its request id');
  await pty.waitFor(new RegExp(`${printedId}[^\\n]* direct`), 30000);

  process.kill(pid, 'SIGINT');
  const [code] = await pty.exited;
  assert.equal(code, 0, pty.screen().slice(-2000));
  const plain = pty.screen().replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '');
  const seen = [...plain.matchAll(/line (\d{5}) (y*)\r?$/gm)];
  assert.equal(seen.length, 50000, 'every line arrived');
  const firstWrong = seen.findIndex((m, i) => Number(m[1]) !== i || m[2].length !== 40);
  assert.equal(firstWrong, -1, `in order and whole; first wrong: ${seen[firstWrong]?.[0]}`);
  // The invocation's line comes after its own output.
  const last = plain.lastIndexOf('line 49999');
  const id = plain.slice(0, last).match(/\[t-\d+#1 ([0-9a-f]{8})\] line 00000/)?.[1];
  assert.ok(id, 'the handler\'s lines carry its request id');
  const summary = plain.search(new RegExp(`\\d\\d:\\d\\d:\\d\\d\\.\\d{3} ${id} direct`));
  assert.ok(summary > last, `the invocation's line (${summary}) after its last output line (${last}):\n${plain.slice(summary - 400, summary + 400)}`);
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
  console.log(`funcie connect ended ${took} ms after its terminal closed`);
});

/** The screen as lines: escape sequences out, a status line's in-place updates as lines. */
function screenLines(screen) {
  return screen
    .replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '')
    .split(/\r\n|\n|\r/)
    .filter((l) => l.length > 0);
}

for (const columns of [80, 200]) {
  test(`the screen at ${columns} columns: funcie's lines fit (100 at most), each invocation's line after its own output`, async (t) => {
    const { app, em } = await cloud(t);
    // At 80 columns with NO_COLOR: no colours, and the countdown still updates in place.
    const noColour = columns === 80;
    const pty = connectInPty(t, ['--backend', redis.url, '--app', app, '--hold', '--watch', path.dirname(echoBin), '--', echoBin, 'local'], { columns, env: noColour ? { NO_COLOR: '1' } : {} });
    await pty.waitFor(/r reloads/);
    const pid = await pty.pid();
    const long = 'x'.repeat(150);
    await em.invoke({ log: `hello ${long}` });
    const apigw = JSON.parse(readFileSync(path.join(repoRoot, 'examples/events/apigw-http-get.json'), 'utf8'));
    apigw.rawPath = `/orders/${'segment/'.repeat(20)}7`;
    apigw.requestContext.http.path = apigw.rawPath;
    await em.invoke(apigw);
    const held = em.invoke({ throw: `not fixed yet: ${'word '.repeat(14)}end` });
    await pty.waitFor(/held/);
    await pty.waitFor(/s left/);  // the countdown
    // Ctrl-C at 80 columns, SIGTERM at 200: either way the terminal is given back as found.
    process.kill(pid, columns === 80 ? 'SIGINT' : 'SIGTERM');
    const r = await held;
    assert.equal(JSON.parse(r.body).errorType, 'Funcie.ConsumerLeft');
    await pty.exited;
    const { before: was, after: is } = pty.state();
    assert.ok(was && is && is === was, `terminal before: ${was}\nafter: ${is}`);

    if (noColour) assert.doesNotMatch(pty.screen(), /\u001b\[[0-9;]*m/, 'no colours with NO_COLOR');
    else assert.match(pty.screen(), /\u001b\[[0-9;]*m/, 'colours on a terminal');
    const lines = screenLines(pty.screen());
    const ours = lines.filter((l) => !/^\[\S+#\d+( [0-9a-f]{8})?\]/.test(l) && !l.startsWith('terminal '));
    const limit = Math.min(columns, 100);
    for (const line of ours) assert.ok([...line].length <= limit, `${[...line].length} columns: ${line}`);
    // The start block, in order.
    const at = (re) => lines.findIndex((l) => re.test(l));
    const order = [/serving app/, /^ {2}watch /, /^ {2}hold +on/, /^ {2}secret /, /^ {2}keys +r reloads/].map(at);
    assert.ok(order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1])), `start block order ${order}:\n${lines.slice(0, 8).join('\n')}`);
    assert.equal(order[4] - order[0], 4, `one line each, the secret's warning too:\n${lines.slice(0, 8).join('\n')}`);
    // The handler's line carries the request id, and the invocation's line comes after it.
    const own = at(/^\[\S+#1 ([0-9a-f]{8})\] hello x+$/);
    assert.ok(own >= 0, lines.join('\n'));
    const id = lines[own].match(/#1 ([0-9a-f]{8})\]/)[1];
    const summary = at(new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} ${id} direct +\\d+ms ok$`));
    assert.ok(summary > own, `the line of ${id} (${summary}) after its output (${own})`);
    // The long path is shortened in its middle; the error is Type: message, not JSON.
    assert.ok(lines.some((l) => /API Gateway v2 GET \/ord\S*…\S*segment\/7 +\d+ms ok( 200)?$/.test(l)), lines.join('\n'));
    // Too long for the line, the message goes under it, whole (wrapped at spaces).
    const heldAt = at(/ms held( std::runtime_error:)?$/);
    assert.ok(heldAt >= 0 && /^ +(std::runtime_error: )?not fixed yet: word word/.test(lines[heldAt + 1]), lines.join('\n'));
    assert.match(lines.slice(heldAt + 1, heldAt + 4).join(' ').replace(/\s+/g, ' '), /word word end/, 'the whole message');
    assert.ok(!lines.some((l) => l.includes('"errorType"')), 'no JSON error lines');
  });
}
