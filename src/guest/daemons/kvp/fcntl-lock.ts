/**
 * Whole-file open-file-description write locks through koffi: `fcntl(fd, F_OFD_SETLK(W), &fl)` with
 * `struct flock` { l_type, l_whence = SEEK_SET, l_start = 0, l_len = 0 (to the end), l_pid = 0 (required
 * for OFD locks) }. Constants from Linux include/uapi/asm-generic/fcntl.h (F_OFD_SETLK 37, F_OFD_SETLKW 38,
 * F_WRLCK 1, F_UNLCK 2) and the x86-64 glibc `struct flock` (bits/fcntl.h: short l_type @0, short
 * l_whence @2, off_t l_start @8, off_t l_len @16, pid_t l_pid @24; 32 bytes), checked against the system
 * headers by test/guest/daemons/kvp/fcntl-lock.test.ts. fcntl is variadic in C; it is declared here with a
 * fixed `void *` third parameter (the x86-64 and AArch64 Linux ABIs pass it alike) because koffi cannot run
 * variadic functions on its worker threads. Loaded lazily.
 */
import { libcErrno, libcFunction } from '../libc.ts';

export const F_OFD_SETLK = 37;
export const F_OFD_SETLKW = 38;
export const F_WRLCK = 1;
export const F_UNLCK = 2;
export const SEEK_SET = 0;
/** `sizeof(struct flock)` and its field offsets on x86-64 glibc. */
export const FLOCK = { size: 32, l_type: 0, l_whence: 2, l_start: 8, l_len: 16, l_pid: 24 } as const;
/** errno values (asm-generic/errno-base.h, errno.h): the lock is held elsewhere / interrupted. */
export const EAGAIN = 11;
export const EINTR = 4;

interface Fcntl {
  (fd: number, cmd: number, fl: Uint8Array): number;
  async(fd: number, cmd: number, fl: Uint8Array, cb: (err: unknown, res: number) => void): void;
}

let fcntl: Fcntl | null = null;

function load(): Fcntl {
  fcntl ??= libcFunction<Fcntl>('int fcntl(int fd, int cmd, void *fl)');
  return fcntl;
}

/** A `struct flock` for a whole-file lock of type `type`. */
function flock(type: number): Uint8Array {
  const b = new Uint8Array(FLOCK.size);
  const dv = new DataView(b.buffer);
  dv.setInt16(FLOCK.l_type, type, true);
  dv.setInt16(FLOCK.l_whence, SEEK_SET, true);
  return b; // l_start, l_len (0 = to the end of the file) and l_pid (0, as OFD locks require) stay 0
}

const WRLCK = flock(F_WRLCK);
const UNLCK = flock(F_UNLCK);

/** Raised when fcntl fails for another reason than a held lock. */
export class FcntlError extends Error {
  readonly errno: number;
  constructor(what: string, e: number) {
    super(`fcntl ${what} failed: errno ${e}`);
    this.errno = e;
  }
}

/**
 * Takes or releases the whole-file write lock on `fd` (open for writing).
 * - `'try-lock'`: F_OFD_SETLK; returns false when another descriptor or process holds a conflicting lock.
 * - `'lock-wait'`: F_OFD_SETLKW, blocking the thread until granted (retried on EINTR); returns true.
 * - `'unlock'`: returns true.
 * @throws FcntlError for any other failure (EBADF: not open for writing, ENOLCK...).
 */
export function fcntlLock(fd: number, op: 'try-lock' | 'lock-wait' | 'unlock'): boolean {
  const f = load();
  for (;;) {
    const r =
      op === 'unlock'
        ? f(fd, F_OFD_SETLK, UNLCK)
        : f(fd, op === 'try-lock' ? F_OFD_SETLK : F_OFD_SETLKW, WRLCK);
    if (r === 0) return true;
    const e = libcErrno();
    if (e === EINTR) continue;
    if (op === 'try-lock' && e === EAGAIN) return false;
    throw new FcntlError(op, e);
  }
}

/**
 * F_OFD_SETLKW on koffi's worker thread: resolves once the lock is granted, without blocking the event
 * loop. (errno is per thread, so a failed call is retried once synchronously to learn why.)
 * @throws (rejects) FcntlError.
 */
fcntlLock.async = (fd: number): Promise<void> =>
  new Promise((res, rej) => {
    load().async(fd, F_OFD_SETLKW, WRLCK, (err, r) => {
      if (err) rej(err);
      else if (r === 0) res();
      else {
        try {
          if (fcntlLock(fd, 'try-lock')) res();
          else fcntlLock.async(fd).then(res, rej);
        } catch (e) {
          rej(e);
        }
      }
    });
  });
