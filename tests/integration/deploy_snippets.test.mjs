// docs/deploy.md and the files it shows (docs/deploy/**): every fenced block marked
// `file=deploy/PATH` is that file byte for byte, every file is shown, and each file is
// checked by a real parser of its language:
//   shell                     bash -n / sh -n, and shellcheck when it is installed
//   IAM policies (JSON)       JSON.parse, the policy grammar, exactly the SQS actions funcie calls
//   SAM / CloudFormation      the npm `yaml` parser with CloudFormation's short-form tags, then
//                             Resources/Type/Properties and every Ref/GetAtt/Sub name resolved
//   CDK (TypeScript)          the TypeScript compiler (npm `typescript`) type-checking against the
//                             real aws-cdk-lib and constructs, then the app run to synthesize
//   Terraform                 @cdktf/hcl2json (HashiCorp's HCL2 parser compiled to WebAssembly),
//                             then every var./local./resource reference resolved
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, copyFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { peersDir, repoRoot } from './lib/harness.mjs';

const require = createRequire(path.join(peersDir, 'package.json'));
const YAML = require('yaml');
const { parse: parseHcl } = require('@cdktf/hcl2json');

const docsDir = path.join(repoRoot, 'docs');
const deployDir = path.join(docsDir, 'deploy');
const read = (rel) => readFileSync(path.join(deployDir, rel), 'utf8');

// The SQS API actions funcie calls, and no others. They are the operations of
// src/aws/sqs_client.cpp that are actually called: by src/backend/sqs/sqs_backend.cpp (the
// forwarder, funcie connect's consumer session, funcie status) and by src/doctor/doctor.cpp.
// sqs_client also has GetQueueUrl, which nothing calls: no policy needs it. The batch calls
// (SendMessageBatch, DeleteMessageBatch) are authorized as SendMessage and DeleteMessage.
const FUNCIE_SQS_ACTIONS = new Set([
  'sqs:SendMessage',
  'sqs:ReceiveMessage',
  'sqs:DeleteMessage',
  'sqs:ChangeMessageVisibility',
  'sqs:GetQueueAttributes',
  'sqs:ListQueueTags',
  'sqs:TagQueue',
  'sqs:UntagQueue',
]);
const QUEUE_ACTIONS = [...FUNCIE_SQS_ACTIONS].filter((a) => !/tag/i.test(a));  // TagQueue, UntagQueue, ListQueueTags
// Who calls which on which queue (docs/deploy.md, "IAM for the SQS backend"). The function:
// sends offers, pieces and commits to the request queue, asks its size limit and reads its
// presence tags (docs/sqs.md, "Presence"); receives
// claims and answers from the response queue, deletes them or hands them back. The
// developer: funcie connect takes requests (receive, delete, hand back) and answers;
// funcie status pings and reads pongs; both check both queues' size limits; funcie connect
// keeps its presence tag on the request queue.
const NEEDS = {
  'iam-function-policy.json': {
    requests: ['sqs:SendMessage', 'sqs:GetQueueAttributes', 'sqs:ListQueueTags'],
    responses: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility'],
  },
  'iam-developer-policy.json': {
    requests: [...FUNCIE_SQS_ACTIONS],
    responses: QUEUE_ACTIONS,
  },
};

function filesUnder(dir, prefix = '') {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...filesUnder(path.join(dir, entry.name), rel));
    else out.push(rel);
  }
  return out.sort();
}

/** Fenced blocks of a Markdown text: [{ info, body, line }]. */
function fencedBlocks(markdown) {
  const blocks = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; ++i) {
    const open = lines[i].match(/^(`{3,})(.*)$/);
    if (!open) continue;
    const fence = open[1];
    const start = i;
    const body = [];
    for (++i; i < lines.length && !lines[i].startsWith(fence); ++i) body.push(lines[i]);
    assert.ok(i < lines.length, `deploy.md: the block opened on line ${start + 1} is not closed`);
    blocks.push({ info: open[2].trim(), body: body.length ? `${body.join('\n')}\n` : '', line: start + 1 });
  }
  return blocks;
}

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...options });
  if (r.error) throw r.error;
  return r;
}

function hasCommand(name) {
  return run('sh', ['-c', `command -v ${name}`]).status === 0;
}

describe('docs/deploy.md shows the files in docs/deploy/ unchanged', () => {
  const markdown = readFileSync(path.join(docsDir, 'deploy.md'), 'utf8');
  const blocks = fencedBlocks(markdown);
  const shown = blocks.filter((b) => /(^|\s)file=\S+/.test(b.info));

  test('each block marked file=... is that file, byte for byte', () => {
    assert.ok(shown.length >= 8, `only ${shown.length} blocks are marked with a file`);
    for (const b of shown) {
      const rel = b.info.match(/(?:^|\s)file=(\S+)/)[1];
      assert.match(rel, /^deploy\//, `deploy.md:${b.line}: file= is relative to docs/ (deploy/...)`);
      const file = readFileSync(path.join(docsDir, rel), 'utf8');
      assert.equal(b.body, file, `deploy.md:${b.line} differs from docs/${rel}: copy the file into the block`);
    }
  });

  test('every file under docs/deploy/ is shown', () => {
    const names = new Set(shown.map((b) => b.info.match(/(?:^|\s)file=(\S+)/)[1]));
    for (const rel of filesUnder(deployDir)) {
      assert.ok(names.has(`deploy/${rel}`), `docs/deploy/${rel} is not shown in deploy.md (a block marked file=deploy/${rel})`);
    }
  });
});

describe('shell snippets', () => {
  const scripts = filesUnder(deployDir).filter((f) => f.endsWith('.sh'));

  test('parse with their shell (bash -n, sh -n)', () => {
    assert.ok(scripts.length >= 2);
    for (const rel of scripts) {
      const shell = read(rel).startsWith('#!/bin/sh') ? 'sh' : 'bash';
      const r = run(shell, ['-n', path.join(deployDir, rel)]);
      assert.equal(r.status, 0, `${shell} -n docs/deploy/${rel}: ${r.stderr}`);
    }
  });

  test('shellcheck finds nothing', (t) => {
    if (!hasCommand('shellcheck')) {
      t.skip('shellcheck is not installed (apt-get install shellcheck)');
      return;
    }
    for (const rel of scripts) {
      const r = run('shellcheck', ['-x', path.join(deployDir, rel)]);
      assert.equal(r.status, 0, `shellcheck docs/deploy/${rel}:\n${r.stdout}${r.stderr}`);
    }
  });
});

/** Action/Resource lists as arrays. */
const list = (v) => (Array.isArray(v) ? v : [v]);

describe('IAM policies', () => {
  for (const [rel, needs] of Object.entries(NEEDS)) {
    test(`${rel}: a valid policy granting exactly what its side calls`, () => {
      const policy = JSON.parse(read(rel));
      assert.equal(policy.Version, '2012-10-17');
      assert.ok(Array.isArray(policy.Statement) && policy.Statement.length > 0, 'Statement must be a non-empty array');
      const granted = { requests: new Set(), responses: new Set() };
      const sids = new Set();
      for (const s of policy.Statement) {
        assert.deepEqual(Object.keys(s).filter((k) => !['Sid', 'Effect', 'Action', 'Resource', 'Condition'].includes(k)), [],
          'a statement has only Sid, Effect, Action, Resource, Condition');
        if (s.Sid !== undefined) {
          assert.match(s.Sid, /^[A-Za-z0-9]+$/, 'a Sid is alphanumeric');
          assert.ok(!sids.has(s.Sid), `Sid ${s.Sid} is used twice`);
          sids.add(s.Sid);
        }
        assert.equal(s.Effect, 'Allow');
        const actions = list(s.Action);
        const resources = list(s.Resource);
        assert.ok(actions.length > 0 && resources.length > 0);
        for (const a of actions) {
          assert.ok(FUNCIE_SQS_ACTIONS.has(a), `${a} is not an action funcie calls (${[...FUNCIE_SQS_ACTIONS].join(', ')})`);
        }
        for (const r of resources) {
          const m = r.match(/^arn:aws:sqs:[a-z0-9-]+:\d{12}:funcie-[A-Za-z0-9_-]+-(requests|responses)$/);
          assert.ok(m, `${r} is not one of the app's two queue ARNs`);
          for (const a of actions) granted[m[1]].add(a);
        }
      }
      for (const queue of ['requests', 'responses']) {
        assert.deepEqual([...granted[queue]].sort(), [...needs[queue]].sort(), `actions on the ${queue} queue`);
      }
    });
  }
});

// ---- CloudFormation / SAM ------------------------------------------------------------------

// CloudFormation's short forms, each as the long form it stands for. A tag may be written on
// a scalar or a sequence (and !Transform on a mapping); a tag not listed is an error.
const CFN_FUNCTIONS = {
  Ref: 'Ref', Condition: 'Condition', GetAtt: 'Fn::GetAtt', Sub: 'Fn::Sub', Join: 'Fn::Join',
  Select: 'Fn::Select', Split: 'Fn::Split', GetAZs: 'Fn::GetAZs', ImportValue: 'Fn::ImportValue',
  Base64: 'Fn::Base64', Cidr: 'Fn::Cidr', FindInMap: 'Fn::FindInMap', If: 'Fn::If',
  Equals: 'Fn::Equals', And: 'Fn::And', Or: 'Fn::Or', Not: 'Fn::Not', Transform: 'Fn::Transform',
  Length: 'Fn::Length', ToJsonString: 'Fn::ToJsonString',
};
const cfnTags = Object.entries(CFN_FUNCTIONS).flatMap(([short, long]) => [
  { tag: `!${short}`, resolve: (v) => ({ [long]: short === 'GetAtt' ? v.split('.') : v }) },
  { tag: `!${short}`, collection: 'seq', resolve: (seq) => ({ [long]: seq.toJSON() }) },
  { tag: `!${short}`, collection: 'map', resolve: (map) => ({ [long]: map.toJSON() }) },
]);

const PSEUDO_PARAMETERS = new Set(['AWS::AccountId', 'AWS::NotificationARNs', 'AWS::NoValue', 'AWS::Partition',
  'AWS::Region', 'AWS::StackId', 'AWS::StackName', 'AWS::URLSuffix']);

function parseTemplate(rel) {
  const doc = YAML.parseDocument(read(rel), { customTags: cfnTags, uniqueKeys: true, prettyErrors: true });
  assert.deepEqual(doc.errors.map(String), [], `${rel}: YAML errors`);
  assert.deepEqual(doc.warnings.map(String), [], `${rel}: YAML warnings (an unknown tag?)`);
  return doc.toJS();
}

/** Calls fn(node, path) for every object and array in `value`. */
function walk(value, fn, where = '') {
  if (value === null || typeof value !== 'object') return;
  fn(value, where);
  for (const [k, v] of Object.entries(value)) walk(v, fn, `${where}/${k}`);
}

function checkTemplate(rel, { sam }) {
  const t = parseTemplate(rel);
  assert.equal(t.AWSTemplateFormatVersion, '2010-09-09');
  if (sam) assert.equal(t.Transform, 'AWS::Serverless-2016-10-31');
  const parameters = t.Parameters ?? {};
  for (const [name, p] of Object.entries(parameters)) {
    assert.match(name, /^[A-Za-z0-9]+$/);
    assert.equal(typeof p.Type, 'string', `parameter ${name} has a Type`);
  }
  assert.ok(t.Resources && Object.keys(t.Resources).length > 0, 'Resources');
  for (const [name, r] of Object.entries(t.Resources)) {
    assert.match(name, /^[A-Za-z0-9]+$/, `logical id ${name}`);
    assert.match(r.Type, /^AWS::[A-Za-z0-9]+::[A-Za-z0-9]+$/, `${name}.Type`);
    if (!sam) assert.ok(!r.Type.startsWith('AWS::Serverless::'), `${name}: a SAM type needs the Serverless transform`);
    assert.equal(typeof r.Properties, 'object', `${name}.Properties`);
    assert.ok(r.Properties !== null && !Array.isArray(r.Properties), `${name}.Properties is a mapping`);
  }
  for (const [name, o] of Object.entries(t.Outputs ?? {})) assert.ok('Value' in o, `output ${name} has a Value`);

  const resources = new Set(Object.keys(t.Resources));
  const names = new Set([...resources, ...Object.keys(parameters), ...PSEUDO_PARAMETERS]);
  walk(t, (node, where) => {
    if (Array.isArray(node)) return;
    if ('Ref' in node && Object.keys(node).length === 1) {
      assert.ok(names.has(node.Ref), `${rel}${where}: Ref ${node.Ref} names no parameter or resource`);
    }
    if ('Fn::GetAtt' in node) {
      const [target, attribute] = list(node['Fn::GetAtt']);
      assert.ok(resources.has(target), `${rel}${where}: GetAtt ${target} names no resource`);
      assert.ok(attribute, `${rel}${where}: GetAtt ${target} has no attribute`);
    }
    if ('Fn::Sub' in node) {
      const [text, vars = {}] = list(node['Fn::Sub']);
      for (const m of String(text).matchAll(/\$\{([^!}][^}]*)\}/g)) {
        const name = m[1].split('.')[0];
        assert.ok(names.has(name) || name in vars, `${rel}${where}: Sub \${${m[1]}} names nothing`);
        if (m[1].includes('.') && !(name in vars)) assert.ok(resources.has(name), `${rel}${where}: \${${m[1]}} is no resource attribute`);
      }
    }
    for (const name of list(node.DependsOn ?? [])) assert.ok(resources.has(name), `${rel}${where}: DependsOn ${name}`);
  });

  // Every action named anywhere (role policies, managed policies) is one funcie calls.
  walk(t, (node) => {
    if (!Array.isArray(node) && 'Action' in node && 'Effect' in node) {
      for (const a of list(node.Action)) {
        if (a.startsWith('sqs:')) assert.ok(FUNCIE_SQS_ACTIONS.has(a), `${rel}: ${a} is not an action funcie calls`);
      }
    }
  });
  return t;
}

/** The Lambda functions of a template: [{ name, runtime, layers, env }]. */
function lambdaFunctions(t) {
  return Object.entries(t.Resources)
    .filter(([, r]) => r.Type === 'AWS::Lambda::Function' || r.Type === 'AWS::Serverless::Function')
    .map(([name, r]) => ({
      name,
      runtime: r.Properties.Runtime,
      layers: r.Properties.Layers ?? [],
      env: r.Properties.Environment?.Variables ?? {},
    }));
}

/** What every deployed function must get right, whatever the tool. */
function checkFunctionEnvironment(where, fn, { layer }) {
  const env = fn.env;
  assert.ok(env.FUNCIE_BACKEND, `${where}: ${fn.name} sets FUNCIE_BACKEND`);
  assert.ok(env.FUNCIE_APP, `${where}: ${fn.name} sets FUNCIE_APP`);
  const secret = JSON.stringify(env.FUNCIE_SECRET ?? '');
  assert.match(secret, /\{\{resolve:secretsmanager:/, `${where}: ${fn.name}'s FUNCIE_SECRET is a Secrets Manager dynamic reference, not a value`);
  if (typeof env.FUNCIE_BACKEND === 'string' && env.FUNCIE_BACKEND === 'sqs://') {
    assert.ok(env.FUNCIE_REQUEST_QUEUE_URL && env.FUNCIE_RESPONSE_QUEUE_URL, `${where}: ${fn.name}: sqs:// needs both queue URLs`);
  } else {
    // A Redis URL carries the AUTH token: from a secret too.
    assert.match(JSON.stringify(env.FUNCIE_BACKEND), /\{\{resolve:secretsmanager:/, `${where}: ${fn.name}'s Redis URL comes from a secret`);
  }
  const usesLayer = fn.layers.some((l) => JSON.stringify(l) === JSON.stringify(layer));
  if (usesLayer && !String(fn.runtime).startsWith('provided')) {
    assert.equal(env.AWS_LAMBDA_EXEC_WRAPPER, '/opt/funcie-wrapper', `${where}: ${fn.name} runs under the layer's wrapper`);
  }
  if (String(fn.runtime).startsWith('provided')) {
    assert.ok(!('AWS_LAMBDA_EXEC_WRAPPER' in env), `${where}: ${fn.name}: a custom runtime execs the wrapper in its bootstrap instead`);
  }
}

describe('SAM and CloudFormation templates', () => {
  test('template.yaml (SAM, Redis in a VPC)', () => {
    const t = checkTemplate('template.yaml', { sam: true });
    assert.equal(t.Resources.FuncieLayer.Type, 'AWS::Serverless::LayerVersion');
    assert.equal(t.Resources.FuncieLayer.Properties.ContentUri, 'funcie-layer.zip');
    const fns = lambdaFunctions(t);
    assert.equal(fns.length, 2);
    for (const fn of fns) checkFunctionEnvironment('template.yaml', fn, { layer: { Ref: 'FuncieLayer' } });
    const proxy = t.Resources.ProxyFunction.Properties;
    assert.equal(proxy.CodeUri, 'funcie-proxy.zip');
    assert.equal(proxy.Runtime, 'provided.al2023');
    // In the VPC, with a security group the cache lets in on its port.
    for (const fn of ['OrdersFunction', 'ProxyFunction']) {
      assert.deepEqual(t.Resources[fn].Properties.VpcConfig.SecurityGroupIds, [{ 'Fn::GetAtt': ['FunctionSecurityGroup', 'GroupId'] }]);
    }
    const ingress = t.Resources.CacheFromFunctions.Properties;
    assert.deepEqual(ingress.SourceSecurityGroupId, { 'Fn::GetAtt': ['FunctionSecurityGroup', 'GroupId'] });
    assert.deepEqual(ingress.FromPort, { Ref: 'CachePort' });
  });

  test('cloudformation.yaml (SQS)', () => {
    const t = checkTemplate('cloudformation.yaml', { sam: false });
    assert.equal(t.Resources.FuncieLayer.Type, 'AWS::Lambda::LayerVersion');
    const fns = lambdaFunctions(t);
    assert.equal(fns.length, 2);
    for (const fn of fns) checkFunctionEnvironment('cloudformation.yaml', fn, { layer: { Ref: 'FuncieLayer' } });
    assert.deepEqual(t.Resources.NodeFunction.Properties.Environment.Variables.FUNCIE_REQUEST_QUEUE_URL, { Ref: 'RequestQueue' });
    // The role's statements are the function side's, queue by queue.
    const statements = t.Resources.FunctionRole.Properties.Policies[0].PolicyDocument.Statement;
    const byQueue = Object.fromEntries(statements.map((s) => [s.Resource['Fn::GetAtt'][0], list(s.Action).sort()]));
    assert.deepEqual(byQueue, {
      RequestQueue: [...NEEDS['iam-function-policy.json'].requests].sort(),
      ResponseQueue: [...NEEDS['iam-function-policy.json'].responses].sort(),
    });
  });
});

// ---- CDK -------------------------------------------------------------------------------------

describe('CDK app (TypeScript)', () => {
  test('type-checks against aws-cdk-lib and constructs, and synthesizes', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'funcie-cdk-'));
    try {
      copyFileSync(path.join(deployDir, 'cdk/app.ts'), path.join(dir, 'app.ts'));
      symlinkSync(path.join(peersDir, 'node_modules'), path.join(dir, 'node_modules'));
      writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({
        compilerOptions: {
          target: 'ES2022', module: 'commonjs', moduleResolution: 'node', strict: true,
          noUnusedLocals: true, skipLibCheck: true, types: [], lib: ['ES2022'], outDir: 'out',
        },
        files: ['app.ts'],
      }));
      const tsc = path.join(peersDir, 'node_modules/typescript/bin/tsc');
      const r = run(process.execPath, [tsc, '-p', path.join(dir, 'tsconfig.json')], { cwd: dir });
      assert.equal(r.status, 0, `tsc on docs/deploy/cdk/app.ts:\n${r.stdout}${r.stderr}`);

      const cdkJson = JSON.parse(read('cdk/cdk.json'));
      assert.match(cdkJson.app, /\bapp\.ts\b/);

      // Synthesize as `cdk synth` would (CDK_OUTDIR makes the App write its assembly on exit),
      // next to stand-ins for the zips and the code directory the app packages.
      for (const zip of ['funcie-layer.zip', 'funcie-proxy.zip']) writeFileSync(path.join(dir, zip), 'PK\u0005\u0006'.padEnd(22, '\0'));
      mkdirSync(path.join(dir, 'src'));
      writeFileSync(path.join(dir, 'src/index.mjs'), 'export const handler = async () => ({});\n');
      const outdir = path.join(dir, 'cdk.out');
      const synth = run(process.execPath, [path.join(dir, 'out/app.js')], {
        cwd: dir, env: { ...process.env, CDK_OUTDIR: outdir, CDK_DEFAULT_REGION: 'eu-west-1', CDK_DEFAULT_ACCOUNT: '123456789012' },
      });
      assert.equal(synth.status, 0, `synthesizing the CDK app:\n${synth.stdout}${synth.stderr}`);
      const template = JSON.parse(readFileSync(path.join(outdir, 'FuncieOrders.template.json'), 'utf8'));
      const fns = lambdaFunctions(template);
      assert.equal(fns.length, 2);
      const layerId = Object.entries(template.Resources).find(([, r]) => r.Type === 'AWS::Lambda::LayerVersion')[0];
      for (const fn of fns) checkFunctionEnvironment('cdk/app.ts', fn, { layer: { Ref: layerId } });
      walk(template, (node) => {
        if (!Array.isArray(node) && 'Action' in node && 'Effect' in node) {
          for (const a of list(node.Action)) {
            if (a.startsWith('sqs:')) assert.ok(FUNCIE_SQS_ACTIONS.has(a), `cdk: ${a} is not an action funcie calls`);
          }
        }
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---- Terraform -------------------------------------------------------------------------------

describe('Terraform', () => {
  test('main.tf parses as HCL2 and every reference resolves', async () => {
    const text = read('terraform/main.tf');
    const tf = await parseHcl('main.tf', text);
    const variables = tf.variable ?? {};
    const locals = Object.assign({}, ...(tf.locals ?? []));
    const resources = tf.resource ?? {};
    assert.ok(Object.keys(resources).length > 0);
    // Every expression: "${...}" strings anywhere in the parsed tree.
    const expressions = [];
    walk(tf, (node) => {
      for (const v of Object.values(node)) if (typeof v === 'string' && v.includes('${')) expressions.push(v);
    });
    assert.ok(expressions.length > 10);
    for (const e of expressions) {
      for (const m of e.matchAll(/\b(var|local|aws_[a-z0-9_]+)\.([a-z0-9_]+)/g)) {
        const [, kind, name] = m;
        if (kind === 'var') assert.ok(name in variables, `var.${name} is not declared`);
        else if (kind === 'local') assert.ok(name in locals, `local.${name} is not defined`);
        else assert.ok(resources[kind]?.[name], `${kind}.${name} is not a resource`);
      }
    }
    // The secret: a sensitive variable, used as the functions' FUNCIE_SECRET.
    assert.equal(variables.funcie_secret[0].sensitive, true);
    assert.equal(locals.funcie_environment.FUNCIE_SECRET, '${var.funcie_secret}');
    const functions = resources.aws_lambda_function;
    assert.deepEqual(Object.keys(functions).sort(), ['orders', 'proxy']);
    assert.match(functions.orders[0].environment[0].variables, /AWS_LAMBDA_EXEC_WRAPPER\s*=\s*"\/opt\/funcie-wrapper"/);
    assert.deepEqual(functions.orders[0].layers, ['${aws_lambda_layer_version.funcie.arn}']);
    assert.equal(functions.proxy[0].runtime, 'provided.al2023');
    assert.equal(functions.proxy[0].filename, 'funcie-proxy.zip');
    assert.equal(resources.aws_lambda_layer_version.funcie[0].filename, 'funcie-layer.zip');
    for (const m of text.matchAll(/"(sqs:[A-Za-z]+)"/g)) {
      assert.ok(FUNCIE_SQS_ACTIONS.has(m[1]), `main.tf: ${m[1]} is not an action funcie calls`);
    }
  });

  test('the parser refuses what is not HCL', async () => {
    await assert.rejects(parseHcl('bad.tf', 'resource "aws_sqs_queue" "q" {\n  name = \n}\n'));
  });
});
