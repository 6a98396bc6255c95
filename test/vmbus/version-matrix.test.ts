/**
 * Version matrix: each host profile × each guest version list / maximum negotiates what real Hyper-V and the
 * real guests would. Rules: the host accepts exact matches of versions up to its maximum (OpenVMM
 * vm/devices/vmbus/vmbus_server/src/channels.rs); Linux drivers/hv/connection.c tries 5.3, 5.2, 5.1, 5.0,
 * 4.1, 4.0, 3.0, 2.4 highest first (skipping those above `max_version`) and INITIATE_CONTACT for >= 5.0 goes
 * on connection id 4, which pre-5.0 hosts do not listen on (HV_STATUS_INVALID_CONNECTION_ID → next
 * version); FreeBSD sys/dev/hyperv/vmbus/vmbus.c tries 4.0, 3.0, 2.4, 1.1, 0.13. Host maxima per release:
 * vmbus-core-ics.md §1.1 (WIN7 = WS2008R2 … 5.3 = WS2022). The expected versions below are written by
 * hand from those rules, not computed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHvError } from '../../src/protocol/errors.ts';
import {
  FREEBSD_VMBUS_VERSIONS,
  LINUX_VMBUS_VERSIONS,
  VERSION_WIN10_V6_0,
  versionString,
} from '../../src/protocol/vmbus/constants.ts';
import { type HostProfileName, hostProfile } from '../../src/vmbus/host-profiles.ts';
import { createDeterministicVm } from '../../src/vmbus/vm-link.ts';

const PROFILES: HostProfileName[] = [
  'WS2008R2',
  'WS2012',
  'WS2012R2',
  'WS2016',
  'WS2019',
  'WS2022',
  'WS2025',
];

/** guest → expected negotiated version per profile in PROFILES order (null = no common version). */
const MATRIX: { guest: string; versions: readonly number[]; max?: number; expect: (string | null)[] }[] = [
  {
    guest: 'Linux',
    versions: LINUX_VMBUS_VERSIONS,
    expect: [null, '2.4', '3.0', '4.0', '5.2', '5.3', '5.3'],
  },
  {
    guest: 'Linux max_version=5.0',
    versions: LINUX_VMBUS_VERSIONS,
    max: 0x00050000,
    expect: [null, '2.4', '3.0', '4.0', '5.0', '5.0', '5.0'],
  },
  {
    guest: 'Linux max_version=4.0',
    versions: LINUX_VMBUS_VERSIONS,
    max: 0x00040000,
    expect: [null, '2.4', '3.0', '4.0', '4.0', '4.0', '4.0'],
  },
  {
    guest: 'Linux max_version=3.0',
    versions: LINUX_VMBUS_VERSIONS,
    max: 0x00030000,
    expect: [null, '2.4', '3.0', '3.0', '3.0', '3.0', '3.0'],
  },
  {
    guest: 'FreeBSD',
    versions: FREEBSD_VMBUS_VERSIONS,
    expect: ['1.1', '2.4', '3.0', '4.0', '4.0', '4.0', '4.0'],
  },
  {
    guest: 'FreeBSD max 2.4',
    versions: FREEBSD_VMBUS_VERSIONS,
    max: 0x00020004,
    expect: ['1.1', '2.4', '2.4', '2.4', '2.4', '2.4', '2.4'],
  },
];

for (const row of MATRIX) {
  test(`version matrix: ${row.guest} guest against every host profile`, async () => {
    for (const [i, name] of PROFILES.entries()) {
      const vm = createDeterministicVm({
        profile: hostProfile(name),
        client:
          row.max === undefined
            ? { versions: row.versions }
            : { versions: row.versions, maxVersion: row.max },
      });
      const p = vm.client.connect().then(
        (v) => versionString(v),
        (e: unknown) => {
          assert.ok(isHvError(e, 'HV_ERR_UNSUPPORTED'), String(e));
          return null;
        },
      );
      vm.run();
      assert.equal(await p, row.expect[i], `${row.guest} on ${name}`);
      assert.equal(vm.server.version === null ? null : versionString(vm.server.version), row.expect[i]);
      assert.equal(vm.server.stats.protocolErrors, 0);
    }
  });
}

test('from 5.0 the guest posts INITIATE_CONTACT on connection id 4 and then uses the msg_conn_id the host returned', async () => {
  const vm = createDeterministicVm({ profile: hostProfile('WS2022'), server: { msgConnId: 7 } });
  const p = vm.client.connect();
  vm.run();
  assert.equal(await p, 0x00050003);
  assert.equal(vm.client.messageConnectionId, 7);
  // Below 5.0 the guest stays on connection id 1 whatever the response's third field says (it echoes the version).
  const old = createDeterministicVm({ profile: hostProfile('WS2016'), server: { msgConnId: 7 } });
  const q = old.client.connect();
  old.run();
  assert.equal(await q, 0x00040000);
  assert.equal(old.client.messageConnectionId, 1);
});

test('a Copper-enabled WS2025 profile accepts 6.0 from a guest that lists it', async () => {
  const vm = createDeterministicVm({
    profile: hostProfile('WS2025', { copper: true }),
    client: { versions: [VERSION_WIN10_V6_0, ...LINUX_VMBUS_VERSIONS] },
  });
  const p = vm.client.connect();
  vm.run();
  assert.equal(versionString(await p), '6.0');
  // Without Copper the same guest walks down to 5.3.
  const plain = createDeterministicVm({
    profile: hostProfile('WS2025'),
    client: { versions: [VERSION_WIN10_V6_0, ...LINUX_VMBUS_VERSIONS] },
  });
  const q = plain.client.connect();
  plain.run();
  assert.equal(versionString(await q), '5.3');
});

test('hostProfile rejects unknown names with the list of valid ones', () => {
  assert.throws(() => hostProfile('WS2003'), /expected one of WS2008R2, WS2012/);
  assert.equal(hostProfile('ws2019').name, 'WS2019');
});
