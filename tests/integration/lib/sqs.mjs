// Shared by the SQS integration tests: a real SQS server from npm (local-aws-sqs or fauxqs,
// tests/sqs/sqs_server.mjs) and the IAM stand-in in front of it (tests/sqs/iam_gate.mjs),
// each in a process of its own so that a test can kill it, stopped by pid in stop(); and an
// AWS SDK SQS client for them with dummy credentials.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import path from 'node:path';
import { echoBin, funcieBin, peersDir, startEmulate } from './harness.mjs';
import { startConnect } from './tunnel.mjs';

const sqsDir = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../sqs');
const require = createRequire(path.join(peersDir, 'package.json'));

/** Runs tests/sqs/<script> with args; resolves { child, status } once it printed its status line. */
async function startScript(script, args) {
  const child = spawn(process.execPath, [path.join(sqsDir, script), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  const status = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not start within 20 s: ${err}`)), 20000);
    child.stdout.on('data', (d) => {
      out += d;
      const eol = out.indexOf('\n');
      if (eol < 0) return;
      clearTimeout(timer);
      try { resolve(JSON.parse(out.slice(0, eol))); } catch (e) { reject(e); }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited at start (${code ?? signal}): ${err}`));
    });
  });
  const stop = async (signal = 'SIGTERM') => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };
  return { child, status, stop, stderr: () => err };
}

/**
 * Starts an SQS server: kind "local" (local-aws-sqs) or "faux" (fauxqs), with `queues`
 * ([{ name, maxMessageSize }]) created. Returns { kind, endpoint, urls: { name: url }, pid,
 * stop(signal) }. fauxqs issues queue URLs whose host does not resolve
 * (http://sqs.us-east-1.127.0.0.1:PORT/000000000000/NAME): talk to `endpoint`, pass the URL.
 * local-aws-sqs waits the whole long poll when MaxNumberOfMessages > 1
 * (FUNCIE_SQS_RECEIVE_BATCH=1 for it).
 */
export async function startSqs({ kind = 'local', queues = [] } = {}) {
  const args = ['--kind', kind];
  for (const q of queues) args.push('--queue', q.maxMessageSize ? `${q.name}:${q.maxMessageSize}` : q.name);
  const { child, status, stop } = await startScript('sqs_server.mjs', args);
  const endpoint = status.endpoint;
  /** Creates more queues ([{ name, maxMessageSize }]) and resolves their URLs, in order. */
  const createQueues = async (more) => {
    const { CreateQueueCommand } = sqsSdk();
    const client = sqsClient(endpoint);
    const urls = [];
    for (const q of more) {
      const Attributes = q.maxMessageSize ? { MaximumMessageSize: String(q.maxMessageSize) } : undefined;
      urls.push((await client.send(new CreateQueueCommand({ QueueName: q.name, Attributes }))).QueueUrl);
    }
    return urls;
  };
  return { kind, endpoint, urls: status.urls, pid: child.pid, stop, createQueues };
}

/**
 * Starts the IAM stand-in in front of `upstream` (an SQS endpoint): requests signed with an
 * access key id in `denyKeyIds` get AccessDenied. Returns { endpoint, pid, stop(),
 * fail(count, kind = "throttle" | "unavailable"), reset(), stats() }.
 */
export async function startIamGate({ upstream, denyKeyIds = [] }) {
  const args = ['--upstream', upstream];
  for (const id of denyKeyIds) args.push('--deny', id);
  const { child, status, stop } = await startScript('iam_gate.mjs', args);
  const admin = async (what) => {
    const res = await fetch(`${status.endpoint}/_gate/${what}`, { method: 'POST' });
    if (res.status !== 200) throw new Error(`iam_gate ${what}: ${res.status}`);
    return res.json();
  };
  return {
    endpoint: status.endpoint,
    pid: child.pid,
    stop,
    fail: (count, kind = 'throttle') => admin(`fail?count=${count}&kind=${kind}`),
    reset: () => admin('reset'),
    /** { requests, byOperation: { SendMessage: n, ... }, failed } */
    stats: () => admin('stats'),
  };
}

/** Dummy credentials the servers accept (neither checks signatures). */
export const dummyCredentials = { accessKeyId: 'AKIDFUNCIETEST', secretAccessKey: 'funcie-test-secret' };

/** An @aws-sdk/client-sqs SQSClient for `endpoint` (us-east-1, dummy credentials). */
export function sqsClient(endpoint, { credentials = dummyCredentials, region = 'us-east-1' } = {}) {
  const { SQSClient } = require('@aws-sdk/client-sqs');
  return new SQSClient({ endpoint, region, credentials });
}

/** The @aws-sdk/client-sqs module (commands), resolved from tests/peers. */
export function sqsSdk() {
  return require('@aws-sdk/client-sqs');
}

let tunnelQueues = 0;

/**
 * The tunnel over an SQS server from startSqs, for tests that run on several backends: a
 * fresh queue pair and app name per call of target(). Returns { app, request, response,
 * env, backendArgs, cloud({ env, args, command }), connect({ args, env, command }) }: env
 * is what both sides need (credentials, endpoint, region, and on local-aws-sqs one message
 * per long poll, docs/sqs.md); backendArgs the flags that name the tunnel for
 * `funcie connect` / `status`.
 */
export async function sqsTunnelTarget(sqs, { maxMessageSize = 1048576, env: extra = {} } = {}) {
  const n = ++tunnelQueues;
  const [request, response] = await sqs.createQueues([
    { name: `treq-${process.pid}-${n}`, maxMessageSize },
    { name: `tresp-${process.pid}-${n}`, maxMessageSize },
  ]);
  const app = `sqs-t${process.pid}-${n}`;
  const env = {
    AWS_ACCESS_KEY_ID: 'AKIAFUNCIETEST000002',
    AWS_SECRET_ACCESS_KEY: 'test-secret-never-logged',
    AWS_ENDPOINT_URL_SQS: sqs.endpoint,
    AWS_REGION: 'us-east-1',
    ...(sqs.kind === 'local' ? { FUNCIE_SQS_RECEIVE_BATCH: '1' } : {}),
    ...extra,
  };
  const queueArgs = ['--request-queue', request, '--response-queue', response];
  return {
    app,
    request,
    response,
    env,
    backendArgs: ['--backend', 'sqs://', '--app', app, ...queueArgs],
    /** funcie emulate whose runtime is `funcie wrap -- echo cloud` (or `command`). */
    cloud({ env: fnExtra = {}, args = [], command } = {}) {
      const fnEnv = { FUNCIE_BACKEND: 'sqs://', FUNCIE_APP: app, FUNCIE_REQUEST_QUEUE_URL: request, FUNCIE_RESPONSE_QUEUE_URL: response, ...env, ...fnExtra };
      // Lambda gives the role's keys in the environment; emulate reserves those names, so
      // they are set around the runtime as Lambda would.
      const reserved = (k) => k.startsWith('AWS_ACCESS') || k.startsWith('AWS_SECRET');
      const around = Object.entries(fnEnv).filter(([k]) => reserved(k));
      const plain = Object.entries(fnEnv).filter(([k]) => !reserved(k) && k !== 'AWS_REGION');
      return startEmulate({
        functionName: app,
        args: [...plain.flatMap(([k, v]) => ['--env', `${k}=${v}`]), ...args],
        command: ['env', ...around.map(([k, v]) => `${k}=${v}`), ...(command ?? [funcieBin, 'wrap', '--', echoBin, 'cloud'])],
      });
    },
    /** funcie connect on this queue pair. */
    connect({ args = [], env: more = {}, command, waitServing = true } = {}) {
      return startConnect({ url: 'sqs://', app, args: [...queueArgs, ...args], env: { ...env, ...more }, command, waitServing });
    },
  };
}

let tunnelNumber = 0;

/**
 * An SQS server (startSqs) as a tunnel backend for withConnected (languages.mjs): each app
 * gets a fresh queue pair of `maxMessageSize` bytes. The returned { ..., queues, depth() }
 * of forApp says how many messages are left on the pair (visible and in flight).
 */
export function sqsTunnel(sqs, { maxMessageSize = 262144 } = {}) {
  const aws = { AWS_ENDPOINT_URL_SQS: sqs.endpoint, AWS_REGION: 'us-east-1' };
  // local-aws-sqs holds a batched long poll for its whole wait (docs/sqs.md).
  if (sqs.kind === 'local') aws.FUNCIE_SQS_RECEIVE_BATCH = '1';
  const keys = { AWS_ACCESS_KEY_ID: dummyCredentials.accessKeyId, AWS_SECRET_ACCESS_KEY: dummyCredentials.secretAccessKey };
  return {
    name: sqs.kind === 'local' ? 'local-aws-sqs' : 'fauxqs',
    async forApp(app) {
      const n = ++tunnelNumber;
      const [request, response] = await sqs.createQueues([
        { name: `sreq-${process.pid}-${n}`, maxMessageSize },
        { name: `sresp-${process.pid}-${n}`, maxMessageSize },
      ]);
      const queues = { FUNCIE_REQUEST_QUEUE_URL: request, FUNCIE_RESPONSE_QUEUE_URL: response };
      const { AWS_REGION, ...cloudAws } = aws;  // emulate sets AWS_REGION itself
      return {
        url: 'sqs://',
        queues: { request, response },
        cloudEnv: { ...queues, ...cloudAws },
        cloudSecretEnv: keys,
        connectArgs: ['--request-queue', request, '--response-queue', response],
        connectEnv: { ...aws, ...keys },
        async depth() {
          const { GetQueueAttributesCommand } = sqsSdk();
          const client = sqsClient(sqs.endpoint);
          let total = 0;
          for (const QueueUrl of [request, response]) {
            const r = await client.send(new GetQueueAttributesCommand({
              QueueUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
            }));
            total += Number(r.Attributes.ApproximateNumberOfMessages) + Number(r.Attributes.ApproximateNumberOfMessagesNotVisible);
          }
          client.destroy();
          return total;
        },
      };
    },
  };
}
