/**
 * The few libc calls the guest daemons need that Node does not expose, through koffi (prebuilt FFI):
 * `linkat(AT_SYMLINK_FOLLOW)` to give an O_TMPFILE file its name, and `ioctl(FIFREEZE/FITHAW)`.
 * Constants from Linux include/uapi/linux/fcntl.h (AT_FDCWD -100, AT_SYMLINK_FOLLOW 0x400, O_TMPFILE
 * 020000000 | O_DIRECTORY 0200000) and include/uapi/linux/fs.h (FIFREEZE `_IOWR('X', 119, int)`,
 * FITHAW `_IOWR('X', 120, int)`). Loaded lazily, so importing this module costs nothing.
 */
import { createRequire } from 'node:module';

export const AT_FDCWD = -100;
export const AT_SYMLINK_FOLLOW = 0x400;
/** O_TMPFILE as open(2) takes it (includes O_DIRECTORY). */
export const O_TMPFILE = 0o20000000 | 0o200000;
/** `_IOWR('X', 119, int)` = 0xC0045877. */
export const FIFREEZE = 0xc0045877;
/** `_IOWR('X', 120, int)` = 0xC0045878. */
export const FITHAW = 0xc0045878;

interface Koffi {
  load(path: string): { func(signature: string): unknown };
  errno(): number;
}

let koffi: Koffi | null = null;
let lib: { func(signature: string): unknown } | null = null;

/**
 * The libc.so.6 function with the C `signature` (koffi syntax), as koffi binds it; libc is loaded on the
 * first call. The one koffi loader of the daemons (also used by kvp/fcntl-lock.ts).
 */
export function libcFunction<F>(signature: string): F {
  if (!lib) {
    koffi = createRequire(import.meta.url)('koffi') as Koffi;
    lib = koffi.load('libc.so.6');
  }
  return lib.func(signature) as F;
}

/** The calling thread's errno after the last libc call made through {@link libcFunction}. */
export function libcErrno(): number {
  return koffi ? koffi.errno() : 0;
}

type Linkat = (olddirfd: number, oldpath: string, newdirfd: number, newpath: string, flags: number) => number;
type Ioctl = (fd: number, req: number, arg: number) => number;

let linkat: Linkat | null = null;
let ioctl: Ioctl | null = null;

/** Raised with the C errno name when a call fails. */
export class ErrnoError extends Error {
  readonly errno: number;
  constructor(call: string, errno: number) {
    super(`${call} failed: errno ${errno}`);
    this.errno = errno;
  }
}

/** errno values we react to (asm-generic/errno-base.h). */
export const EEXIST = 17;
export const EBUSY = 16;
export const EINVAL = 22;
export const EOPNOTSUPP = 95;

/**
 * Names the open file `fd` (an O_TMPFILE) as `path`: `linkat(AT_FDCWD, "/proc/self/fd/<fd>", AT_FDCWD,
 * path, AT_SYMLINK_FOLLOW)`.
 * @throws ErrnoError (EEXIST when `path` exists).
 */
export function linkFd(fd: number, path: string): void {
  linkat ??= libcFunction<Linkat>('int linkat(int, const char *, int, const char *, int)');
  if (linkat(AT_FDCWD, `/proc/self/fd/${fd}`, AT_FDCWD, path, AT_SYMLINK_FOLLOW) !== 0) {
    throw new ErrnoError('linkat', libcErrno());
  }
}

/**
 * `ioctl(fd, FIFREEZE or FITHAW, 0)` on a descriptor of the mount point.
 * @throws ErrnoError (EBUSY: already frozen; EINVAL on thaw: not frozen; EOPNOTSUPP: fs cannot freeze).
 */
export function freezeIoctl(fd: number, op: 'freeze' | 'thaw'): void {
  ioctl ??= libcFunction<Ioctl>('int ioctl(int, unsigned long, int)');
  if (ioctl(fd, op === 'freeze' ? FIFREEZE : FITHAW, 0) !== 0) {
    throw new ErrnoError(op === 'freeze' ? 'FIFREEZE' : 'FITHAW', libcErrno());
  }
}

/** `sync_file_range` flag: start writeback of the range's dirty pages, do not wait (linux/fs.h). */
export const SYNC_FILE_RANGE_WRITE = 2;
type SyncFileRange = (fd: number, offset: number, nbytes: number, flags: number) => number;
let syncFileRange: SyncFileRange | null = null;

/**
 * `sync_file_range(fd, offset, nbytes, SYNC_FILE_RANGE_WRITE)`: starts writing `nbytes` bytes at `offset`
 * (bytes) to disk without waiting, so a later fsync finds most of the file already written. Advisory:
 * failures are ignored (the fsync that follows is what makes the data durable).
 */
export function startWriteback(fd: number, offset: number, nbytes: number): void {
  try {
    syncFileRange ??= libcFunction<SyncFileRange>('int sync_file_range(int, int64_t, int64_t, unsigned int)');
    syncFileRange(fd, offset, nbytes, SYNC_FILE_RANGE_WRITE);
  } catch {
    // no koffi or no such call: the final fsync does all the work
  }
}
