// `funcie wrap` is invisible: whatever it does not forward reaches Lambda's Runtime API exactly
// as the runtime sent it. A recording fake of the Runtime API (lib/recording_runtime_api.mjs)
// takes down every request a runtime sends, byte for byte and with arrival times, once with
// the runtime talking to it directly and once with `funcie wrap` in between (nobody connected,
// forwarding off): the two recordings must be the same, and each chunk of a streamed
// response must arrive while the runtime is still writing the next ones.
//
// The one request that differs by design is GET /next: wrap asks for the invocation itself
// (it may forward it) and answers CMD's /next from its own Runtime API.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { funcieBin, repoRoot, ricBin } from './lib/harness.mjs';
import { startRecordingRuntimeApi } from './lib/recording_runtime_api.mjs';

const nodeFixtures = path.join(repoRoot, 'tests/integration/fixtures/node');
const bashRuntime = path.join(repoRoot, 'tests/integration/fixtures/wrap/streaming_bootstrap.sh');
const nextHeadersRuntime = path.join(repoRoot, 'tests/integration/fixtures/wrap/next_headers_bootstrap.sh');
const earlyAnswerRuntime = path.join(repoRoot, 'tests/integration/fixtures/wrap/early_answer_bootstrap.sh');
const ric = (handler) => [process.execPath, ricBin, handler];
const wrapped = (command) => [funcieBin, 'wrap', '--', ...command];

let fake;
before(async () => { fake = await startRecordingRuntimeApi(); });
after(async () => { await fake?.close(); });

/**
 * Runs `command` as the runtime against the recording Runtime API until it has sent `posts`
 * requests for `events`, then stops it. Returns the recorded requests and its output.
 */
async function record(command, { handler, events, posts = events.length, answerEarlyOver }) {
  fake.reset(events, { answerEarlyOver });
  const env = { ...process.env, AWS_LAMBDA_RUNTIME_API: fake.address, _HANDLER: handler ?? '',
    LAMBDA_TASK_ROOT: nodeFixtures, AWS_LAMBDA_FUNCTION_NAME: 'recorded', AWS_REGION: 'us-east-1' };
  delete env.FUNCIE_BACKEND;
  // Its own process group, stopped whole: a runtime's child left behind (curl waiting in
  // /next) would take the next recording's event.
  const child = spawn(command[0], command.slice(1), { cwd: nodeFixtures, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  try {
    await fake.waitForPosts(posts);
  } catch (e) {
    throw new Error(`${e.message}; the runtime said: ${output}`);
  } finally {
    const exited = once(child, 'exit');
    try { process.kill(-child.pid, 'SIGTERM'); } catch { /* already gone */ }
    const timer = setTimeout(() => { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } }, 5000);
    if (child.exitCode === null && child.signalCode === null) await exited;
    clearTimeout(timer);
    try { process.kill(-child.pid, 'SIGKILL'); } catch { /* the group is gone */ }
    // Until every process of the group is gone (a curl of the bash runtime may outlive bash
    // for a moment), then a moment for what they sent to be read: a GET /next still on its
    // way would otherwise take the next recording's event (seen in CI under load).
    for (let i = 0; i < 250; ++i) {
      try { process.kill(-child.pid, 0); } catch { break; }
      await sleep(20);
    }
    await sleep(100);
  }
  return { posts: fake.posts().slice(), output };
}

/** What must be the same with and without wrap: every byte of every request. */
function summary(posts) {
  return posts.map((p) => ({
    request: p.raw.subarray(0, p.raw.indexOf('\r\n\r\n') + 4).toString('latin1'),
    bytes: p.raw.length,
    sha256: createHash('sha256').update(p.raw).digest('hex'),
    trailers: p.trailers,
  }));
}

async function assertSameWithWrap(options) {
  const direct = await record(ric(options.handler), options);
  const throughWrap = await record(wrapped(ric(options.handler)), options);
  assert.deepEqual(summary(throughWrap.posts), summary(direct.posts),
    'the Runtime API must receive the same bytes with funcie wrap in between');
  return { direct, throughWrap };
}

const lastWrittenAt = (output) => {
  const m = output.match(/LAST_CHUNK_WRITTEN_AT (\d+)/);
  assert.ok(m, `the handler logs when it wrote its last chunk: ${output}`);
  return Number(m[1]);
};

test('a streamed response (3 chunks, 500 ms apart) passes through chunk by chunk', async (t) => {
  const events = [{ id: 'stream-1', payload: '{"n":1}' }];
  const { direct, throughWrap } = await assertSameWithWrap({ handler: 'streaming.chunks', events });
  for (const run of [direct, throughWrap]) {
    const [post] = run.posts;
    assert.equal(post.target, '/2018-06-01/runtime/invocation/stream-1/response');
    assert.equal(post.headers['lambda-runtime-function-response-mode'], 'streaming');
    assert.equal(post.headers['transfer-encoding'], 'chunked');
    assert.equal(post.body.toString(), 'chunk 1 of 3\nchunk 2 of 3\nchunk 3 of 3\n');
    // The first chunk reached the Runtime API before the handler wrote its last one.
    assert.ok(post.arrivals[0].t < lastWrittenAt(run.output),
      `first byte at ${post.arrivals[0].t}, last chunk written at ${lastWrittenAt(run.output)}`);
    const gaps = post.arrivals.map((a) => a.t - post.arrivals[0].t);
    t.diagnostic(`${run === direct ? 'direct' : 'through wrap'}: body pieces arrived at +${gaps.join(', +')} ms; ` +
      `last chunk written ${lastWrittenAt(run.output) - post.arrivals[0].t} ms after the first arrived`);
  }
});

test('8 MiB streamed reach the Runtime API whole (no 6 MB limit on a stream)', async () => {
  const events = [{ id: 'big-1', payload: '{}' }];
  const { throughWrap } = await assertSameWithWrap({ handler: 'streaming.big', events });
  const [post] = throughWrap.posts;
  assert.equal(post.target, '/2018-06-01/runtime/invocation/big-1/response');
  assert.equal(post.body.length, 8 * 1024 * 1024);
  assert.ok(post.arrivals.length > 1, 'in pieces, as it was written');
});

test('a throw mid-stream reaches the Runtime API as the error trailers', async () => {
  const events = [{ id: 'fail-1', payload: '{}' }];
  const { throughWrap } = await assertSameWithWrap({ handler: 'streaming.failMidway', events });
  const [post] = throughWrap.posts;
  assert.equal(post.body.toString(), 'first\nsecond\n');
  assert.equal(post.trailers['lambda-runtime-function-error-type'], 'TypeError');
  const error = JSON.parse(Buffer.from(post.trailers['lambda-runtime-function-error-body'], 'base64'));
  assert.equal(error.errorMessage, 'broke after two chunks');
});

test('an HttpResponseStream prelude and a content type of the handler pass unchanged', async () => {
  const events = [{ id: 'url-1', payload: '{}' }];
  const { throughWrap } = await assertSameWithWrap({ handler: 'streaming.httpPrelude', events });
  const [post] = throughWrap.posts;
  assert.equal(post.headers['content-type'], 'application/vnd.awslambda.http-integration-response');
  const nul = post.body.indexOf(Buffer.alloc(8));
  assert.deepEqual(JSON.parse(post.body.subarray(0, nul)), { statusCode: 201, headers: { 'x-funcie-test': 'prelude' } });
  assert.equal(post.body.subarray(nul + 8).toString(), '<p>streamed</p>');
  const csv = await assertSameWithWrap({ handler: 'streaming.csv', events: [{ id: 'csv-1', payload: '{}' }] });
  assert.equal(csv.throughWrap.posts[0].headers['content-type'], 'text/csv');
});

test('buffered responses, several in a row, and an init error pass unchanged', async () => {
  const events = [1, 2, 3].map((n) => ({ id: `buf-${n}`, payload: JSON.stringify({ n, text: 'é🎉' }) }));
  const { throughWrap } = await assertSameWithWrap({ handler: 'streaming.buffered', events });
  assert.deepEqual(throughWrap.posts.map((p) => JSON.parse(p.body).echoed.n), [1, 2, 3]);

  const init = await assertSameWithWrap({ handler: 'init_error.handler', events: [{ id: 'init-1', payload: '{}' }], posts: 1 });
  const [post] = init.throughWrap.posts;
  assert.equal(post.target, '/2018-06-01/runtime/init/error');
  assert.match(post.headers['lambda-runtime-function-error-type'], /RangeError|Runtime\./);
});

test('a buffered response of 6 MiB, the most Lambda takes, passes unchanged', async () => {
  const events = [{ id: 'max-1', payload: '{}' }];
  const { throughWrap } = await assertSameWithWrap({ handler: 'streaming.bufferedMax', events });
  const [post] = throughWrap.posts;
  assert.equal(post.target, '/2018-06-01/runtime/invocation/max-1/response');
  assert.equal(post.body.length, 6 * 1024 * 1024);
});

test('a bash + curl runtime streaming by hand: unknown fields, framing and trailers unchanged', async () => {
  const events = [{ id: 'bash-1', payload: '{}' }];
  const direct = await record([bashRuntime], { events });
  const throughWrap = await record(wrapped([bashRuntime]), { events });
  assert.deepEqual(summary(throughWrap.posts), summary(direct.posts));
  const [post] = throughWrap.posts;
  assert.equal(post.headers['x-unknown-field'], 'kept as sent');
  assert.ok(post.raw.includes('X-Unknown-Field:   kept as sent\r\n'), 'spacing as sent');
  assert.equal(post.body.toString(), 'data: 1\ndata: 2');
  assert.equal(post.trailers['lambda-runtime-function-error-type'], 'Stream.GaveUp');
  assert.ok(post.arrivals.length >= 2, 'two pieces');
  assert.ok(post.arrivals[1].t - post.arrivals[0].t >= 300,
    `the first event was passed on before the second was written (${post.arrivals[1].t - post.arrivals[0].t} ms apart)`);
});

test('fields of the /next answer funcie does not know reach the runtime as Lambda sent them', async () => {
  // Whatever Lambda adds to /next one day (and a Date, a tenant id) the runtime must see, with
  // its spelling, spacing inside the value and order of repeated fields.
  const headers = 'Date: Mon, 07 Dec 2026 10:00:00 GMT\r\n' +
    'Lambda-Runtime-Aws-Tenant-Id: tenant-42\r\n' +
    'Lambda-Runtime-Future-Field: a  value;with=parts\r\n' +
    'X-Amzn-Something-New: first\r\n' +
    'X-Amzn-Something-New: second\r\n';
  const events = [1, 2].map((n) => ({ id: `hdr-${n}`, payload: '{}', headers }));
  const direct = await record([nextHeadersRuntime], { events });
  const throughWrap = await record(wrapped([nextHeadersRuntime]), { events });
  assert.deepEqual(summary(throughWrap.posts), summary(direct.posts),
    'the runtime must see the same /next fields with funcie wrap in between');
  const seen = throughWrap.posts[0].body.toString();
  for (const line of ['Lambda-Runtime-Future-Field: a  value;with=parts', 'X-Amzn-Something-New: first',
    'X-Amzn-Something-New: second', 'Lambda-Runtime-Aws-Tenant-Id: tenant-42', 'Date: Mon, 07 Dec 2026 10:00:00 GMT']) {
    assert.ok(seen.split('\n').includes(line), `the runtime saw ${JSON.stringify(line)}: ${seen}`);
  }
});

test('an early 413 to a body still coming: answer passed on, rest of the body and the connection kept', async () => {
  // The Runtime API answers 413 after 100,000 of 300,000 bytes and reads the rest; the
  // runtime then posts, on the same connection, the status it got as the invocation's error.
  const events = [{ id: 'early-1', payload: '{}' }];
  const options = { events, posts: 2, answerEarlyOver: 100000 };
  const direct = await record([earlyAnswerRuntime], options);
  const throughWrap = await record(wrapped([earlyAnswerRuntime]), options);
  assert.deepEqual(summary(throughWrap.posts), summary(direct.posts),
    'the Runtime API must receive the same bytes with funcie wrap in between');
  const [response, error] = throughWrap.posts;
  assert.equal(response.answeredEarly, 413);
  assert.equal(response.body.length, 300000, 'the whole body, after the early answer');
  assert.equal(error.target, '/2018-06-01/runtime/invocation/early-1/error');
  assert.equal(JSON.parse(error.body).errorMessage, 'the response got 413');
  for (const run of [direct, throughWrap]) {
    assert.equal(run.posts[1].connection, run.posts[0].connection, 'the error came on the same connection');
  }
});
