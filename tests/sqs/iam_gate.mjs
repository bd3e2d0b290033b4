// An IAM stand-in in front of a real SQS server, which checks no permissions itself:
//
//   node tests/sqs/iam_gate.mjs --upstream http://127.0.0.1:PORT [--deny ACCESS_KEY_ID]... [--record]
//
// Prints one JSON line, {"endpoint":"http://127.0.0.1:GATE_PORT"}, and proxies every request
// to the upstream, except:
//   - a request signed with a denied access key id (the Authorization header's Credential=)
//     gets AWS's AccessDenied answer in SQS's JSON 1.0 protocol (status 400,
//     x-amzn-query-error "AccessDenied;Sender", __type ...#AccessDeniedException) naming the
//     operation and the queue, as SQS words it;
//   - the next N requests after POST /_gate/fail?count=N&kind=throttle|unavailable get
//     RequestThrottled (400, "RequestThrottled;Sender") or ServiceUnavailable (503).
// GET /_gate/stats answers {"requests":n,"byOperation":{...},"failed":m} (SQS requests only);
// POST /_gate/reset zeroes the counts. With --record, GET /_gate/recorded answers every
// request and response body passed on so far, one after the other (what the queues' owner
// could read). Runs until SIGTERM or SIGINT.
import http from 'node:http';

function parseArgs(argv) {
  const out = { upstream: undefined, deny: new Set(), record: false };
  for (let i = 0; i < argv.length; ++i) {
    if (argv[i] === '--upstream') out.upstream = new URL(argv[++i]);
    else if (argv[i] === '--deny') out.deny.add(argv[++i]);
    else if (argv[i] === '--record') out.record = true;
    else throw new Error(`iam_gate.mjs: unknown argument ${argv[i]}`);
  }
  if (!out.upstream) throw new Error('iam_gate.mjs: --upstream URL is required');
  return out;
}

const options = parseArgs(process.argv.slice(2));
const stats = { requests: 0, byOperation: {}, failed: 0 };
let pending = { count: 0, kind: 'throttle' };
const recorded = [];
const agent = new http.Agent({ keepAlive: true });

function answer(res, status, queryError, type, message) {
  const body = JSON.stringify({ __type: type, message });
  res.writeHead(status, {
    'content-type': 'application/x-amz-json-1.0',
    'x-amzn-requestid': '00000000-0000-0000-0000-000000000000',
    'x-amzn-query-error': queryError,
    'content-length': Buffer.byteLength(body),
    date: new Date().toUTCString(),
  });
  res.end(body);
}

function admin(req, res, url) {
  const send = (value) => {
    const body = JSON.stringify(value);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  if (url.pathname === '/_gate/stats') return send(stats);
  if (url.pathname === '/_gate/recorded') {
    const body = Buffer.concat(recorded);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    return res.end(body);
  }
  if (url.pathname === '/_gate/reset') {
    stats.requests = 0;
    stats.byOperation = {};
    stats.failed = 0;
    pending = { count: 0, kind: 'throttle' };
    return send(stats);
  }
  if (url.pathname === '/_gate/fail') {
    pending = { count: Number(url.searchParams.get('count') ?? 1), kind: url.searchParams.get('kind') ?? 'throttle' };
    return send(pending);
  }
  res.writeHead(404);
  res.end();
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://gate');
  if (url.pathname.startsWith('/_gate/')) return admin(req, res, url);
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const operation = String(req.headers['x-amz-target'] ?? '').replace(/^AmazonSQS\./, '');
    stats.requests += 1;
    stats.byOperation[operation] = (stats.byOperation[operation] ?? 0) + 1;
    const keyId = /Credential=([^/,\s]+)\//.exec(String(req.headers.authorization ?? ''))?.[1];
    if (keyId && options.deny.has(keyId)) {
      let queue = '*';
      try { queue = JSON.parse(body.toString()).QueueUrl ?? queue; } catch {}
      const arn = queue.split('/').length >= 2
        ? `arn:aws:sqs:us-east-1:${queue.split('/').at(-2)}:${queue.split('/').at(-1)}` : queue;
      return answer(res, 400, 'AccessDenied;Sender', 'com.amazon.coral.service#AccessDeniedException',
        `User: arn:aws:iam::123456789012:user/${keyId} is not authorized to perform: sqs:${operation} ` +
        `on resource: ${arn} because no identity-based policy allows the sqs:${operation} action`);
    }
    if (pending.count > 0) {
      pending.count -= 1;
      stats.failed += 1;
      if (pending.kind === 'unavailable') {
        return answer(res, 503, 'ServiceUnavailable;Server', 'com.amazonaws.sqs#ServiceUnavailable',
          'Service Unavailable');
      }
      return answer(res, 400, 'RequestThrottled;Sender', 'com.amazon.coral.availability#ThrottlingException',
        'Rate exceeded');
    }
    const upstream = http.request({
      host: options.upstream.hostname,
      port: options.upstream.port,
      method: req.method,
      path: req.url,
      headers: req.headers,
      agent,
    }, (up) => {
      if (options.record) up.on('data', (c) => recorded.push(c));
      res.writeHead(up.statusCode, up.headers);
      up.pipe(res);
    });
    // A client that gives up (a closed session's long poll) gives up upstream too, as it
    // would without the gate in between.
    res.on('close', () => { if (!res.writableFinished) upstream.destroy(); });
    upstream.on('error', (e) => {
      if (res.destroyed) return;
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`iam_gate: upstream failed: ${e.message}`);
    });
    if (options.record) recorded.push(body);
    upstream.end(body);
  });
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ endpoint: `http://127.0.0.1:${server.address().port}` })}\n`);
});
const stop = () => {
  setTimeout(() => process.exit(0), 500).unref();
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
