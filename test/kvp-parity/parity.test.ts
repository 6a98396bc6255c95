/**
 * Parity: one scripted host scenario through the whole stack (KvpHost → VMBus IC → KvpGuest driver →
 * /dev/vmbus/hv_kvp → socket bridge) against Debian's real hv_kvp_daemon (via native/hvshim) and against
 * ours, each in the same kind of sandbox (scripts/sandbox-run.sh). What the host sees and the pool files (as
 * C strings) must match. Needs root, util-linux unshare, iproute2, gcc and hyperv-daemons.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, test } from 'node:test';
import { spawnSandboxedDaemon, writeFakeScripts } from '../../src/bridges/uapi/sandbox.ts';
import type { KvpHost } from '../../src/devices/kvp/host.ts';
import { parsePool } from '../../src/guest/daemons/kvp/pool-file.ts';
import { HV_E_FAIL, HV_S_CONT, HV_S_OK } from '../../src/protocol/ic/icmsg.ts';
import type { KvpRequest } from '../../src/protocol/ic/kvp.ts';
import { kvpStack } from '../devices/kvp/stack.ts';
import { watchDaemon } from '../fixtures/sandboxed-daemon.ts';
import { requirePeer } from '../peers.ts';

const GUID = '{f8615163-df3e-46c5-913f-f2d2f965ed0e}';
const MAC = '00:15:5D:00:00:01';
const scratch = mkdtempSync(`${tmpdir()}/kvp-parity-`);
after(() => rmSync(scratch, { recursive: true, force: true }));

const ip = (
  adapterId: string,
  ipAddr = '',
  extra: Partial<Record<'subNet' | 'gateWay' | 'dnsAddr', string>> = {},
) => ({
  adapterId,
  addrFamily: 1,
  dhcpEnabled: false,
  ipAddr,
  subNet: extra.subNet ?? '',
  gateWay: extra.gateWay ?? '',
  dnsAddr: extra.dnsAddr ?? '',
});

/** The host's script; each step's result as the host sees it. */
const SCRIPT: [string, KvpRequest][] = [
  [
    'set pool0 TestKey',
    { operation: 1, pool: 0, key: 'TestKey', value: { type: 'string', value: 'Hello from the host' } },
  ],
  ['set pool0 Second', { operation: 1, pool: 0, key: 'Second', value: { type: 'string', value: 'v2' } }],
  [
    'modify pool0 Second',
    { operation: 1, pool: 0, key: 'Second', value: { type: 'string', value: 'v2-modified ünïcödé ✓' } },
  ],
  ['set pool0 u32', { operation: 1, pool: 0, key: 'Count', value: { type: 'u32', value: 4294967295 } }],
  [
    'set pool0 u64',
    { operation: 1, pool: 0, key: 'Big', value: { type: 'u64', value: 18446744073709551615n } },
  ],
  ['get pool0 TestKey', { operation: 0, pool: 0, key: 'TestKey', valueSize: 2048 }],
  ['get pool0 missing', { operation: 0, pool: 0, key: 'NoSuchKey', valueSize: 2048 }],
  ...[0, 1, 2, 3, 4].map((i): [string, KvpRequest] => [
    `enum pool0 #${i}`,
    { operation: 3, pool: 0, index: i },
  ]),
  ['delete pool0 TestKey', { operation: 2, pool: 0, key: 'TestKey' }],
  ['delete pool0 missing', { operation: 2, pool: 0, key: 'TestKey' }],
  ...[0, 1, 2, 3].map((i): [string, KvpRequest] => [
    `enum pool0 after delete #${i}`,
    { operation: 3, pool: 0, index: i },
  ]),
  [
    'set pool3 HostName',
    { operation: 1, pool: 3, key: 'HostName', value: { type: 'string', value: 'HVIS-HOST.example' } },
  ],
  [
    'set pool3 VirtualMachineName',
    { operation: 1, pool: 3, key: 'VirtualMachineName', value: { type: 'string', value: 'vm1' } },
  ],
  ...[0, 1, 2].map((i): [string, KvpRequest] => [`enum pool3 #${i}`, { operation: 3, pool: 3, index: i }]),
  ['enum pool1 empty', { operation: 3, pool: 1, index: 0 }],
  ...[0, 1, 4, 5, 6, 7, 8, 9, 10].map((i): [string, KvpRequest] => [
    `enum pool2 #${i}`,
    { operation: 3, pool: 2, index: i },
  ]),
  ['get ip info', { operation: 4, pool: 1, ip: ip(MAC) }],
  ['get ip info unknown mac', { operation: 4, pool: 1, ip: ip('00:11:22:33:44:55') }],
  [
    'set ip info static',
    {
      operation: 5,
      pool: 1,
      ip: ip(GUID, '192.0.2.55', { subNet: '255.255.255.0', gateWay: '192.0.2.1', dnsAddr: '192.0.2.53' }),
    },
  ],
  [
    'set ip info unknown adapter',
    { operation: 5, pool: 1, ip: ip('{00000000-0000-0000-0000-000000000001}', '192.0.2.56') },
  ],
];

interface Outcome {
  transcript: { step: string; status: string; key: string; value: string; ip: unknown }[];
  pools: { key: string; value: string }[][];
  ifcfg: string | null;
}

async function runAgainst(kind: 'real' | 'ours'): Promise<Outcome> {
  const dir = `${scratch}/${kind}`;
  const socket = `${scratch}/${kind}.sock`;
  writeFakeScripts(`${dir}/scripts`);
  const stack = await kvpStack(socket);
  const child: ChildProcess = spawnSandboxedDaemon({
    kind,
    socket,
    state: `${dir}/state`,
    scripts: `${dir}/scripts`,
    deviceId: GUID,
  });
  const daemon = watchDaemon(child);
  try {
    await stack.daemonRegistered();
    const transcript: Outcome['transcript'] = [];
    for (const [step, req] of SCRIPT) {
      const r = await (stack.host as KvpHost).request(req);
      transcript.push({ step, status: `0x${r.status.toString(16)}`, key: r.key, value: r.value, ip: r.ip });
    }
    const pools = [0, 1, 2, 3, 4].map((n) => parsePool(readFileSync(`${dir}/state/hyperv/.kvp_pool_${n}`)));
    const f = `${dir}/state/hyperv/ifcfg-eth0`;
    return { transcript, pools, ifcfg: existsSync(f) ? readFileSync(f, 'utf8') : null };
  } finally {
    await stack.close();
    await daemon.reap();
  }
}

/** Address lists come from getifaddrs in the C daemon and os.networkInterfaces in ours: compare as sets. */
const asSet = (s: string) => [...new Set(s.split(';').filter((x) => x))].sort().join(';');

test('the real hv_kvp_daemon and ours give the host the same answers and leave the same pool files', async () => {
  requirePeer('hv_kvp_daemon', 'hyperv-daemons');
  requirePeer('unshare', 'util-linux');
  requirePeer('ip', 'iproute2');
  requirePeer('gcc', 'gcc');
  const real = await runAgainst('real');
  const ours = await runAgainst('ours');
  if (process.env.KVP_PARITY_DUMP) console.log(JSON.stringify({ real, ours }, null, 1));

  // Sanity of the reference run itself (facts from reference/real-peers.md §2.4).
  const byStep = (o: Outcome, s: string) => o.transcript.find((t) => t.step === s)!;
  assert.equal(byStep(real, 'set pool0 TestKey').status, `0x${HV_S_OK.toString(16)}`);
  assert.equal(byStep(real, 'get pool0 missing').status, `0x${HV_S_CONT.toString(16)}`);
  assert.equal(byStep(real, 'get ip info unknown mac').status, `0x${HV_E_FAIL.toString(16)}`);
  assert.equal(byStep(real, 'enum pool2 #1').value, '3.1');

  for (let i = 0; i < real.transcript.length; i++) {
    const a = real.transcript[i]!;
    const b = ours.transcript[i]!;
    if (
      a.step.startsWith('enum pool2') &&
      (a.key === 'NetworkAddressIPv4' || a.key === 'NetworkAddressIPv6')
    ) {
      assert.deepEqual({ ...b, value: asSet(b.value) }, { ...a, value: asSet(a.value) }, a.step);
    } else if (a.step === 'get ip info') {
      const norm = (x: typeof a) => {
        const v = x.ip as Record<string, string>;
        return { ...x, ip: { ...v, ipAddr: asSet(v.ipAddr ?? '') } };
      };
      assert.deepEqual(norm(b), norm(a), a.step);
    } else assert.deepEqual(b, a, a.step);
  }
  assert.deepEqual(ours.pools, real.pools);
  assert.equal(ours.ifcfg, real.ifcfg);
});
