/**
 * Our `hv_fcopy_daemon`: serves the messages of `/dev/vmbus/hv_fcopy` (protocol/uapi/fcopy.ts) and writes
 * the files. Same results as Linux's tools/hv/hv_fcopy_daemon.c for what it gets right (target =
 * `path_name/file_name`; CREATE_PATH creates missing folders 0755; an existing target without OVER_WRITE →
 * HV_ERROR_ALREADY_EXISTS; files mode 0744; ENOSPC → HV_ERROR_DISK_FULL; other failures HV_E_FAIL), and
 * different where Linux goes wrong (reference/vmbus-core-ics.md §7.5, real-peers.md §3.1):
 * - the file is written as an unnamed O_TMPFILE and gets its name only at COMPLETE (fsync, then linkat or
 *   rename over the old file), so CANCEL, a failed write, a killed daemon or a crash never leave a partial
 *   file; a named temporary (`.<name>.hvis-fcopy-<pid>`) is the fallback on filesystems without O_TMPFILE;
 * - CREATE_PATH creates the whole folder path (Linux forgets the last component without a trailing `/`);
 * - names are kept byte for byte (the uio daemon turns non-ASCII into `X`);
 * - a file name with `/`, `.` or `..`, a folder that is relative or has a `..` component, and (when
 *   `allowedRoots` is set) a folder outside those roots are refused with HV_E_FAIL; writes past the size
 *   announced in START are refused.
 * Consecutive fragments are gathered in a 1 MiB buffer and written with one pwrite (a write per 6 KiB
 * fragment cost more than the whole VMBus round trip); a write error is then reported on the fragment or
 * the COMPLETE that flushes, and the unnamed file is dropped as with any failed write.
 * Logs go to the `log` callback (stderr by default), never to a file.
 */
import {
  closeSync,
  constants,
  fsyncSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  realpathSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { SubarrayCache, u32le } from '../../../protocol/bytes.ts';
import {
  CREATE_PATH,
  type DoFcopy,
  decodeDoFcopy,
  decodeFcopyOperation,
  HV_DO_FCOPY,
  OVER_WRITE,
  WRITE_TO_FILE,
} from '../../../protocol/ic/fcopy.ts';
import {
  HV_E_FAIL,
  HV_ERROR_ALREADY_EXISTS,
  HV_ERROR_DISK_FULL,
  HV_S_OK,
} from '../../../protocol/ic/icmsg.ts';
import { decodeUapiFcopyMessage, type UapiFcopyMessage } from '../../../protocol/uapi/fcopy.ts';
import { EEXIST, ErrnoError, linkFd, O_TMPFILE, startWriteback } from '../libc.ts';

export interface FcopyDaemonOptions {
  /**
   * Folders the host may write under (resolved through symlinks). Empty or absent: anywhere, as Linux.
   */
  allowedRoots?: readonly string[];
  log?: (line: string) => void;
}

interface OpenCopy {
  fd: number;
  target: string;
  dir: string;
  /** Named temporary when O_TMPFILE is unavailable, else null. */
  tmpName: string | null;
  overwrite: boolean;
  size: number;
}

/** Bytes gathered before one pwrite. */
const GATHER_BYTES = 1 << 20;

const errCode = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code;

/** One daemon instance: feed it each kernel message, send back the status it returns. */
export class FcopyDaemon {
  readonly #roots: string[];
  readonly #log: (line: string) => void;
  #open: OpenCopy | null = null;
  /** Fragments not yet written: `#gatherLen` bytes for file offset `#gatherAt`. */
  #gather: Uint8Array | null = null;
  #gatherAt = 0;
  #gatherLen = 0;
  /** The data view of the last WRITE_TO_FILE message. */
  readonly #data = new SubarrayCache();

  constructor(opts: FcopyDaemonOptions = {}) {
    this.#roots = (opts.allowedRoots ?? []).map((r) => realpathSync(resolve(r)));
    this.#log = opts.log ?? ((l) => process.stderr.write(`hv_fcopy_daemon(hvis): ${l}\n`));
  }

  /** True while a copy is in progress (between START and COMPLETE/CANCEL). */
  get busy(): boolean {
    return this.#open !== null;
  }

  /**
   * Handles one kernel→daemon message and returns the status to write back (HRESULT as u32).
   * Never throws: a malformed message gives HV_E_FAIL.
   */
  handle(raw: Uint8Array): number {
    let m: UapiFcopyMessage | DoFcopy;
    try {
      // WRITE_TO_FILE, the stream, is read in place: no message object and no new view per fragment.
      m = decodeFcopyOperation(raw) === WRITE_TO_FILE ? decodeDoFcopy(raw) : decodeUapiFcopyMessage(raw);
    } catch (e) {
      this.#log(`malformed message: ${(e as Error).message}`);
      return HV_E_FAIL;
    }
    if (!('op' in m)) {
      const at = HV_DO_FCOPY.offsets.data;
      return this.#write(m.offset, this.#data.of(raw, at, at + m.size));
    }
    switch (m.op) {
      case 'start':
        return this.#start(m.pathName, m.fileName, m.copyFlags, m.fileSize);
      case 'complete':
        return this.#complete();
      case 'cancel':
        this.#discard();
        return HV_S_OK;
      default:
        this.#log(`unknown operation ${u32le(raw, 0)}`);
        return HV_E_FAIL;
    }
  }

  /** Drops any copy in progress (daemon exit, device reset). */
  close(): void {
    this.#discard();
  }

  #refuse(why: string): number {
    this.#log(why);
    return HV_E_FAIL;
  }

  #start(pathName: string, fileName: string, flags: number, size: number): number {
    this.#discard();
    if (fileName === '' || fileName === '.' || fileName === '..' || fileName.includes('/')) {
      return this.#refuse(`refusing file name '${fileName}'`);
    }
    if (!isAbsolute(pathName) || pathName.split('/').includes('..')) {
      return this.#refuse(`refusing folder '${pathName}' (must be absolute, without '..')`);
    }
    const dir = resolve(pathName);
    try {
      if (flags & CREATE_PATH) mkdirSync(dir, { recursive: true, mode: 0o755 });
      if (!statSync(dir).isDirectory()) return this.#refuse(`not a folder: ${dir}`);
    } catch (e) {
      return this.#refuse(`invalid path ${dir}: ${errCode(e) ?? (e as Error).message}`);
    }
    if (this.#roots.length) {
      const real = realpathSync(dir);
      const inside = this.#roots.some((r) => {
        const rel = relative(r, real);
        return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
      });
      if (!inside) return this.#refuse(`folder ${real} is outside the allowed roots`);
    }
    const target = join(dir, fileName);
    const overwrite = (flags & OVER_WRITE) !== 0;
    if (!overwrite && exists(target)) {
      this.#log(`${target} exists and overwrite was not asked`);
      return HV_ERROR_ALREADY_EXISTS;
    }
    let fd: number;
    let tmpName: string | null = null;
    try {
      fd = openSync(dir, O_TMPFILE | constants.O_RDWR, 0o744);
    } catch (e) {
      if (errCode(e) !== 'EOPNOTSUPP' && errCode(e) !== 'EISDIR') {
        return this.#refuse(`open in ${dir} failed: ${errCode(e)}`);
      }
      tmpName = join(dir, `.${fileName}.hvis-fcopy-${process.pid}`);
      try {
        fd = openSync(tmpName, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o744);
      } catch (e2) {
        return this.#refuse(`open ${tmpName} failed: ${errCode(e2)}`);
      }
    }
    this.#open = { fd, target, dir, tmpName, overwrite, size };
    return HV_S_OK;
  }

  #write(offset: number, data: Uint8Array): number {
    const o = this.#open;
    if (!o) return this.#refuse('WRITE_TO_FILE without a file being copied');
    if (offset + data.length > o.size) {
      this.#discard();
      return this.#refuse(
        `write of ${data.length} bytes at ${offset} runs past the announced size ${o.size}`,
      );
    }
    this.#gather ??= new Uint8Array(GATHER_BYTES);
    const g = this.#gather;
    if (
      this.#gatherLen !== 0 &&
      (offset !== this.#gatherAt + this.#gatherLen || this.#gatherLen + data.length > g.length)
    ) {
      const status = this.#flush();
      if (status !== HV_S_OK) return status;
    }
    if (this.#gatherLen === 0) this.#gatherAt = offset;
    g.set(data, this.#gatherLen);
    this.#gatherLen += data.length;
    return this.#gatherLen === g.length ? this.#flush() : HV_S_OK;
  }

  /** Writes the gathered fragments; on failure drops the copy and returns the status for the host. */
  #flush(): number {
    const o = this.#open;
    const len = this.#gatherLen;
    this.#gatherLen = 0;
    if (!o || len === 0) return HV_S_OK;
    try {
      let done = 0;
      while (done < len) done += writeSync(o.fd, this.#gather!, done, len - done, this.#gatherAt + done);
      // Let the disk work while the copy goes on, so COMPLETE's fsync has little left to wait for.
      startWriteback(o.fd, this.#gatherAt, len);
      return HV_S_OK;
    } catch (e) {
      const code = errCode(e);
      this.#discard();
      this.#log(`write at ${this.#gatherAt} failed: ${code}`);
      return code === 'ENOSPC' || code === 'EDQUOT' ? HV_ERROR_DISK_FULL : HV_E_FAIL;
    }
  }

  #complete(): number {
    const o = this.#open;
    // Linux answers COMPLETE with success even when no file is open.
    if (!o) return HV_S_OK;
    const flushed = this.#flush();
    if (flushed !== HV_S_OK) return flushed;
    this.#open = null;
    try {
      fsyncSync(o.fd);
      if (o.tmpName) {
        if (!o.overwrite)
          linkSync(o.tmpName, o.target); // EEXIST if the target appeared meanwhile
        else renameSync(o.tmpName, o.target);
        if (!o.overwrite) unlinkSync(o.tmpName);
      } else {
        this.#nameTmpfile(o);
      }
      closeSync(o.fd);
      syncDir(o.dir);
      return HV_S_OK;
    } catch (e) {
      this.#open = o;
      this.#discard();
      const code =
        e instanceof ErrnoError ? (e.errno === EEXIST ? 'EEXIST' : `errno ${e.errno}`) : errCode(e);
      this.#log(`completing ${o.target} failed: ${code}`);
      if (code === 'EEXIST') return HV_ERROR_ALREADY_EXISTS;
      return code === 'ENOSPC' ? HV_ERROR_DISK_FULL : HV_E_FAIL;
    }
  }

  /** Links the O_TMPFILE in place; over an existing file through a named link and an atomic rename. */
  #nameTmpfile(o: OpenCopy): void {
    if (!o.overwrite) {
      linkFd(o.fd, o.target);
      return;
    }
    const side = join(o.dir, `.${o.target.slice(o.dir.length + 1)}.hvis-fcopy-${process.pid}`);
    linkFd(o.fd, side);
    try {
      renameSync(side, o.target);
    } catch (e) {
      unlinkSync(side);
      throw e;
    }
  }

  #discard(): void {
    this.#gatherLen = 0;
    const o = this.#open;
    if (!o) return;
    this.#open = null;
    try {
      closeSync(o.fd);
    } catch {
      // already closed
    }
    if (o.tmpName) {
      try {
        unlinkSync(o.tmpName);
      } catch {
        // gone already
      }
    }
  }
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

function syncDir(dir: string): void {
  let fd = -1;
  try {
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    fsyncSync(fd);
  } catch {
    // some filesystems refuse fsync on a directory; the data itself is synced
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}
