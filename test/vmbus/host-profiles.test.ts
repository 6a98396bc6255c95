/**
 * Host profiles: VMBus maxima per release (vmbus-core-ics.md §1.1) and IC versions whose host release the
 * sources name (Linux hv_kvp.c WS2008/WIN7/WIN8 server versions; hv_util.c UTIL_FW_VERSION 3.0; file copy
 * from WS2012R2).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allHostProfiles, hostProfile } from '../../src/vmbus/host-profiles.ts';

const v = (major: number, minor: number) => (major << 16) | minor;

test('each profile accepts every known version up to its maximum, exactly', () => {
  const max = Object.fromEntries(allHostProfiles().map((p) => [p.name, p.vmbusMaxVersion]));
  assert.deepEqual(max, {
    WS2008R2: v(1, 1),
    WS2012: v(2, 4),
    WS2012R2: v(3, 0),
    WS2016: v(4, 0),
    WS2019: v(5, 2),
    WS2022: v(5, 3),
    WS2025: v(5, 3),
  });
  assert.deepEqual(hostProfile('WS2012R2').vmbusVersions, [0x0d, v(1, 1), v(2, 4), v(3, 0)]);
  assert.equal(hostProfile('WS2016').vmbusVersions.includes(v(3, 1)), false);
  assert.equal(hostProfile('WS2025', { copper: true }).vmbusMaxVersion, v(6, 0));
});

test('IC versions: KVP 3.0 on WS2008R2 and 4.0 from WS2012; framework 3.0 offered; file copy from WS2012R2', () => {
  const top = (name: string, ic: 'kvp' | 'timesync' | 'fcopy') =>
    hostProfile(name).ics[ic]?.message.at(-1) ?? null;
  assert.equal(top('WS2008R2', 'kvp'), v(3, 0));
  assert.equal(top('WS2012', 'kvp'), v(4, 0));
  assert.equal(top('WS2012', 'fcopy'), null);
  assert.equal(top('WS2012R2', 'fcopy'), v(1, 1));
  assert.equal(top('WS2016', 'timesync'), v(4, 0));
  for (const p of allHostProfiles()) assert.deepEqual(p.ics.heartbeat?.framework, [v(1, 0), v(3, 0)]);
});
