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

interface Libc {
  linkat(olddirfd: number, oldpath: string, newdirfd: number, newpath: string, flags: number): number;
  ioctl(fd: number, req: number, arg: number): number;
  errno(): number;
}

let libc: Libc | null = null;

function load(): Libc {
  if (libc) return libc;
  const koffi = createRequire(import.meta.url)('koffi') as {
    load(p: string): { func(sig: string): (...a: unknown[]) => number };
    errno(): number;
  };
  const lib = koffi.load('libc.so.6');
  const linkat = lib.func('int linkat(int, const char *, int, const char *, int)');
  const ioctl = lib.func('int ioctl(int, unsigned long, int)');
  libc = {
    linkat: (a, b, c, d, e) => linkat(a, b, c, d, e),
    ioctl: (fd, req, arg) => ioctl(fd, req, arg),
    errno: () => koffi.errno(),
  };
  return libc;
}

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
  const c = load();
  if (c.linkat(AT_FDCWD, `/proc/self/fd/${fd}`, AT_FDCWD, path, AT_SYMLINK_FOLLOW) !== 0) {
    throw new ErrnoError('linkat', c.errno());
  }
}

/**
 * `ioctl(fd, FIFREEZE or FITHAW, 0)` on a descriptor of the mount point.
 * @throws ErrnoError (EBUSY: already frozen; EINVAL on thaw: not frozen; EOPNOTSUPP: fs cannot freeze).
 */
export function freezeIoctl(fd: number, op: 'freeze' | 'thaw'): void {
  const c = load();
  if (c.ioctl(fd, op === 'freeze' ? FIFREEZE : FITHAW, 0) !== 0) {
    throw new ErrnoError(op === 'freeze' ? 'FIFREEZE' : 'FITHAW', c.errno());
  }
}
