// Back-to-back invocations on `funcie connect`'s terminal (docs/local.md, "Output"): each
// invocation's line comes right after its own handler output and before the next
// invocation's, in the order they ran, as a caller that invokes in a loop (a queue trigger,
// a script) produces them. The handler runs on AWS's Node runtime client.
//   funcie emulate -> funcie wrap -> redis-server -> funcie connect (on a pty) -> aws-lambda-ric.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ricBin } from './lib/harness.mjs';
import { startCloud, startRedis } from './lib/tunnel.mjs';
import { connectInPty } from './lib/terminal.mjs';

let redis;
before(async () => { redis = await startRedis(); });
after(async () => { await redis?.close(); });

test('invocations one right after another: each line after its own output and before the next one\'s, in order', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'funcie-order-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'handler.mjs'), `
export const handler = async (event) => {
  for (let i = 0; i < 3; ++i) console.log('invocation ' + event.n + ' line ' + i);
  return { n: event.n };
};
`);
  const app = `order-${process.pid}`;
  const em = await startCloud({ url: redis.url, app, args: ['--timeout', '30'] });
  t.after(() => em.stop());
  const pty = connectInPty(t, ['--backend', redis.url, '--app', app, '--no-history', '--', process.execPath, ricBin, 'handler.handler'], { cwd: dir });
  await pty.waitFor(/serving app/);
  const pid = await pty.pid();

  const count = 6;
  const ids = [];
  for (let n = 0; n < count; ++n) {
    const r = await em.invoke({ n });
    assert.equal(r.headers.get('x-amz-function-error'), null, r.body);
    assert.equal(JSON.parse(r.body).n, n, 'answered by the local handler');
    ids.push(r.headers.get('x-amzn-requestid').slice(0, 8));
  }
  await pty.waitFor(new RegExp(`${ids[count - 1]}\\S* +direct +\\d+ms`));
  process.kill(pid, 'SIGINT');
  await pty.exited;

  const lines = pty.screen()
    .replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '')
    .split(/\r\n|\n|\r/);
  const summary = (id) => lines.findIndex((l) => new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} ${id} .* ok`).test(l));
  const output = (n) => lines.flatMap((l, i) => (new RegExp(`INFO\\s+invocation ${n} line \\d$`).test(l) ? [i] : []));
  const shown = lines.filter((l) => /invocation \d line|^\d\d:\d\d:\d\d\.\d{3} [0-9a-f]{8} /.test(l)).join('\n');
  for (let n = 0; n < count; ++n) {
    const at = summary(ids[n]);
    const own = output(n);
    assert.equal(own.length, 3, `invocation ${n}: its three lines:\n${shown}`);
    assert.ok(at > Math.max(...own), `invocation ${n}: its line after its own output:\n${shown}`);
    if (n + 1 < count) {
      assert.ok(at < Math.min(...output(n + 1)), `invocation ${n}: its line before invocation ${n + 1}'s output:\n${shown}`);
    }
  }
});
