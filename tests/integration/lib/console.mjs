// Shared by the console tests: a bash handler that logs and answers, `funcie connect --ui`
// started with its own history file, HTTP calls to the page's API, and a headless chromium
// driven through the DevTools protocol over a pipe (--remote-debugging-pipe: no WebSocket
// client needed). Everything started here is stopped by pid.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startConnect } from './tunnel.mjs';

/** A bash runtime (curl, the Runtime API loop): prints "handling ID: EVENT" on stdout, answers
 * {"answer": EVENT, "by": LABEL}, or fails with Test.Failure when the event has "fail". */
export function writeHandler(dir, label = 'local') {
  const file = path.join(dir, 'bootstrap');
  writeFileSync(file, `#!/usr/bin/env bash
set -euo pipefail
api="http://\${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
headers=$(mktemp)
trap 'rm -f "$headers"' EXIT
while true; do
  event=$(curl -sS -D "$headers" "$api/invocation/next")
  id=$(grep -i '^Lambda-Runtime-Aws-Request-Id:' "$headers" | cut -d' ' -f2 | tr -d '\\r')
  echo "handling $id: $event"
  if [[ "$event" == *'"fail"'* ]]; then
    curl -sS -o /dev/null -X POST "$api/invocation/$id/error" -H 'Lambda-Runtime-Function-Error-Type: Test.Failure' \\
      -d '{"errorMessage":"asked to fail","errorType":"Test.Failure","stackTrace":["at handler (bootstrap:10)"]}'
    continue
  fi
  curl -sS -o /dev/null -X POST "$api/invocation/$id/response" -d "{\\"answer\\":$event,\\"by\\":\\"${label}\\"}"
done
`);
  chmodSync(file, 0o755);
  return file;
}

/** A fresh directory for one test's files (history, handler, fixtures). */
export function tempDir(prefix = 'funcie-console-') {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** `funcie connect --ui --history DIR/history.sqlite3` in `dir` serving `handler`; resolves
 * with the connect handle plus { page: {url, port, token}, history }. */
export async function startConnectUi({ redis, app, dir, handler, args = [] }) {
  const history = path.join(dir, 'history.sqlite3');
  const c = await startConnect({ url: redis.url, app, cwd: dir, args: ['--ui', '--history', history, ...args], command: ['bash', handler] });
  const m = await c.waitFor(/console (http:\/\/127\.0\.0\.1:(\d+)\/\?token=([0-9a-f]{32}))/);
  return Object.assign(c, { page: { url: m[1], port: Number(m[2]), token: m[3] }, history });
}

/** A raw HTTP request to 127.0.0.1:port (any Host and Origin, which fetch would not send).
 * Resolves { status, headers, body }. */
export function request(port, { method = 'GET', target = '/', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: target, headers: { Host: `127.0.0.1:${port}`, ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** The page's API with its token: resolves the parsed JSON (throws on a non-2xx answer). */
export function apiOf(page) {
  return async (target, { method = 'GET', body } = {}) => {
    const r = await request(page.port, {
      method, target,
      headers: { 'X-Funcie-Token': page.token, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const parsed = JSON.parse(r.body);
    if (r.status >= 300) throw new Error(`${method} ${target}: ${r.status} ${r.body}`);
    return parsed;
  };
}

/**
 * Headless chromium (Debian's) driven through the DevTools protocol on fds 3 and 4.
 * Returns { open(url) -> tab, close() }; a tab has evaluate(expr), waitFor(expr, ms),
 * screenshot() (PNG bytes).
 */
export async function startChromium() {
  const profile = tempDir('funcie-chromium-');
  const child = spawn('chromium', [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', '--no-default-browser-check',
    '--disable-extensions', '--disable-background-networking', '--remote-debugging-pipe',
    `--user-data-dir=${profile}`, '--window-size=1400,900', 'about:blank',
  ], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const toBrowser = child.stdio[3];
  const fromBrowser = child.stdio[4];
  let nextId = 1;
  const pending = new Map();
  let buffer = Buffer.alloc(0);
  fromBrowser.on('data', (d) => {
    buffer = Buffer.concat([buffer, d]);
    for (let end; (end = buffer.indexOf(0)) >= 0;) {
      const message = JSON.parse(buffer.subarray(0, end).toString('utf8'));
      buffer = buffer.subarray(end + 1);
      const waiter = message.id !== undefined && pending.get(message.id);
      if (!waiter) continue;
      pending.delete(message.id);
      if (message.error) waiter.reject(new Error(`${waiter.method}: ${message.error.message}`));
      else waiter.resolve(message.result);
    }
  });
  const exited = once(child, 'exit');
  exited.then(() => { for (const w of pending.values()) w.reject(new Error(`chromium exited: ${stderr}`)); });
  const send = (method, params = {}, sessionId) => new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject, method });
    toBrowser.write(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }) + '\0');
  });
  await send('Browser.getVersion');
  return {
    async open(url) {
      const { targetId } = await send('Target.createTarget', { url: 'about:blank' });
      const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
      await send('Page.enable', {}, sessionId);
      await send('Page.navigate', { url }, sessionId);
      const tab = {
        async evaluate(expression) {
          const r = await send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }, sessionId);
          if (r.exceptionDetails) throw new Error(`${expression}: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
          return r.result.value;
        },
        /** Polls `expression` until truthy; resolves its value and how long it took (ms). */
        async waitFor(expression, ms = 10000) {
          const start = Date.now();
          for (;;) {
            const v = await tab.evaluate(expression).catch(() => undefined);
            if (v) return { value: v, ms: Date.now() - start };
            if (Date.now() - start > ms) throw new Error(`not within ${ms} ms: ${expression}`);
            await new Promise((r) => setTimeout(r, 20));
          }
        },
        async screenshot() {
          const { data } = await send('Page.captureScreenshot', { format: 'png' }, sessionId);
          return Buffer.from(data, 'base64');
        },
      };
      return tab;
    },
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        send('Browser.close').catch(() => {});
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
