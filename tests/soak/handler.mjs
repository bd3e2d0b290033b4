// The soak test's function handler: a minimal Lambda Runtime API client (no aws-lambda-ric,
// so a consumer restarted every few seconds starts its runtimes in a few tens of ms).
//   node handler.mjs SIDE LOG_FILE RUN_TOKEN
// For each event it appends "<nonce> <SIDE> <pid>\n" to LOG_FILE (opened O_APPEND, one
// write per line, before it answers: a line means "this invocation ran here"), then answers
//   {"nonce":N,"side":SIDE,"pid":P,"len":BYTES,"sha256":HEX}                  reply "digest"
//   {"nonce":N,"side":SIDE,"pid":P,"len":BYTES,"sha256":HEX,"event":EVENT}    reply "echo"
// EVENT being the event's bytes unchanged. The soak driver writes events as
// {"nonce":"<32 hex>","reply":"echo"|"digest",...}, so both fields are read from the first
// bytes without parsing megabytes of JSON. RUN_TOKEN only marks the process as this run's
// (the driver finds and kills leftovers by it). The process exits when its Runtime API goes
// away (its environment or consumer was killed).
import { createHash } from 'node:crypto';
import { openSync, writeSync } from 'node:fs';
import http from 'node:http';

const [side = 'unknown', logFile = '/dev/null'] = process.argv.slice(2);
const api = process.env.AWS_LAMBDA_RUNTIME_API;
if (!api) {
  console.error('handler.mjs: AWS_LAMBDA_RUNTIME_API is not set');
  process.exit(2);
}
const [host, port] = api.split(':');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const log = openSync(logFile, 'a');
const base = '/2018-06-01/runtime';

function request(method, path, body) {
  return new Promise((resolve, reject) => {
    const headers = body ? { 'content-type': 'application/json', 'content-length': body.length } : {};
    const req = http.request({ host, port: Number(port), method, path, agent, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function handle(event) {
  const head = event.subarray(0, 160).toString('latin1');
  const nonce = /"nonce":"([0-9a-f]{32})"/.exec(head)?.[1] ?? 'none';
  const echo = head.includes('"reply":"echo"');
  writeSync(log, `${nonce} ${side} ${process.pid}\n`);
  const sha256 = createHash('sha256').update(event).digest('hex');
  const fields = `{"nonce":"${nonce}","side":"${side}","pid":${process.pid},"len":${event.length},"sha256":"${sha256}"`;
  return echo ? Buffer.concat([Buffer.from(`${fields},"event":`), event, Buffer.from('}')]) : Buffer.from(`${fields}}`);
}

for (;;) {
  let next;
  try {
    next = await request('GET', `${base}/invocation/next`);
  } catch {
    process.exit(0); // the Runtime API is gone: so is whoever ran us
  }
  if (next.status !== 200) {
    console.error(`handler.mjs: /next answered ${next.status}`);
    process.exit(1);
  }
  const id = next.headers['lambda-runtime-aws-request-id'];
  const reply = handle(next.body);
  try {
    await request('POST', `${base}/invocation/${id}/response`, reply);
  } catch {
    process.exit(0);
  }
}
