// Laptop round trips per forwarded invocation on Redis (issue 19, docs/routing.md): the
// function (`funcie emulate -- funcie wrap -- echo`) talks to redis-server directly, `funcie
// connect` through a TCP proxy that delays each direction by DELAY ms (the laptop's link).
// Prints the median added latency of a forwarded invocation over the same invocation run by
// the function's own code, in round trips of the delayed link (a PING through the proxy).
//
// With --function-delay-ms N the function's own link is delayed too (N ms each way), and
// the figures are also given in its round trips, against the same echo function without
// funcie (`funcie emulate -- echo`).
//
//   node bench/laptop_link.mjs [--delay-ms 10] [--function-delay-ms 0] [--count 40] [--route]
//   (FUNCIE_BIN, FUNCIE_EXAMPLE_ECHO: the binaries; default build/)
import net from 'node:net';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const funcie = process.env.FUNCIE_BIN ?? path.join(root, 'build/funcie');
const echo = process.env.FUNCIE_EXAMPLE_ECHO ?? path.join(root, 'build/examples/funcie_example_echo');
const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const delay = arg('--delay-ms', 10);
const functionDelay = arg('--function-delay-ms', 0);
const count = arg('--count', 40);
const routed = process.argv.includes('--route');

const freePort = () => new Promise((resolve) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const children = [];
function start(cmd, args) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', () => {});
  return { child, waitFor: async (re) => { for (;;) { const m = out.match(re); if (m) return m; await sleep(20); } } };
}

// The laptop's link: each chunk passed on DELAY ms later, in order.
function delayProxy(port, target, delay) {
  return net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.on('data', (d) => setTimeout(() => upstream.write(d), delay));
    upstream.on('data', (d) => setTimeout(() => client.write(d), delay));
    const end = () => { client.destroy(); upstream.destroy(); };
    client.on('close', end); upstream.on('close', end);
    client.on('error', end); upstream.on('error', end);
  }).listen(port, '127.0.0.1');
}

async function pingThrough(port) {
  const s = net.connect(port, '127.0.0.1');
  s.setNoDelay(true);
  await once(s, 'connect');
  const times = [];
  for (let i = 0; i < 15; ++i) {
    const t0 = performance.now();
    s.write('PING\r\n');
    await once(s, 'data');
    times.push(performance.now() - t0);
  }
  s.destroy();
  return median(times);
}

const redisPort = await freePort();
const proxyPort = await freePort();
start('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
await sleep(300);
const proxy = delayProxy(proxyPort, redisPort, delay);
const functionPort = await freePort();
const functionProxy = delayProxy(functionPort, redisPort, functionDelay);
const app = 'bench-link';
const em = start(funcie, ['emulate', '--function', app, '--port', '0', '--timeout', '30',
  '--env', `FUNCIE_BACKEND=redis://127.0.0.1:${functionPort}`, '--env', `FUNCIE_APP=${app}`, '--', funcie, 'wrap', '--', echo, 'cloud']);
const [, url] = await em.waitFor(/listening on (http:\/\/\S+)/);
let invokeUrl = `${url}/2015-03-31/functions/${app}/invocations`;
const plain = start(funcie, ['emulate', '--function', app, '--port', '0', '--timeout', '30', '--', echo, 'cloud']);
const [, plainUrl] = await plain.waitFor(/listening on (http:\/\/\S+)/);
const context = Buffer.from(JSON.stringify({ custom: { dev: 'ada' } })).toString('base64');
async function invokeTimes(expect) {
  const times = [];
  for (let i = 0; i < count; ++i) {
    const t0 = performance.now();
    const r = await fetch(invokeUrl, { method: 'POST', body: '{"where":true}', headers: { 'X-Amz-Client-Context': context } });
    const body = await r.text();
    times.push(performance.now() - t0);
    if (!body.includes(expect)) throw new Error(`expected ${expect}, got ${body}`);
  }
  return times.slice(Math.min(5, count - 1));
}

try {
  const link = await pingThrough(proxyPort);
  const functionLink = functionDelay > 0 ? await pingThrough(functionPort) : 0;
  const ownUrl = invokeUrl;
  invokeUrl = `${plainUrl}/2015-03-31/functions/${app}/invocations`;
  const bare = median(await invokeTimes('cloud'));
  invokeUrl = ownUrl;
  const cloud = median(await invokeTimes('cloud'));
  const connect = start(funcie, ['connect', '--backend', `redis://127.0.0.1:${proxyPort}`, '--app', app,
    ...(routed ? ['--route', 'context:/custom/dev=ada'] : []), '--', echo, 'local']);
  await connect.waitFor(/serving app/);
  await sleep(1000);
  const local = median(await invokeTimes('local'));
  console.log(`laptop link: ${delay} ms each way, PING through it ${link.toFixed(1)} ms${routed ? '; session with a route' : ''}`);
  const inFunctionTrips = (ms) => (functionLink > 0 ? `, ${(ms / functionLink).toFixed(2)} function round trips (PING ${functionLink.toFixed(1)} ms)` : '');
  console.log(`without funcie: median ${bare.toFixed(1)} ms`);
  console.log(`nobody connected (function's own code under funcie wrap): median ${cloud.toFixed(1)} ms; added ${(cloud - bare).toFixed(1)} ms${inFunctionTrips(cloud - bare)}`);
  console.log(`forwarded: median ${local.toFixed(1)} ms; added ${(local - bare).toFixed(1)} ms = ${((local - bare) / link).toFixed(2)} laptop round trips`);
} finally {
  proxy.close();
  functionProxy.close();
  for (const c of children.reverse()) c.kill('SIGTERM');
}
