/**
 * What the VSS parity suites share: Debian's hv_vss_daemon or ours in the sandbox on the fake-freeze path
 * (the shim's fake mount table `<state>/fake-mounts`, FIFREEZE/FITHAW logged and not issued; ours told to
 * freeze `${MNT}/data`), with a tmpfs at `${MNT}/<d>` for each of `mounts`; and the wait for its
 * registration.
 */
import type { ChildProcess } from 'node:child_process';
import { spawnSandboxedDaemon } from '../../src/bridges/uapi/sandbox.ts';
import { until } from '../fixtures/until.ts';

/** Where the fake table's mount points live inside the sandbox. */
export const MNT = '/var/lib/vssmnt';

export function spawnFakeFreezeVss(
  kind: 'real' | 'ours',
  o: { socket: string; state: string; mounts: readonly string[] },
): ChildProcess {
  return spawnSandboxedDaemon({
    kind,
    service: 'vss',
    socket: o.socket,
    state: o.state,
    stderr: 'pipe',
    prelude: `for d in ${o.mounts.join(' ')}; do mkdir -p ${MNT}/$d && mount -t tmpfs -o size=1m vss$d ${MNT}/$d; done`,
    env: { HVSHIM_MOUNTS: '/var/lib/fake-mounts', HVSHIM_FAKE_FREEZE: '1' },
    args: ['--freeze', `${MNT}/data`, '--fake-freeze'],
  });
}

/** Waits until the guest driver saw the daemon register and the host's VSS channel negotiated. */
export function vssRegistered(
  stack: { guest: { daemonRegistered: boolean }; host: { status: { PrimaryStatusDescription: string } } },
  what = 'the daemon to register',
): Promise<void> {
  return until(
    () => stack.guest.daemonRegistered && stack.host.status.PrimaryStatusDescription === 'OK',
    what,
  );
}
