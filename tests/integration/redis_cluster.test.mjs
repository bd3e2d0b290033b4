// The real binaries against a real Redis Cluster (3 masters of Debian's redis-server on
// free loopback ports, stopped by pid): `funcie wrap` in the emulator, `funcie connect`,
// `funcie status` and `funcie doctor`, given one node's URL while the app's slot lives on
// another (docs/tunnel.md, "Redis Cluster and managed Redis"). Failover, resharding and
// TLS + ACL are in tests/redis/redis_cluster_redistest.cpp.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { funcieBin } from './lib/harness.mjs';
import { eventually, freePort, startCloud, startConnect, startRedis, where } from './lib/tunnel.mjs';

const execFileP = promisify(execFile);

let nodes = [];

/** The node (index) whose master serves `slot`, from node 0's CLUSTER NODES. */
async function ownerOf(slot) {
  const lines = (await nodes[0].cli('CLUSTER', 'NODES')).trim().split('\n');
  for (const line of lines) {
    const f = line.split(' ');
    if (!f[2].includes('master')) continue;
    for (const range of f.slice(8)) {
      const [first, last = first] = range.split('-').map(Number);
      if (slot >= first && slot <= last) {
        const port = Number(f[1].split('@')[0].split(':')[1]);
        return nodes.findIndex((n) => n.port === port);
      }
    }
  }
  return -1;
}

before(async () => {
  for (let i = 0; i < 3; ++i) {
    const bus = await freePort();
    nodes.push(await startRedis({
      args: ['--cluster-enabled', 'yes', '--cluster-port', String(bus), '--cluster-node-timeout', '1000',
        '--cluster-config-file', 'nodes.conf'],
    }));
  }
  await nodes[0].cli('--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-yes');
  for (const n of nodes) {
    await eventually(async () => {
      const info = await n.cli('CLUSTER', 'INFO');
      return info.includes('cluster_state:ok') && info.includes('cluster_slots_ok:16384');
    }, { ms: 20000, what: 'cluster_state:ok' });
  }
});
after(async () => {
  for (const n of nodes) await n.close();
});

describe('funcie on a Redis Cluster, the app\'s slot on a node not in the URL', () => {
  let app;
  let slot;
  let owner;
  before(async () => {
    for (let i = 0; ; ++i) {
      const candidate = `cluster-app-${i}`;
      slot = Number((await nodes[0].cli('CLUSTER', 'KEYSLOT', `funcie:{${candidate}}:requests`)).trim());
      owner = await ownerOf(slot);
      if (owner > 0) { app = candidate; break; }
    }
  });

  test('cloud when nobody is connected, local when connected; status and doctor see it', async () => {
    const url = nodes[0].url;
    const em = await startCloud({ url, app });
    try {
      assert.equal(await where(em), 'cloud');
      const connect = await startConnect({ url, app });
      try {
        assert.equal(await where(em), 'local');
        const { stdout } = await execFileP(funcieBin, ['status', '--backend', url, '--app', app, '--json']);
        const sessions = JSON.parse(stdout);
        const listed = Array.isArray(sessions) ? sessions : sessions.sessions ?? sessions.consumers;
        assert.equal(listed.length, 1, stdout);
        assert.ok(JSON.stringify(listed[0]).includes(connect.session), stdout);

        let out = '';
        try {
          ({ stdout: out } = await execFileP(funcieBin, ['doctor', '--backend', url, '--app', app], { timeout: 60000 }));
        } catch (e) {
          out = e.stdout;  // a missing secret is a warning, not what this test is about
        }
        assert.match(out, new RegExp(`^ok\\s+cluster: cluster with 3 masters, app slot ${slot} on 127\\.0\\.0\\.1:${nodes[owner].port} \\(sharded pub/sub\\)`, 'm'), out);
        assert.match(out, new RegExp(`consumers: 1 connected to app ${app}: ${connect.session}`), out);
      } finally {
        await connect.stop();
      }
      assert.equal(await where(em), 'cloud');
    } finally {
      await em.stop();
    }
  });
});
