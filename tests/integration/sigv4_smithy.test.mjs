// funcie's SigV4 against the AWS SDK's (@smithy/signature-v4, what the JavaScript SDK v3
// signs every call with): a few hundred random requests, seeded so a failure repeats, with
// odd paths, repeated and oddly encoded query parameters, untidy headers, unicode payloads,
// with and without a session token. Any difference would be a 403 from AWS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import path from 'node:path';
import { peersDir, repoRoot } from './lib/harness.mjs';

const require = createRequire(path.join(peersDir, 'package.json'));
const { SignatureV4 } = require('@smithy/signature-v4');

const toolsDir = process.env.FUNCIE_TOOLS_DIR ?? path.join(repoRoot, 'build/tests/tools');
const signTool = path.join(toolsDir, 'sigv4_sign');
const COUNT = 400;
const SEED = 0x5167e4;

/** The Sha256 constructor smithy wants, on node:crypto (a secret makes it an HMAC). */
class NodeSha256 {
  constructor(secret) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', Buffer.from(secret));
  }
  update(data) {
    this.hash.update(Buffer.from(data));
  }
  async digest() {
    return new Uint8Array(this.hash.digest());
  }
}

/** Keeps the canonical request smithy built, for the message when signatures differ. */
class CapturingSigner extends SignatureV4 {
  createCanonicalRequest(...args) {
    this.lastCanonical = super.createCanonicalRequest(...args);
    return this.lastCanonical;
  }
}

/** mulberry32: small, seedable, good enough to pick test inputs. */
function random(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n) => Math.floor(next() * n);
  const pick = (list) => list[int(list.length)];
  const chance = (p) => next() < p;
  const string = (alphabet, min, max) => {
    const chars = [...alphabet];
    let out = '';
    for (let i = min + int(max - min + 1); i > 0; i--) out += pick(chars);
    return out;
  };
  return { int, pick, chance, string };
}

const PLAIN = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const PATH_CHARS = PLAIN + "-_.~ !*'();:@&=+$,%[]éሴ😀";
const QUERY_CHARS = PLAIN + "-_.~ !*'();:@&=+$,/?%#[]éሴ😀";
const VALUE_CHARS = PLAIN + ' \t!"#$%&\'()*+,-./:;<=>?@[]^_`{|}~';
const PAYLOAD_CHARS = PLAIN + ' \n\t{}":,[]\\éሴ😀\u0000';

/** SigV4's encoding, as @smithy/util-uri-escape does it. */
const escapeUri = (s) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

function randomPath(r) {
  const segments = [];
  for (let i = r.int(5); i >= 0; i--) {
    segments.push(r.pick(['', '.', '..', 'a', r.string(PATH_CHARS, 1, 8), r.string(PATH_CHARS, 1, 8)]));
  }
  return (r.chance(0.9) ? '/' : '') + segments.join('/') + (r.chance(0.3) ? '/' : '');
}

/** The same parameters as smithy's object and as a query string sent on the wire. */
function randomQuery(r) {
  const pairs = [];
  const keys = [];
  for (let i = r.int(6); i > 0; i--) {
    const key = keys.length > 0 && r.chance(0.3) ? r.pick(keys) : r.string(QUERY_CHARS, 1, 6);
    keys.push(key);
    pairs.push([key, r.chance(0.2) ? '' : r.string(QUERY_CHARS, 0, 10)]);
  }
  const object = {};
  for (const [key, value] of pairs) {
    if (!(key in object)) object[key] = value;
    else object[key] = [].concat(object[key], value);
  }
  // Either encoding is what a client may send; the canonical form must not depend on it.
  const encode = r.chance(0.5) ? escapeUri : encodeURIComponent;
  const text = pairs
    .map(([key, value]) => (value === '' && r.chance(0.5) ? encode(key) : `${encode(key)}=${encode(value)}`))
    .join('&');
  return { object, text };
}

function randomHeaders(r) {
  const list = [];
  const seen = new Set();
  for (let i = r.int(5); i > 0; i--) {
    let name = `x-test-${r.string('abcdefghijklmnopqrstuvwxyz0123456789-', 1, 8)}`;
    if (r.chance(0.2)) name = r.pick(['content-type', 'x-amz-target', 'x-amz-meta-thing']);
    name = [...name].map((c) => (r.chance(0.5) ? c.toUpperCase() : c)).join('');
    if (seen.has(name.toLowerCase())) continue;
    seen.add(name.toLowerCase());
    const padding = () => r.string(' \t', 0, 3);
    list.push([name, padding() + r.string(VALUE_CHARS, 0, 20) + padding()]);
  }
  return list;
}

function randomRequest(r) {
  const query = randomQuery(r);
  const time = new Date(Date.UTC(2015, 0, 1) + r.int(15 * 365 * 86400) * 1000);
  return {
    method: r.pick(['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'PATCH']),
    host: r.pick(['sqs.eu-west-1.amazonaws.com', 'example.amazonaws.com', '127.0.0.1:4566', 'localhost:9324']),
    path: randomPath(r),
    query,
    headers: randomHeaders(r),
    payload: r.chance(0.3) ? '' : r.string(PAYLOAD_CHARS, 0, 200),
    region: r.pick(['us-east-1', 'eu-west-1', 'ap-southeast-2', 'cn-north-1', 'us-gov-west-1']),
    service: r.pick(['sqs', 'sts', 'lambda', 'execute-api', 'service', 'iam', 'dynamodb']),
    time,
    accessKeyId: `AKIA${r.string('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', 16, 16)}`,
    secretAccessKey: r.string(`${PLAIN}/+`, 40, 40),
    sessionToken: r.chance(0.5) ? r.string(`${PLAIN}/+=`, 100, 400) : undefined,
  };
}

async function signWithSmithy(req) {
  const signer = new CapturingSigner({
    credentials: { accessKeyId: req.accessKeyId, secretAccessKey: req.secretAccessKey, sessionToken: req.sessionToken },
    region: req.region,
    service: req.service,
    sha256: NodeSha256,
    applyChecksum: false, // SQS's JSON protocol sends no x-amz-content-sha256
  });
  const headers = { host: req.host };
  for (const [name, value] of req.headers) headers[name] = value;
  const signed = await signer.sign(
    { method: req.method, protocol: 'https:', hostname: req.host, path: req.path, query: req.query.object, headers, body: req.payload },
    { signingDate: req.time },
  );
  return { authorization: signed.headers.authorization, canonical: signer.lastCanonical };
}

/** Signs every request with one run of the tool (one JSON line each way per request). */
async function signWithFuncie(requests) {
  const child = spawn(signTool, [], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => (out += d));
  for (const req of requests) {
    child.stdin.write(
      `${JSON.stringify({
        method: req.method,
        host: req.host,
        path: req.path,
        query: req.query.text,
        headers: req.headers,
        payload: req.payload,
        region: req.region,
        service: req.service,
        time: req.time.toISOString().replace(/\.\d{3}Z$/, 'Z'),
        access_key_id: req.accessKeyId,
        secret_access_key: req.secretAccessKey,
        session_token: req.sessionToken ?? '',
      })}\n`,
    );
  }
  child.stdin.end();
  const [code] = await once(child, 'exit');
  assert.equal(code, 0, 'sigv4_sign exited with an error');
  return out.trim().split('\n').map((line) => JSON.parse(line));
}

test(`funcie signs ${COUNT} random requests exactly as @smithy/signature-v4 does`, async () => {
  const r = random(SEED);
  const requests = Array.from({ length: COUNT }, () => randomRequest(r));
  const ours = await signWithFuncie(requests);
  assert.equal(ours.length, requests.length);
  let withToken = 0;
  for (const [i, req] of requests.entries()) {
    const theirs = await signWithSmithy(req);
    const mine = ours[i];
    if (mine.authorization !== theirs.authorization) {
      assert.fail(
        `request ${i} signs differently:\n${JSON.stringify({ ...req, query: req.query }, null, 2)}\n` +
          `--- smithy canonical request ---\n${theirs.canonical}\n` +
          `--- funcie canonical request ---\n${mine.canonical_request ?? mine.error}\n` +
          `smithy: ${theirs.authorization}\nfuncie: ${mine.authorization}`,
      );
    }
    if (req.sessionToken) {
      withToken++;
      assert.equal(mine.security_token, req.sessionToken);
      assert.match(mine.authorization, /SignedHeaders=[^,]*x-amz-security-token/);
    }
  }
  // The generator really covered both kinds of credentials.
  assert.ok(withToken > COUNT / 4 && withToken < (COUNT * 3) / 4);
});

test('an already percent-encoded query and its raw form sign alike (smithy takes the raw one)', async () => {
  const base = {
    method: 'GET',
    host: 'example.amazonaws.com',
    path: '/a b/ሴ',
    headers: [],
    payload: '',
    region: 'eu-west-1',
    service: 'sqs',
    time: new Date(Date.UTC(2024, 4, 1, 12)),
    accessKeyId: 'AKIDEXAMPLE',
    secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
  };
  const raw = { ...base, query: { object: { 'a b': ['x', 'ሴ'], c: '' }, text: 'a b=x&a b=ሴ&c' } };
  const encoded = { ...base, query: { object: raw.query.object, text: 'a%20b=%E1%88%B4&c=&a%20b=x' } };
  const [mineRaw, mineEncoded] = await signWithFuncie([raw, encoded]);
  const theirs = await signWithSmithy(raw);
  assert.equal(mineRaw.authorization, theirs.authorization);
  assert.equal(mineEncoded.authorization, theirs.authorization);
});
