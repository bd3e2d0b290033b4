// Shared by connect_languages.test.mjs: the developer's handler in each real runtime client
// (AWS's aws-lambda-ric for Node, funcie's C++ client, a bash+curl bootstrap) run by
// `funcie connect`, invoked from "the cloud" (`funcie emulate` + `funcie wrap`) through a
// real redis-server. Everything started here is stopped by pid, also when a test fails.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { echoBin, funcieBin, ricBin, startEmulate } from './harness.mjs';
import { startConnect } from './tunnel.mjs';

/** The cloud function's timeout in seconds: room for queued invocations on a slow machine. */
export const CLOUD_TIMEOUT_S = 30;

/** A directory with `files` ({name: text}) in it; rm() removes it. */
export function handlerDir(files) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'funcie-lang-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  return { dir, rm: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * The command that runs `handler` (module.export) from `dir` with aws-lambda-ric, as a
 * developer would with `cd dir && npx aws-lambda-ric index.handler` (the runtime client
 * resolves the module against its working directory; env -C sets it and then execs, so
 * the runtime's pid is node's).
 */
export function nodeRuntime(dir, handler) {
  return ['env', '-C', dir, process.execPath, ricBin, handler];
}

/**
 * The cloud side, like startCloud, but the Lambda function has its own name (not the
 * app's), so a test can tell which one the local handler was given. `env` are more
 * function variables; `secretEnv` are set around the runtime as Lambda sets the role's
 * keys (emulate reserves those names).
 */
function startCloudFunction({ url, app, functionName, args, command, env = {}, secretEnv = {} }) {
  const secret = Object.entries(secretEnv).map(([k, v]) => `${k}=${v}`);
  const runtime = command ?? [funcieBin, 'wrap', '--', echoBin, 'cloud'];
  return startEmulate({
    functionName,
    args: ['--env', `FUNCIE_BACKEND=${url}`, '--env', `FUNCIE_APP=${app}`,
      ...Object.entries(env).flatMap(([k, v]) => ['--env', `${k}=${v}`]), ...args],
    command: secret.length ? ['env', ...secret, ...runtime] : runtime,
  });
}

/** A redis-server as a tunnel backend for withConnected. */
export function redisTunnel(redis) {
  return { name: 'Redis', forApp: async () => ({ url: redis.url }) };
}

let appNumber = 0;

/**
 * Starts the cloud side (`funcie emulate --timeout CLOUD_TIMEOUT_S CLOUD_ARGS -- funcie
 * wrap -- echo cloud`, or CLOUD_COMMAND, function `functionName`) and `funcie connect
 * CONNECT_ARGS -- COMMAND` for a fresh app, runs body({ app, functionName, em, local, tunnel }),
 * and always stops both: connect with Ctrl-C (it stops its runtimes), SIGKILL if that takes
 * over 5 s. The broker is `redis`, or `backend` (redisTunnel, or sqsTunnel in sqs.mjs):
 * its forApp(app) gives { url, cloudEnv, cloudSecretEnv, connectArgs, connectEnv } for a
 * fresh app, passed to body as `tunnel`.
 */
export async function withConnected({ redis, backend, command, cloudArgs = [], cloudCommand, connectArgs = [], functionName }, body) {
  const app = `lang-${process.pid}-${++appNumber}`;
  functionName = functionName ?? app;
  const tunnel = await (backend ?? redisTunnel(redis)).forApp(app);
  const em = await startCloudFunction({
    url: tunnel.url,
    app,
    functionName,
    args: ['--timeout', String(CLOUD_TIMEOUT_S), ...cloudArgs],
    command: cloudCommand,
    env: tunnel.cloudEnv,
    secretEnv: tunnel.cloudSecretEnv,
  });
  let local;
  try {
    local = await startConnect({
      url: tunnel.url, app, args: [...(tunnel.connectArgs ?? []), ...connectArgs], command, env: tunnel.connectEnv,
    });
    return await body({ app, functionName, em, local, tunnel });
  } finally {
    await local?.stop('SIGINT');
    await em.stop();
  }
}

/** The most intervals ({start, end}, ms) that are open at one instant. */
export function maxOverlap(intervals) {
  // An end at the same instant as a start is counted first: back to back is not overlap.
  const edges = intervals.flatMap(({ start, end }) => [[start, 1], [end, -1]]);
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let open = 0;
  let most = 0;
  for (const [, delta] of edges) {
    open += delta;
    most = Math.max(most, open);
  }
  return most;
}
