// The Runtime API that `funcie emulate` serves, as a runtime sees it, spoken by hand: the
// fixture runtime only prints AWS_LAMBDA_RUNTIME_API and sleeps, and each test plays the
// runtime's part with raw HTTP against that address while a caller invokes the function.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { alive, repoRoot, startEmulate } from './lib/harness.mjs';

const printApi = path.join(repoRoot, 'tests/integration/fixtures/emulate/print_api.sh');
const TIMEOUT_S = 5;
const MAX_POST = 6 * 1024 * 1024 + 100; // what a runtime may POST
const NEXT = '/2018-06-01/runtime/invocation/next';
const response = (id) => `/2018-06-01/runtime/invocation/${id}/response`;
const error = (id) => `/2018-06-01/runtime/invocation/${id}/error`;
const INIT_ERROR = '/2018-06-01/runtime/init/error';

/** One HTTP request on its own connection; resolves { status, headers, body (string) }. */
function request(url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method,
      agent: false,
      headers: body === undefined ? headers : { 'content-length': Buffer.byteLength(body), ...headers },
    }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({
        status: res.statusCode,
        headers: res.headers,
        body: Buffer.concat(chunks).toString(),
      }));
    });
    req.on('error', (e) => reject(new Error(`${method} ${url}: no HTTP answer, the connection failed: ${e.code ?? e.message}`)));
    req.end(body);
  });
}

/**
 * Starts emulate with the print-the-address runtime and runs `body(s)` with:
 *   s.invoke(event, headers)  starts an invocation, resolves with the caller's answer
 *   s.runtime()               resolves { api, pid } once the runtime has started
 *   s.rt(method, path, opts)  a request to the Runtime API
 *   s.next()                  GET /next, with the time it was sent
 * Stops emulate afterwards, whatever happened.
 */
async function byHand(body) {
  const em = await startEmulate({
    args: ['--timeout', String(TIMEOUT_S), '--concurrency', '1'],
    command: ['bash', printApi],
  });
  let stdout = '';
  em.child.stdout.on('data', (d) => { stdout += d; });
  let runtime;
  const s = {
    em,
    invoke(event, headers = {}) {
      const answer = request(em.invokeUrl(), {
        method: 'POST',
        body: typeof event === 'string' ? event : JSON.stringify(event),
        headers,
      });
      // A test that fails before awaiting its caller reports its own error, not this one.
      answer.catch(() => {});
      return answer;
    },
    async runtime() {
      for (let i = 0; !runtime && i < 250; i++) {
        const m = stdout.match(/FIXTURE_RUNTIME_API=(\S+) PID=(\d+)/);
        if (m) runtime = { api: m[1], pid: Number(m[2]) };
        else await sleep(20);
      }
      assert.ok(runtime, `the runtime never printed its Runtime API address: ${stdout} ${em.stderr()}`);
      return runtime;
    },
    async rt(method, p, opts = {}) {
      const { api } = await s.runtime();
      return request(`http://${api}${p}`, { method, ...opts });
    },
    async next() {
      const { api } = await s.runtime();
      const sent = Date.now();
      const res = await request(`http://${api}${NEXT}`);
      res.sent = sent;
      res.id = res.headers['lambda-runtime-aws-request-id'];
      return res;
    },
  };
  try {
    return await body(s);
  } finally {
    await em.stop();
  }
}

function assertApiError(res, status, errorType) {
  assert.equal(res.status, status, `expected ${status} ${errorType}, got ${res.status}: ${res.body}`);
  const parsed = JSON.parse(res.body);
  assert.equal(parsed.errorType, errorType, res.body);
  assert.equal(typeof parsed.errorMessage, 'string');
}

function assertAccepted(res) {
  assert.equal(res.status, 202, res.body);
}

function assertSuccess(answer, body) {
  assert.equal(answer.status, 200, answer.body);
  assert.equal(answer.headers['x-amz-function-error'], undefined, answer.body);
  assert.equal(answer.body, body);
}

test('/next hands over the event byte for byte with the Lambda headers; the response goes back byte for byte', async () => {
  await byHand(async (s) => {
    const event = '{ "text" : "h\u00e9llo \\u00e9 \u2603",\n  "n" : [1, 2.50, -0e0], "nested":{"a":null} }';
    const clientContext = { client: { installation_id: 'inst-1' }, custom: { k: 'v' }, env: { platform: 'test' } };
    const trace = 'Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1';
    const caller = s.invoke(event, {
      'X-Amz-Client-Context': Buffer.from(JSON.stringify(clientContext)).toString('base64'),
      'X-Amzn-Trace-Id': trace,
    });

    const next = await s.next();
    assert.equal(next.status, 200, next.body);
    assert.equal(next.body, event, 'the event, byte for byte');
    assert.match(next.id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const deadline = Number(next.headers['lambda-runtime-deadline-ms']);
    const expected = next.sent + TIMEOUT_S * 1000;
    assert.ok(Math.abs(deadline - expected) < 1000,
      `deadline ${deadline} should be about now + ${TIMEOUT_S} s (${expected})`);
    assert.equal(next.headers['lambda-runtime-invoked-function-arn'], 'arn:aws:lambda:us-east-1:000000000000:function:fn');
    assert.equal(next.headers['lambda-runtime-trace-id'], trace);
    assert.deepEqual(JSON.parse(next.headers['lambda-runtime-client-context']), clientContext);

    const result = '{"b" :  "\u00fcn\u00efcode \u2713" ,"n":1.50}  ';
    assertAccepted(await s.rt('POST', response(next.id), { body: result }));
    const answer = await caller;
    assertSuccess(answer, result);
    assert.equal(answer.headers['x-amzn-requestid'], next.id, 'the caller sees the same request id');
  });
});

test('GET /next blocks until an invocation arrives', async () => {
  await byHand(async (s) => {
    const first = s.invoke({ n: 1 });
    const one = await s.next();
    assertAccepted(await s.rt('POST', response(one.id), { body: '"one"' }));
    assertSuccess(await first, '"one"');

    let settled = false;
    const pending = s.next().finally(() => { settled = true; });
    await sleep(700);
    assert.equal(settled, false, '/next must wait while there is no invocation');

    const second = s.invoke({ n: 2 });
    const two = await pending;
    assert.equal(two.status, 200);
    assert.equal(two.body, '{"n":2}');
    assert.notEqual(two.id, one.id);
    assert.equal(two.headers['lambda-runtime-client-context'], undefined, 'no client context when the caller sent none');
    assert.match(two.headers['lambda-runtime-trace-id'], /^Root=1-[0-9a-f]{8}-[0-9a-f]{24}/, 'a trace id is made up');
    assertAccepted(await s.rt('POST', response(two.id), { body: '"two"' }));
    assertSuccess(await second, '"two"');
  });
});

test('a POST for an unknown or malformed request id is 400 InvalidRequestID and leaves the invocation alone', async () => {
  await byHand(async (s) => {
    const caller = s.invoke({ n: 1 });
    const next = await s.next();
    const stranger = '00000000-0000-0000-0000-000000000000';
    assertApiError(await s.rt('POST', response(stranger), { body: '"x"' }), 400, 'InvalidRequestID');
    assertApiError(await s.rt('POST', error(stranger), { body: '{}' }), 400, 'InvalidRequestID');
    assertApiError(await s.rt('POST', response('bad!id'), { body: '"x"' }), 400, 'InvalidRequestID');
    assertAccepted(await s.rt('POST', response(next.id), { body: '"right"' }));
    assertSuccess(await caller, '"right"');
  });
});

test('answering the same request twice is 403 InvalidStateTransition; the caller keeps the first answer', async () => {
  await byHand(async (s) => {
    const caller = s.invoke({ n: 1 });
    const next = await s.next();
    assertAccepted(await s.rt('POST', response(next.id), { body: '"first"' }));
    assertApiError(await s.rt('POST', response(next.id), { body: '"second"' }), 403, 'InvalidStateTransition');
    assertApiError(await s.rt('POST', error(next.id), { body: '{}' }), 403, 'InvalidStateTransition');
    assertSuccess(await caller, '"first"');
  });
});

test('GET /next while an invocation is in flight is 403, and the invocation can still be answered', async () => {
  await byHand(async (s) => {
    const caller = s.invoke({ n: 1 });
    const next = await s.next();
    assertApiError(await s.rt('GET', NEXT), 403, 'InvalidStateTransition');
    assertAccepted(await s.rt('POST', response(next.id), { body: '"still mine"' }));
    assertSuccess(await caller, '"still mine"');
  });
});

test('POST /init/error is accepted before the first /next (the caller gets it) and 403 after it', async () => {
  await byHand(async (s) => {
    const failing = s.invoke({ n: 1 });
    const { pid } = await s.runtime();
    const posted = await s.rt('POST', INIT_ERROR, {
      headers: { 'Lambda-Runtime-Function-Error-Type': 'Runtime.ImportModuleError' },
      body: JSON.stringify({ errorMessage: "Cannot find module 'app'", errorType: 'Runtime.ImportModuleError', stackTrace: [] }),
    });
    assertAccepted(posted);
    const answer = await failing;
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['x-amz-function-error'], 'Unhandled');
    assert.equal(JSON.parse(answer.body).errorType, 'Runtime.ImportModuleError');
    assert.equal(JSON.parse(answer.body).errorMessage, "Cannot find module 'app'");
    for (let i = 0; i < 50 && alive(pid); i++) await sleep(20);
    assert.equal(alive(pid), false, 'a runtime that failed its init is stopped');
  });
  await byHand(async (s) => {
    const caller = s.invoke({ n: 1 });
    const next = await s.next();
    assertApiError(await s.rt('POST', INIT_ERROR, { body: '{"errorMessage":"late","errorType":"Late"}' }),
      403, 'InvalidStateTransition');
    assertAccepted(await s.rt('POST', response(next.id), { body: '"fine"' }));
    assertSuccess(await caller, '"fine"');
  });
});

test('a function error reaches the caller: JSON as posted, or the type from the header when the body is not JSON', async () => {
  await byHand(async (s) => {
    let caller = s.invoke({ n: 1 });
    let next = await s.next();
    assertAccepted(await s.rt('POST', error(next.id), {
      headers: { 'Lambda-Runtime-Function-Error-Type': 'Runtime.CustomCrash' },
      body: 'segmentation fault in the handler (not JSON)',
    }));
    let answer = await caller;
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['x-amz-function-error'], 'Unhandled');
    assert.equal(JSON.parse(answer.body).errorType, 'Runtime.CustomCrash', answer.body);

    caller = s.invoke({ n: 2 });
    next = await s.next();
    const posted = { errorMessage: 'bad input', errorType: 'ValidationError', stackTrace: ['at handler (app.js:3)'] };
    assertAccepted(await s.rt('POST', error(next.id), {
      headers: { 'Lambda-Runtime-Function-Error-Type': 'ValidationError' },
      body: JSON.stringify(posted),
    }));
    answer = await caller;
    assert.equal(answer.headers['x-amz-function-error'], 'Unhandled');
    assert.deepEqual(JSON.parse(answer.body), posted);
  });
});

test('a response of 6 MiB + 100 bytes passes; one byte more is 413 and the caller gets Function.ResponseSizeTooLarge', async () => {
  await byHand(async (s) => {
    let caller = s.invoke({ n: 1 });
    let next = await s.next();
    const largest = `"${'r'.repeat(MAX_POST - 2)}"`;
    assertAccepted(await s.rt('POST', response(next.id), { body: largest }));
    const big = await caller;
    assert.equal(big.status, 200);
    assert.equal(big.body.length, MAX_POST);
    assert.ok(big.body === largest, 'the largest response comes back whole');

    caller = s.invoke({ n: 2 });
    next = await s.next();
    const start = performance.now();
    const refused = await s.rt('POST', response(next.id), { body: `"${'r'.repeat(MAX_POST - 1)}"` });
    assertApiError(refused, 413, 'RequestEntityTooLarge');
    const answer = await caller;
    assert.ok(performance.now() - start < 2000, 'the caller is answered at once, not at the timeout');
    assert.equal(answer.headers['x-amz-function-error'], 'Unhandled');
    assert.equal(JSON.parse(answer.body).errorType, 'Function.ResponseSizeTooLarge', answer.body);

    // The runtime goes on with the next invocation.
    caller = s.invoke({ n: 3 });
    next = await s.next();
    assert.equal(next.body, '{"n":3}');
    assertAccepted(await s.rt('POST', response(next.id), { body: '"small"' }));
    assertSuccess(await caller, '"small"');
  });
});

test('unknown routes are 404 and disturb nothing', async () => {
  await byHand(async (s) => {
    const caller = s.invoke({ n: 1 });
    await s.runtime();
    for (const [method, p] of [
      ['GET', '/'],
      ['GET', '/2018-06-01/runtime/invocation/nope'],
      ['PUT', NEXT],
      ['POST', NEXT],
      ['GET', INIT_ERROR],
      ['POST', '/2018-06-01/runtime/invocation/00000000-0000-0000-0000-000000000000/finish'],
      ['POST', '/2020-01-01/runtime/invocation/next'],
    ]) {
      const res = await s.rt(method, p, method === 'GET' ? {} : { body: '{}' });
      assert.equal(res.status, 404, `${method} ${p}: ${res.status} ${res.body}`);
    }
    const next = await s.next();
    assert.equal(next.body, '{"n":1}');
    assertAccepted(await s.rt('POST', response(next.id), { body: '"ok"' }));
    assertSuccess(await caller, '"ok"');
  });
});

/** Writes `bytes` on a fresh TCP connection; resolves with what came back once it closes. */
function raw(api, bytes, ms = 3000) {
  const [host, port] = api.split(':');
  return new Promise((resolve) => {
    const socket = net.connect(Number(port), host);
    const chunks = [];
    const timer = setTimeout(() => { socket.destroy(); resolve({ closed: false, text: Buffer.concat(chunks).toString('latin1') }); }, ms);
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', () => {});
    socket.on('close', () => { clearTimeout(timer); resolve({ closed: true, text: Buffer.concat(chunks).toString('latin1') }); });
    socket.write(bytes);
  });
}

test('garbage on a raw TCP connection gets a 400 or a close, and the server keeps serving', async () => {
  await byHand(async (s) => {
    const caller = s.invoke({ n: 1 });
    const { api } = await s.runtime();
    const garbage = [
      Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x00, 0xff, 0x0d, 0x0a, 0x0d, 0x0a]),
      'NOT HTTP AT ALL\r\n\r\n',
      'GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\nContent-Length: twelve\r\n\r\n',
      'POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n',
      `GET / HTTP/1.1\r\nX-Big: ${'h'.repeat(64 * 1024)}\r\n\r\n`,
    ];
    for (const bytes of garbage) {
      const what = JSON.stringify(String(bytes).slice(0, 60));
      const got = await raw(api, bytes);
      assert.ok(got.closed, `${what}: the server closes the connection`);
      assert.ok(got.text === '' || /^HTTP\/1\.[01] (400|413|431) /.test(got.text),
        `${what}: answered ${JSON.stringify(got.text.slice(0, 80))}`);
    }
    const next = await s.next();
    assert.equal(next.body, '{"n":1}');
    assertAccepted(await s.rt('POST', response(next.id), { body: '"survived"' }));
    assertSuccess(await caller, '"survived"');
  });
});
