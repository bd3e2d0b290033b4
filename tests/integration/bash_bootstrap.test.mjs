// Conformance: a custom runtime written in bash with curl (examples/bash/bootstrap, the loop
// AWS documents for provided.al2023) runs under `funcie emulate` as it would on Lambda.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { alive, childPids, ended, repoRoot, startEmulate } from './lib/harness.mjs';

const bootstrap = path.join(repoRoot, 'examples/bash/bootstrap');

async function bash(t, functionName = 'bash-fn') {
  const em = await startEmulate({ functionName, command: [bootstrap], cwd: path.dirname(bootstrap) });
  t.after(() => em.stop());
  return em;
}

test('bash bootstrap: a successful invocation returns what the script posted', async (t) => {
  const em = await bash(t);
  const event = { message: 'hi there', n: [1, 2, 3], nested: { ok: true } };
  const res = await em.invoke(event);
  assert.equal(res.status, 200, em.stderr());
  assert.equal(res.headers.get('x-amz-function-error'), null, res.body);
  assert.equal(res.headers.get('x-amz-executed-version'), '$LATEST');
  const requestId = res.headers.get('x-amzn-requestid');
  assert.ok(requestId);
  // The script builds {"echo":EVENT,"function":NAME,"request_id":ID} by string concatenation,
  // so the event bytes inside are exactly the ones sent.
  assert.equal(res.body, `{"echo":${JSON.stringify(event)},"function":"bash-fn","request_id":"${requestId}"}`);
});

test('bash bootstrap: an error posted to /invocation/{id}/error is a function error', async (t) => {
  const em = await bash(t);
  const res = await em.invoke({ fail: true });
  assert.equal(res.status, 200, em.stderr());
  assert.equal(res.headers.get('x-amz-function-error'), 'Unhandled');
  assert.ok(res.headers.get('x-amzn-requestid'));
  const error = JSON.parse(res.body);
  assert.equal(error.errorType, 'Bash.Failure');
  assert.equal(error.errorMessage, 'asked to fail');
});

test('bash bootstrap: many invocations in a row, successes and errors, on one process', async (t) => {
  const em = await bash(t);
  const first = await em.invoke({ i: -1 });
  assert.equal(first.status, 200, em.stderr());
  const runtimes = await childPids(em.child.pid);
  assert.equal(runtimes.length, 1, `one runtime process, got ${runtimes}`);
  const [runtime] = runtimes;

  const ids = new Set([first.headers.get('x-amzn-requestid')]);
  for (let i = 0; i < 20; i++) {
    const failing = i % 5 === 4;
    const res = await em.invoke(failing ? { fail: i } : { i });
    assert.equal(res.status, 200, `invocation ${i}: ${em.stderr()}`);
    const requestId = res.headers.get('x-amzn-requestid');
    ids.add(requestId);
    if (failing) {
      assert.equal(res.headers.get('x-amz-function-error'), 'Unhandled', `invocation ${i}`);
      assert.equal(JSON.parse(res.body).errorType, 'Bash.Failure');
    } else {
      assert.equal(res.headers.get('x-amz-function-error'), null, `invocation ${i}: ${res.body}`);
      assert.deepEqual(JSON.parse(res.body), { echo: { i }, function: 'bash-fn', request_id: requestId });
    }
  }
  assert.equal(ids.size, 21, 'every invocation has its own request id');
  assert.deepEqual(await childPids(em.child.pid), [runtime], 'the same bash process served all of them');
  assert.ok(alive(runtime));
});

test('bash bootstrap: stopping emulate ends bash and the curl waiting on /next', async (t) => {
  const em = await bash(t);
  assert.equal((await em.invoke({ warm: 1 })).status, 200, em.stderr());
  const [runtime] = await childPids(em.child.pid);
  // Between invocations the script sits in `curl .../invocation/next`.
  let curls = [];
  for (const until = Date.now() + 2000; curls.length === 0 && Date.now() < until;) {
    curls = await childPids(runtime);
    if (curls.length === 0) await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(curls.length > 0, 'curl is waiting for the next event');
  const { code } = await em.stop();
  assert.equal(code, 0, em.stderr());
  // bash is funcie's child and reaped by it; curl is bash's, reparented once bash dies.
  assert.ok(!alive(runtime), `bash (pid ${runtime}) outlived funcie emulate`);
  for (const pid of curls) assert.ok(await ended(pid, 1000), `curl (pid ${pid}) outlived funcie emulate`);
});
