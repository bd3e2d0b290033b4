// A real SQS server from npm on a free loopback port, for the C++ tests (sqs_server.hpp) and
// the Node integration tests (integration/lib/sqs.mjs):
//
//   node tests/sqs/sqs_server.mjs --kind local|faux [--queue NAME[:MAX_MESSAGE_BYTES]]...
//
// local: local-aws-sqs, faux: fauxqs (both in tests/peers). Creates the queues through the
// server's own CreateQueue (our client has none), then prints one JSON line on stdout,
//   {"kind":"faux","endpoint":"http://127.0.0.1:PORT","urls":{"NAME":"URL",...}}
// and serves until SIGTERM or SIGINT. Queue URLs are the servers' own: fauxqs issues
// http://sqs.us-east-1.127.0.0.1:PORT/000000000000/NAME, whose host does not resolve.
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const peers = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../peers/node_modules');

function parseArgs(argv) {
  const out = { kind: 'local', queues: [] };
  for (let i = 0; i < argv.length; ++i) {
    const arg = argv[i];
    if (arg === '--kind') out.kind = argv[++i];
    else if (arg === '--queue') {
      const [name, size] = argv[++i].split(':');
      out.queues.push({ name, maxMessageSize: size ? Number(size) : undefined });
    } else throw new Error(`sqs_server.mjs: unknown argument ${arg}`);
  }
  if (out.kind !== 'local' && out.kind !== 'faux') throw new Error(`sqs_server.mjs: --kind local|faux, not ${out.kind}`);
  return out;
}

async function start(kind) {
  if (kind === 'local') {
    const { createSqsServer } = await import(pathToFileURL(path.join(peers, 'local-aws-sqs/dist/index.js')));
    const server = await createSqsServer({ port: 0, hostname: '127.0.0.1' });
    const { port } = server.address();
    return { endpoint: `http://127.0.0.1:${port}`, stop: () => server.close() };
  }
  const { startFauxqs } = await import(pathToFileURL(path.join(peers, 'fauxqs/dist/app.js')));
  const server = await startFauxqs({ port: 0, logger: false, host: '127.0.0.1' });
  return { endpoint: `http://127.0.0.1:${server.port}`, stop: () => server.stop() };
}

/** One call of SQS's JSON 1.0 protocol, with a well-formed but unsigned Authorization. */
async function sqsCall(endpoint, operation, body) {
  const res = await fetch(`${endpoint}/`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-amz-json-1.0',
      'x-amz-target': `AmazonSQS.${operation}`,
      authorization: 'AWS4-HMAC-SHA256 Credential=AKIDSQSSERVER/20240101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=00',
    },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`sqs_server.mjs: ${operation} answered ${res.status}: ${text}`);
  return JSON.parse(text);
}

const options = parseArgs(process.argv.slice(2));
const server = await start(options.kind);
const urls = {};
for (const q of options.queues) {
  const Attributes = {};
  if (q.maxMessageSize) Attributes.MaximumMessageSize = String(q.maxMessageSize);
  const created = await sqsCall(server.endpoint, 'CreateQueue', { QueueName: q.name, Attributes });
  urls[q.name] = created.QueueUrl;
}
process.stdout.write(`${JSON.stringify({ kind: options.kind, endpoint: server.endpoint, urls })}\n`);
const stop = async () => {
  setTimeout(() => process.exit(0), 1000).unref();  // kept-alive connections may hold it open
  try { await server.stop(); } finally { process.exit(0); }
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
