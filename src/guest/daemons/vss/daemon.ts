/**
 * Our `hv_vss_daemon`: answers FREEZE, THAW and HOT_BACKUP from `/dev/vmbus/hv_vss` (protocol/uapi/vss.ts).
 * Same answers as Linux's tools/hv/hv_vss_daemon.c (FREEZE/THAW: 0 or HV_E_FAIL; HOT_BACKUP and anything
 * else: 0; EBUSY on freeze and EINVAL on thaw count as done; a failed freeze thaws what it froze), and
 * different where Linux is dangerous (reference/vmbus-core-ics.md §7.4, real-peers.md §3.2):
 * - it freezes exactly the mount points its policy names, in order (never a walk of /proc/mounts), and
 *   refuses `/` unless `allowRoot` is set;
 * - a freeze always ends: after `freezeTimeoutMs` (default 60 s) without THAW it thaws by itself, and it
 *   thaws when the device closes or the daemon stops;
 * - it never writes to a filesystem: logs go to the `log` callback (stderr by default).
 * The FIFREEZE/FITHAW call is injectable (`ioctl`), so tests can run without freezing anything.
 */
import { closeSync, constants, openSync } from 'node:fs';
import { resolve } from 'node:path';
import type { UapiFile } from '../../../bridges/uapi/file.ts';
import { HvError } from '../../../protocol/errors.ts';
import { HV_E_FAIL, HV_S_OK } from '../../../protocol/ic/icmsg.ts';
import { VSS_OP_FREEZE, VSS_OP_HOT_BACKUP, VSS_OP_REGISTER1, VSS_OP_THAW } from '../../../protocol/ic/vss.ts';
import { encodeUapiVssOp, encodeUapiVssReply, VSS_REGISTER_REPLY_SIZE } from '../../../protocol/uapi/vss.ts';
import { EBUSY, EINVAL, ErrnoError, freezeIoctl } from '../libc.ts';

/** ioctl(fd, FIFREEZE/FITHAW) on a descriptor of a mount point; throws ErrnoError. */
export type FreezeIoctl = (fd: number, op: 'freeze' | 'thaw', mountPoint: string) => void;

export interface VssPolicy {
  /** Mount points to freeze, in this order (thawed in reverse). Empty: FREEZE succeeds and touches nothing. */
  mountPoints: readonly string[];
  /** Allow `/` in `mountPoints` (default false: refused at construction). */
  allowRoot?: boolean;
  /** Thaw by itself after this long frozen, ms (default 60 000). */
  freezeTimeoutMs?: number;
}

export interface VssDaemonOptions extends VssPolicy {
  ioctl?: FreezeIoctl;
  log?: (line: string) => void;
}

const defaultIoctl: FreezeIoctl = (fd, op) => freezeIoctl(fd, op);

/** One daemon instance. */
export class VssDaemon {
  readonly #mounts: string[];
  readonly #ioctl: FreezeIoctl;
  readonly #log: (line: string) => void;
  readonly #timeoutMs: number;
  /** Mount points frozen now, in freeze order. */
  #frozen: string[] = [];
  #autoThaw: ReturnType<typeof setTimeout> | null = null;

  /** @throws HvError `HV_ERR_INVALID_ARGUMENT` when the policy names `/` without `allowRoot`, or a relative path. */
  constructor(o: VssDaemonOptions) {
    this.#mounts = o.mountPoints.map((m) => {
      if (!m.startsWith('/'))
        throw new HvError('HV_ERR_INVALID_ARGUMENT', `mount point '${m}' must be absolute`);
      const r = resolve(m);
      if (r === '/' && !o.allowRoot) {
        throw new HvError(
          'HV_ERR_INVALID_ARGUMENT',
          "refusing to freeze '/': the root filesystem holds the daemon itself (pass allowRoot / --allow-root if this guest really wants it)",
        );
      }
      return r;
    });
    this.#ioctl = o.ioctl ?? defaultIoctl;
    this.#log = o.log ?? ((l) => process.stderr.write(`hv_vss_daemon(hvis): ${l}\n`));
    this.#timeoutMs = o.freezeTimeoutMs ?? 60_000;
  }

  /** Mount points frozen right now. */
  get frozen(): readonly string[] {
    return this.#frozen;
  }

  /** Handles one operation and returns the `error` to answer (0 or HV_E_FAIL). */
  handle(operation: number): number {
    switch (operation) {
      case VSS_OP_FREEZE:
        return this.#freeze();
      case VSS_OP_THAW:
        return this.thaw() ? HV_S_OK : HV_E_FAIL;
      case VSS_OP_HOT_BACKUP:
        this.#log('CHECK HOT BACKUP');
        return HV_S_OK;
      default:
        this.#log(`Illegal op:${operation}`);
        return HV_S_OK;
    }
  }

  #freeze(): number {
    this.thaw();
    for (const m of this.#mounts) {
      try {
        this.#on(m, 'freeze');
      } catch (e) {
        const errno = e instanceof ErrnoError ? e.errno : -1;
        if (errno === EBUSY) continue; // already frozen (same fs twice), as Linux
        this.#log(`FREEZE of ${m} failed: ${(e as Error).message}; thawing`);
        this.thaw();
        return HV_E_FAIL;
      }
      this.#frozen.push(m);
    }
    if (this.#frozen.length) {
      this.#autoThaw = setTimeout(() => {
        this.#autoThaw = null;
        this.#log(`no THAW within ${this.#timeoutMs} ms: thawing by myself`);
        this.thaw();
      }, this.#timeoutMs);
    }
    this.#log(`FREEZE succeeded (${this.#frozen.length} filesystems)`);
    return HV_S_OK;
  }

  /** Thaws everything frozen (reverse order). @returns false when a thaw failed (other than EINVAL). */
  thaw(): boolean {
    if (this.#autoThaw) clearTimeout(this.#autoThaw);
    this.#autoThaw = null;
    let ok = true;
    for (const m of this.#frozen.reverse()) {
      try {
        this.#on(m, 'thaw');
      } catch (e) {
        if (e instanceof ErrnoError && e.errno === EINVAL) continue; // not frozen
        ok = false;
        this.#log(`THAW of ${m} failed: ${(e as Error).message}`);
      }
    }
    this.#frozen = [];
    return ok;
  }

  #on(m: string, op: 'freeze' | 'thaw'): void {
    const fd = openSync(m, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      this.#ioctl(fd, op, m);
    } finally {
      closeSync(fd);
    }
  }
}

/**
 * Registers (REGISTER1, then the kernel's 4-byte answer) and answers requests until the file closes; a
 * freeze in force is thawed when it does.
 */
export async function serveVss(file: UapiFile, daemon: VssDaemon): Promise<void> {
  const out = new Uint8Array(12);
  try {
    file.write(encodeUapiVssOp(VSS_OP_REGISTER1, out));
    let first = true;
    for (;;) {
      const msg = await file.read();
      if (first) {
        first = false;
        if (msg.length === VSS_REGISTER_REPLY_SIZE) continue;
      }
      if (msg.length < 12) continue;
      file.write(encodeUapiVssReply(daemon.handle(msg[0]!), 0, out));
    }
  } catch {
    // closed
  } finally {
    daemon.thaw();
  }
}

/**
 * The guest kernel's emergency thaw for a VSS daemon that died frozen: FITHAW on each of `mountPoints`
 * (reverse order); a filesystem that is not frozen (EINVAL) or cannot be opened is passed over.
 * @returns the mount points a FITHAW succeeded on.
 */
export function emergencyThaw(mountPoints: readonly string[], ioctl: FreezeIoctl = defaultIoctl): string[] {
  const thawed: string[] = [];
  for (const m of [...mountPoints].reverse()) {
    let fd = -1;
    try {
      fd = openSync(m, constants.O_RDONLY | constants.O_DIRECTORY);
      ioctl(fd, 'thaw', m);
      thawed.push(m);
    } catch {
      // not frozen, or gone
    } finally {
      if (fd >= 0) closeSync(fd);
    }
  }
  return thawed;
}
