/**
 * A VSS daemon SIGKILLed while the guest is frozen cannot thaw by itself: the guest driver must run the
 * kernel's emergency thaw (VssGuest `onOrphanedFreeze`) and the host's THAW must fail plainly instead of
 * the guest staying frozen. Run against Debian's hv_vss_daemon and ours (standalone), both in the sandbox
 * with a fake mount table and fake FIFREEZE/FITHAW (HVSHIM_FAKE_FREEZE / --fake-freeze) on a tmpfs mounted
 * inside the sandbox: nothing of the machine can freeze. The shim's log shows the daemon froze and never
 * thawed; the emergency thaw then names exactly the frozen mount.
 *
 * Second case: the daemon is stopped (SIGSTOP) at the moment the driver hands it the FREEZE, then
 * SIGKILLed: a FREEZE in flight, never answered. The host's FREEZE fails and the emergency thaw still runs
 * (the daemon may have frozen before it died).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, test } from 'node:test';
import { VssGuest } from '../../src/devices/vss/guest.ts';
import { hostVssOffer, VssHost } from '../../src/devices/vss/host.ts';
import { HV_E_FAIL, HV_S_OK } from '../../src/protocol/ic/icmsg.ts';
import { VSS_OP_FREEZE, VSS_OP_THAW } from '../../src/protocol/ic/vss.ts';
import { systemClock } from '../../src/vmbus/channel-io.ts';
import { uapiIcStack } from '../fcopy-parity/ic-stack.ts';
import { watchDaemon } from '../fixtures/sandboxed-daemon.ts';
import { until } from '../fixtures/until.ts';
import { requirePeer } from '../peers.ts';
import { MNT, spawnFakeFreezeVss, vssRegistered } from './fake-freeze-daemon.ts';

const scratch = mkdtempSync(`${tmpdir()}/vss-killed-`);
after(() => rmSync(scratch, { recursive: true, force: true }));

async function killWhileFrozen(kind: 'real' | 'ours') {
  const dir = `${scratch}/${kind}`;
  const socket = `${scratch}/${kind}.sock`;
  mkdirSync(`${dir}/state`, { recursive: true });
  writeFileSync(`${dir}/state/fake-mounts`, `/dev/sdz1 ${MNT}/data ext4 rw,relatime 0 0\n`);
  const emergency: number[] = [];
  const stack = await uapiIcStack({
    socket,
    path: '/dev/vmbus/hv_vss',
    host: (ch) => new VssHost(ch, { clock: systemClock, offer: hostVssOffer('WS2022') }),
    guest: (ch, toDaemon) =>
      new VssGuest(ch, { clock: systemClock, toDaemon, onOrphanedFreeze: () => emergency.push(Date.now()) }),
  });
  const child = spawnFakeFreezeVss(kind, { socket, state: `${dir}/state`, mounts: ['data'] });
  const daemon = watchDaemon(child);
  try {
    await vssRegistered(stack);
    const freeze = await stack.host.request(VSS_OP_FREEZE);
    const frozenLog = daemon.ioctls();
    const beforeKill = emergency.length;
    process.kill(-child.pid!, 'SIGKILL');
    await daemon.exited;
    await until(() => !stack.guest.daemonRegistered, 'the guest to see the node closed');
    const thaw = await stack.host.request(VSS_OP_THAW);
    const finalLog = daemon.ioctls();
    return { freeze, frozenLog, finalLog, beforeKill, emergency: emergency.length, thaw };
  } finally {
    await stack.close();
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

for (const kind of ['real', 'ours'] as const) {
  test(`${kind === 'real' ? "Debian's hv_vss_daemon" : 'our hv_vss_daemon'} SIGKILLed while frozen: the guest kernel thaws, the host's THAW fails`, async () => {
    requirePeer('hv_vss_daemon', 'hyperv-daemons');
    requirePeer('unshare', 'util-linux');
    requirePeer('gcc', 'gcc');
    const r = await killWhileFrozen(kind);
    assert.equal(r.freeze.status, HV_S_OK);
    // The daemon froze the data mount and died without thawing it.
    assert.deepEqual(r.frozenLog, [`FIFREEZE ${MNT}/data`]);
    assert.deepEqual(r.finalLog, [`FIFREEZE ${MNT}/data`]);
    // So the kernel side ran its emergency thaw exactly once, only after the kill.
    assert.equal(r.beforeKill, 0);
    assert.equal(r.emergency, 1);
    // No daemon: the host learns the THAW failed instead of waiting on a frozen guest.
    assert.equal(r.thaw.status, HV_E_FAIL);
  });
}

async function killWithFreezeInFlight(kind: 'real' | 'ours') {
  const dir = `${scratch}/${kind}-inflight`;
  const socket = `${scratch}/${kind}-inflight.sock`;
  mkdirSync(`${dir}/state`, { recursive: true });
  writeFileSync(`${dir}/state/fake-mounts`, `/dev/sdz1 ${MNT}/data ext4 rw,relatime 0 0\n`);
  const emergency: number[] = [];
  let pgid = 0;
  let stoppedAtFreeze = false;
  const stack = await uapiIcStack({
    socket,
    path: '/dev/vmbus/hv_vss',
    host: (ch) => new VssHost(ch, { clock: systemClock, offer: hostVssOffer('WS2022') }),
    guest: (ch, toDaemon) =>
      new VssGuest(ch, {
        clock: systemClock,
        // Stop the daemon before the FREEZE reaches it: it can neither freeze nor answer.
        toDaemon: (msg) => {
          if (msg.length === 12 && msg[0] === VSS_OP_FREEZE && pgid) {
            process.kill(-pgid, 'SIGSTOP');
            stoppedAtFreeze = true;
          }
          return toDaemon(msg);
        },
        onOrphanedFreeze: () => emergency.push(Date.now()),
      }),
  });
  const child = spawnFakeFreezeVss(kind, { socket, state: `${dir}/state`, mounts: ['data'] });
  pgid = child.pid!;
  const daemon = watchDaemon(child);
  try {
    await vssRegistered(stack);
    const freezing = stack.host.request(VSS_OP_FREEZE);
    await until(() => stoppedAtFreeze, 'the FREEZE to reach the daemon');
    const beforeKill = emergency.length;
    process.kill(-pgid, 'SIGKILL');
    await daemon.exited;
    const freeze = await freezing;
    const ioctls = daemon.ioctls();
    return {
      freeze,
      ioctls,
      beforeKill,
      emergency: emergency.length,
      registered: stack.guest.daemonRegistered,
    };
  } finally {
    await stack.close();
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

for (const kind of ['real', 'ours'] as const) {
  test(`${kind === 'real' ? "Debian's hv_vss_daemon" : 'our hv_vss_daemon'} killed with a FREEZE in flight: the host's FREEZE fails, the guest kernel thaws`, async () => {
    requirePeer('hv_vss_daemon', 'hyperv-daemons');
    requirePeer('unshare', 'util-linux');
    requirePeer('gcc', 'gcc');
    const r = await killWithFreezeInFlight(kind);
    // The daemon never got to freeze or answer ...
    assert.deepEqual(r.ioctls, []);
    // ... so the host's FREEZE fails (Linux vss_on_reset) instead of waiting out the 15-minute timeout,
    assert.equal(r.freeze.status, HV_E_FAIL);
    assert.equal(r.registered, false);
    // and the kernel ran its emergency thaw once, after the kill (an unanswered FREEZE may have frozen).
    assert.equal(r.beforeKill, 0);
    assert.equal(r.emergency, 1);
  });
}
