// The console page in a real browser (Debian's chromium, headless, driven through the
// DevTools protocol): invocations forwarded through a real redis-server appear in the list
// within a second, the detail view shows the event and the handler's logs, Replay gives a
// new entry with the handler's answer, Save writes the fixture. With
// FUNCIE_SCREENSHOTS=DIR the browser's screenshots are written there (docs/images/ holds
// the ones docs/local.md shows).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startCloud, startRedis } from './lib/tunnel.mjs';
import { startChromium, startConnectUi, tempDir, writeHandler } from './lib/console.mjs';

let redis, cloud, connect, dir, browser;
const app = 'orders';

before(async () => {
  dir = tempDir();
  redis = await startRedis();
  cloud = await startCloud({ url: redis.url, app });
  connect = await startConnectUi({ redis, app, dir, handler: writeHandler(dir) });
  browser = await startChromium();
});

after(async () => {
  await browser?.close();
  await connect?.stop();
  await cloud?.stop();
  await redis?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function screenshot(name, png) {
  const to = process.env.FUNCIE_SCREENSHOTS;
  if (to) writeFileSync(path.join(to, name), png);
}

test('the page lists, shows, replays and saves invocations as they happen', async () => {
  // Something in the history before the page opens: the first load shows it.
  await cloud.invoke({ path: '/orders/7', order: 7 });
  await cloud.invoke({ fail: true, order: 8 });
  const tab = await browser.open(connect.page.url);
  await tab.waitFor(`document.querySelectorAll('#list tbody tr').length === 2`);
  await tab.waitFor(`document.getElementById('live').textContent === 'live'`);

  // Live: a new invocation appears without reloading, within a second of its answer.
  const rows = () => `document.querySelectorAll('#list tbody tr').length`;
  const r = await cloud.invoke({ order: 9, customer: 'ada' });
  assert.equal(r.status, 200);
  const shown = await tab.waitFor(`${rows()} === 3`, 5000);
  console.log(`shown ${shown.ms} ms after the cloud's answer`);
  assert.ok(shown.ms < 1000, `the row appeared ${shown.ms} ms after the answer`);
  const first = await tab.evaluate(`[...document.querySelector('#list tbody tr').cells].map((c) => c.textContent)`);
  assert.equal(first[2], app);
  assert.match(first[6], /^ok/);
  await tab.waitFor(`document.querySelectorAll('#chart rect').length === 3`);
  screenshot('console-list.png', await tab.screenshot());

  // Detail: the event pretty-printed, the handler's own lines, the answer.
  await tab.evaluate(`document.querySelector('#list tbody tr').click()`);
  await tab.waitFor(`!document.getElementById('detail').hidden && document.getElementById('d-logs').textContent.includes('handling')`);
  const detail = await tab.evaluate(`({
    event: document.getElementById('d-event').textContent,
    response: document.getElementById('d-response').textContent,
    logs: document.getElementById('d-logs').textContent,
  })`);
  assert.deepEqual(JSON.parse(detail.event), { order: 9, customer: 'ada' });
  assert.match(detail.event, /\n {2}"order": 9/);  // pretty-printed
  assert.match(detail.logs, /handling [0-9a-f-]{36}: \{"order":9,"customer":"ada"\}/);
  assert.deepEqual(JSON.parse(detail.response), { answer: { order: 9, customer: 'ada' }, by: 'local' });
  screenshot('console-detail.png', await tab.screenshot());

  // The failed one shows its error and stack.
  await tab.evaluate(`[...document.querySelectorAll('#list tbody tr')].find((tr) => tr.textContent.includes('Test.Failure')).click()`);
  await tab.waitFor(`!document.getElementById('d-error').hidden && document.getElementById('d-trace').textContent.includes('bootstrap:10')`);

  // Replay with an edited event: a new entry with the handler's answer.
  const original = await tab.evaluate(`(() => {
    const tr = [...document.querySelectorAll('#list tbody tr')].find((row) => row.cells[6].textContent.startsWith('ok'));
    tr.click();
    return tr.dataset.id;
  })()`);
  await tab.waitFor(`document.getElementById('d-title').textContent.startsWith('#${original} ')`);
  await tab.evaluate(`document.getElementById('replay-box').open = true; document.getElementById('replay-event').value = '{"order": 42}'; document.getElementById('replay').click()`);
  const replayed = await tab.waitFor(`document.getElementById('action-result').textContent.match(/replayed as #(\\d+): ok/)?.[1]`);
  await tab.waitFor(`document.querySelectorAll('#list tbody tr').length === 4`);
  await tab.waitFor(`document.getElementById('d-title').textContent.startsWith('#${replayed.value} ')`);
  const answer = await tab.evaluate(`document.getElementById('d-response').textContent`);
  assert.deepEqual(JSON.parse(answer), { answer: { order: 42 }, by: 'local' });
  const tag = await tab.evaluate(`document.querySelector('#list tbody tr').textContent`);
  assert.match(tag, new RegExp(`replay of #${original}`));
  screenshot('console-replay.png', await tab.screenshot());

  // Save as fixture.
  await tab.evaluate(`document.getElementById('save-name').value = 'order-42'; document.getElementById('save').click()`);
  await tab.waitFor(`document.getElementById('action-result').textContent.startsWith('saved')`);
  const file = path.join(dir, 'events', 'order-42.json');
  assert.ok(existsSync(file));
  assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { order: 42 });

  // The page without its token shows nothing of the history.
  const bare = await browser.open(connect.page.url.replace(/\?token=.*/, ''));
  const text = await bare.waitFor(`document.body && document.body.textContent`);
  assert.match(text.value, /no or wrong token/);
  assert.doesNotMatch(text.value, /order/);
});
