/**
 * Parity: one scripted backup conversation through VssHost → IC → VssGuest driver → /dev/vmbus/hv_vss →
 * socket bridge, against Debian's real hv_vss_daemon (via native/hvshim with a fake mount table,
 * HVSHIM_MOUNTS, and fake FIFREEZE/FITHAW, HVSHIM_FAKE_FREEZE) and against ours (policy naming the same
 * data mount, --fake-freeze). As a second guard every listed mount point is a tmpfs mounted inside the
 * sandbox (tmpfs cannot be frozen), and `/` is not in the table: nothing of the machine can freeze.
 * What the host sees (status, flags) and which mount points each daemon froze and thawed must match.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, test } from 'node:test';
import { VssGuest } from '../../src/devices/vss/guest.ts';
import { hostVssOffer, VssHost } from '../../src/devices/vss/host.ts';
import { HV_E_FAIL, HV_S_OK } from '../../src/protocol/ic/icmsg.ts';
import {
  VSS_HBU_NO_AUTO_RECOVERY,
  VSS_OP_CREATE,
  VSS_OP_FREEZE,
  VSS_OP_GET_DM_INFO,
  VSS_OP_HOT_BACKUP,
  VSS_OP_THAW,
} from '../../src/protocol/ic/vss.ts';
import { systemClock } from '../../src/vmbus/channel-io.ts';
import { uapiIcStack } from '../fcopy-parity/ic-stack.ts';
import { watchDaemon } from '../fixtures/sandboxed-daemon.ts';
import { requirePeer } from '../peers.ts';
import { MNT, spawnFakeFreezeVss, vssRegistered } from './fake-freeze-daemon.ts';

const scratch = mkdtempSync(`${tmpdir()}/vss-parity-`);
after(() => rmSync(scratch, { recursive: true, force: true }));
const SCRIPT: [string, number][] = [
  ['HOT_BACKUP', VSS_OP_HOT_BACKUP],
  ['FREEZE', VSS_OP_FREEZE],
  ['THAW', VSS_OP_THAW],
  ['GET_DM_INFO', VSS_OP_GET_DM_INFO],
  ['CREATE', VSS_OP_CREATE],
  ['FREEZE again', VSS_OP_FREEZE],
  ['THAW again', VSS_OP_THAW],
];

async function runAgainst(kind: 'real' | 'ours') {
  const dir = `${scratch}/${kind}`;
  const socket = `${scratch}/${kind}.sock`;
  mkdirSync(`${dir}/state`, { recursive: true });
  // Linux's rules pick data (rw /dev/ fs) and skip efi (vfat), ro (read-only) and run (not /dev/).
  writeFileSync(
    `${dir}/state/fake-mounts`,
    `/dev/sdz1 ${MNT}/data ext4 rw,relatime 0 0\n/dev/sdz2 ${MNT}/efi vfat rw 0 0\n/dev/sdz3 ${MNT}/ro ext4 ro 0 0\ntmpfs ${MNT}/run tmpfs rw 0 0\n`,
  );
  const stack = await uapiIcStack({
    socket,
    path: '/dev/vmbus/hv_vss',
    host: (ch) => new VssHost(ch, { clock: systemClock, offer: hostVssOffer('WS2022') }),
    guest: (ch, toDaemon) => new VssGuest(ch, { clock: systemClock, toDaemon }),
  });
  const child = spawnFakeFreezeVss(kind, {
    socket,
    state: `${dir}/state`,
    mounts: ['data', 'efi', 'ro', 'run'],
  });
  const daemon = watchDaemon(child);
  try {
    await vssRegistered(stack);
    const seen: Record<string, { status: number; flags: number }> = {};
    for (const [name, op] of SCRIPT) seen[name] = await stack.host.request(op);
    const ioctls = daemon.ioctls();
    return { seen, ioctls, log: daemon.log };
  } finally {
    await stack.close();
    await daemon.reap();
  }
}

test("Debian's hv_vss_daemon and ours: same answers to the host, same (fake) freezes", async () => {
  requirePeer('hv_vss_daemon', 'hyperv-daemons');
  requirePeer('unshare', 'util-linux');
  requirePeer('gcc', 'gcc');
  const real = await runAgainst('real');
  const ours = await runAgainst('ours');
  if (process.env.VSS_PARITY_DUMP) console.log(JSON.stringify({ real, ours }, null, 1));

  // The reference run (real-peers.md §3.2, vmbus-core-ics.md §6.7).
  assert.deepEqual(real.seen.HOT_BACKUP, { status: HV_S_OK, flags: VSS_HBU_NO_AUTO_RECOVERY });
  assert.deepEqual(real.seen.FREEZE, { status: HV_S_OK, flags: 0 });
  assert.deepEqual(real.seen.GET_DM_INFO, { status: HV_S_OK, flags: 0 });
  assert.deepEqual(real.ioctls, [
    `FIFREEZE ${MNT}/data`,
    `FITHAW ${MNT}/data`,
    `FIFREEZE ${MNT}/data`,
    `FITHAW ${MNT}/data`,
  ]);
  assert.deepEqual(ours.seen, real.seen);
  assert.deepEqual(ours.ioctls, real.ioctls);
  assert.notEqual(real.seen.FREEZE.status, HV_E_FAIL);
});
