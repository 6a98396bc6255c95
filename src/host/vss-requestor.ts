/**
 * The host's VSS requestor for a running VM: what Hyper-V does around a production checkpoint or a backup
 * (reference/vmbus-core-ics.md §6.7): HOT_BACKUP (can the guest take part?), FREEZE (the guest flushes and
 * freezes its filesystems), the snapshot work, THAW. {@link backup} always thaws, whatever the work does;
 * the guest also thaws by itself after its own timeout if the host disappears (our daemon: 60 s).
 */
import type { VssHost } from '../devices/vss/host.ts';
import { HvError } from '../protocol/errors.ts';
import { HV_S_OK } from '../protocol/ic/icmsg.ts';
import { VSS_OP_FREEZE, VSS_OP_HOT_BACKUP, VSS_OP_THAW } from '../protocol/ic/vss.ts';

const hex = (s: number) => `0x${(s >>> 0).toString(16).toUpperCase().padStart(8, '0')}`;

async function op(dev: VssHost, vmName: string, operation: number, what: string): Promise<number> {
  const r = await dev.request(operation);
  if (r.status !== HV_S_OK) {
    throw new HvError('HV_ERR_IO', `the guest of '${vmName}' could not ${what} (status ${hex(r.status)})`, {
      status: r.status,
    });
  }
  return r.flags;
}

/**
 * Asks the guest to freeze its filesystems (HOT_BACKUP first, as Hyper-V).
 * @throws (rejects) HvError `HV_ERR_IO` when the guest refuses (no VSS daemon, a freeze failed: the guest
 *   thawed what it froze), `HV_ERR_TIMEOUT` / `HV_ERR_CHANNEL_CLOSED` when it stops answering.
 */
export async function vssFreeze(dev: VssHost, vmName: string): Promise<void> {
  await op(dev, vmName, VSS_OP_HOT_BACKUP, 'take part in a backup');
  await op(dev, vmName, VSS_OP_FREEZE, 'freeze its filesystems');
}

/** Asks the guest to thaw. @throws (rejects) HvError `HV_ERR_IO` when a thaw failed. */
export async function vssThaw(dev: VssHost, vmName: string): Promise<void> {
  await op(dev, vmName, VSS_OP_THAW, 'thaw its filesystems');
}

/**
 * Freezes, runs `fn`, and always thaws (also when `fn` throws); returns what `fn` returned.
 * @throws (rejects) as {@link vssFreeze}, or `fn`'s error (after the thaw), or the thaw's error.
 */
export async function backup<T>(dev: VssHost, vmName: string, fn: () => Promise<T>): Promise<T> {
  await vssFreeze(dev, vmName);
  let result: T;
  try {
    result = await fn();
  } catch (e) {
    await vssThaw(dev, vmName).catch(() => {});
    throw e;
  }
  await vssThaw(dev, vmName);
  return result;
}
