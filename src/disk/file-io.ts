/**
 * Positional file I/O for the disk formats: whole-buffer `pread`/`pwrite` loops over a raw fd (no
 * FileHandle objects per call), fsync, truncate, and the temp-file + fsync + rename publish step.
 * Every failure becomes `HvError('HV_ERR_IO')` naming the path; a read that meets end of file where the
 * structure promised bytes becomes `HvError('HV_ERR_CORRUPT')` ("truncated").
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HvError } from '../protocol/errors.ts';

function ioError(op: string, file: string, err: unknown): HvError {
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ENOENT') return new HvError('HV_ERR_NOT_FOUND', `${file}: no such file`, { path: file });
  return new HvError('HV_ERR_IO', `${file}: ${op} failed: ${e?.message ?? String(err)}`, {
    path: file,
    errno: e?.code,
  });
}

function preadOnce(fd: number, buf: Uint8Array, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

function pwriteOnce(fd: number, buf: Uint8Array, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.write(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

/** One open image file. Offsets are byte positions in the file. */
export class DiskFile {
  readonly path: string;
  readonly readOnly: boolean;
  #fd: number;

  private constructor(file: string, fd: number, readOnly: boolean) {
    this.path = file;
    this.#fd = fd;
    this.readOnly = readOnly;
  }

  /**
   * Opens an existing file (`create: true` creates or truncates it, `exclusive: true` fails if it exists).
   * @throws HvError HV_ERR_NOT_FOUND when missing, HV_ERR_ALREADY_EXISTS with `exclusive`, HV_ERR_IO otherwise.
   */
  static async open(
    file: string,
    opts: { readOnly?: boolean; create?: boolean; exclusive?: boolean } = {},
  ): Promise<DiskFile> {
    const readOnly = opts.readOnly ?? false;
    const flags = opts.create ? (opts.exclusive ? 'wx+' : 'w+') : readOnly ? 'r' : 'r+';
    try {
      const fd = await new Promise<number>((resolve, reject) =>
        fs.open(file, flags, 0o644, (e, fd) => (e ? reject(e) : resolve(fd))),
      );
      return new DiskFile(file, fd, readOnly);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new HvError(
          'HV_ERR_ALREADY_EXISTS',
          `${file} already exists; choose another path or delete it first`,
          { path: file },
        );
      }
      throw ioError('open', file, err);
    }
  }

  /** Reads up to `len` bytes at `pos` into `buf[off..]`; returns the count (short only at end of file). */
  async readAt(buf: Uint8Array, pos: number, off = 0, len = buf.length - off): Promise<number> {
    let done = 0;
    try {
      while (done < len) {
        const n = await preadOnce(this.#fd, buf, off + done, len - done, pos + done);
        if (n === 0) break;
        done += n;
      }
    } catch (err) {
      throw ioError('read', this.path, err);
    }
    return done;
  }

  /**
   * Reads exactly `len` bytes at `pos`.
   * @throws HvError HV_ERR_CORRUPT naming `what` when the file ends first (a truncated image).
   */
  async readExact(
    buf: Uint8Array,
    pos: number,
    what: string,
    off = 0,
    len = buf.length - off,
  ): Promise<void> {
    const n = await this.readAt(buf, pos, off, len);
    if (n !== len) {
      throw new HvError(
        'HV_ERR_CORRUPT',
        `${this.path}: ${what} at byte ${pos} runs past the end of the file (truncated image)`,
        {
          path: this.path,
          offset: pos,
        },
      );
    }
  }

  /**
   * Writes all of `buf[off..off+len)` at `pos`. A SIGKILL leaves each 512-byte sector old or new, never
   * mixed, for a sector-aligned `pos`: see {@link mapSourcePages}.
   */
  async writeAt(buf: Uint8Array, pos: number, off = 0, len = buf.length - off): Promise<void> {
    mapSourcePages(buf.subarray(off, off + len));
    let done = 0;
    try {
      while (done < len) done += await pwriteOnce(this.#fd, buf, off + done, len - done, pos + done);
    } catch (err) {
      throw ioError('write', this.path, err);
    }
  }

  /** Apparent size and allocated bytes (`blocks * 512`). */
  async stat(): Promise<{ size: number; allocated: number }> {
    try {
      const st = await new Promise<fs.Stats>((resolve, reject) =>
        fs.fstat(this.#fd, (e, s) => (e ? reject(e) : resolve(s))),
      );
      return { size: st.size, allocated: st.blocks * 512 };
    } catch (err) {
      throw ioError('stat', this.path, err);
    }
  }

  async size(): Promise<number> {
    return (await this.stat()).size;
  }

  /** Sets the file length; extending leaves a hole (reads as zeros). */
  async truncate(len: number): Promise<void> {
    try {
      await new Promise<void>((resolve, reject) =>
        fs.ftruncate(this.#fd, len, (e) => (e ? reject(e) : resolve())),
      );
    } catch (err) {
      throw ioError('truncate', this.path, err);
    }
  }

  /** fsync(2). */
  async sync(): Promise<void> {
    if (this.readOnly) return;
    try {
      await new Promise<void>((resolve, reject) => fs.fsync(this.#fd, (e) => (e ? reject(e) : resolve())));
    } catch (err) {
      throw ioError('fsync', this.path, err);
    }
  }

  /** fdatasync(2): data and the metadata needed to read it back (size), not timestamps. */
  async datasync(): Promise<void> {
    if (this.readOnly) return;
    try {
      await new Promise<void>((resolve, reject) =>
        fs.fdatasync(this.#fd, (e) => (e ? reject(e) : resolve())),
      );
    } catch (err) {
      throw ioError('fdatasync', this.path, err);
    }
  }

  async close(): Promise<void> {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    await new Promise<void>((resolve) => fs.close(fd, () => resolve()));
  }
}

/** Where {@link mapSourcePages} stores what it read, so the reads are not optimized away. */
const sink = { touched: 0 };

/**
 * Reads one byte of every 4 KiB page of `buf`, so each page is mapped before the kernel copies from it.
 * Why: Linux's buffered write copies from user memory with page faults disabled; at an unmapped source page it
 * commits the bytes copied so far, faults the page in and goes on, checking for a fatal signal in between. A
 * buffer whose pages were never touched (a fresh zero-filled ArrayBuffer: calloc'd, mapped lazily) therefore
 * lets a SIGKILL end the write at a source page boundary, and ArrayBuffer data does not start on a page (glibc
 * puts 16 bytes of chunk header first), so that boundary falls inside a 512-byte sector of the file: the sector
 * is left half old, half new. With every source page mapped the copy stops only at file page boundaries, which
 * are sector boundaries. Cost: one load per 4 KiB.
 */
export function mapSourcePages(buf: Uint8Array): void {
  let x = 0;
  for (let i = 0; i < buf.length; i += 4096) x |= buf[i]!;
  if (buf.length > 0) x |= buf[buf.length - 1]!;
  sink.touched = x;
}

/** Temp path beside `dest` (same directory, so `rename` is atomic). */
export function tempPathFor(dest: string): string {
  return path.join(
    path.dirname(dest),
    `.${path.basename(dest)}.${process.pid}.${Date.now().toString(36)}.tmp`,
  );
}

/** Publishes a finished temp file: fsync it, rename it over `dest`, fsync the directory. */
export async function publishTemp(temp: string, dest: string): Promise<void> {
  try {
    const fh = await fs.promises.open(temp, 'r+');
    await fh.sync();
    await fh.close();
    await fs.promises.rename(temp, dest);
    const dir = await fs.promises.open(path.dirname(dest), 'r');
    await dir.sync().catch(() => undefined);
    await dir.close();
  } catch (err) {
    throw ioError('publish', dest, err);
  }
}

/** Removes a file if present (used to clean up temp files after a failure). */
export async function removeQuietly(file: string): Promise<void> {
  await fs.promises.rm(file, { force: true }).catch(() => undefined);
}

const ZERO_PAGE = new Uint8Array(1 << 16);

/** True when every byte of `buf[off..off+len)` is zero (memcmp against a static zero page). */
export function isZero(buf: Uint8Array, off = 0, len = buf.length - off): boolean {
  let p = off;
  const end = off + len;
  while (p < end) {
    const n = Math.min(end - p, ZERO_PAGE.length);
    if (
      Buffer.compare(Buffer.from(buf.buffer, buf.byteOffset + p, n), Buffer.from(ZERO_PAGE.buffer, 0, n)) !==
      0
    )
      return false;
    p += n;
  }
  return true;
}

/** Common argument check for `read`/`write`/`trim`: sector-aligned and inside `[0, size)`. */
export function checkRange(offset: number, length: number, size: number, sector: number, op: string): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new HvError(
      'HV_ERR_INVALID_ARGUMENT',
      `${op}: offset ${offset} and length ${length} must be non-negative integers`,
    );
  }
  if (offset % sector !== 0 || length % sector !== 0) {
    throw new HvError(
      'HV_ERR_INVALID_ARGUMENT',
      `${op}: offset ${offset} and length ${length} must be multiples of the ${sector}-byte sector`,
    );
  }
  if (offset + length > size) {
    throw new HvError(
      'HV_ERR_INVALID_ARGUMENT',
      `${op}: range ${offset}+${length} lies past the end of the ${size}-byte disk`,
    );
  }
}

/**
 * Zero-detection block status for formats without allocation maps (raw, fixed VHD): reads
 * `[offset, offset+length)` of the disk, stored at file byte `base + offset`, in `probe`-sized steps and
 * returns the state of the first step and how far it extends.
 */
export async function scanZeroStatus(
  file: DiskFile,
  base: number,
  offset: number,
  length: number,
  probe: Uint8Array,
): Promise<{ state: 'data' | 'zero'; length: number }> {
  let state: 'data' | 'zero' | undefined;
  let run = 0;
  for (let p = offset; p < offset + length; p += probe.length) {
    const n = Math.min(probe.length, offset + length - p);
    const got = await file.readAt(probe, base + p, 0, n);
    if (got < n) probe.fill(0, got, n);
    const s = isZero(probe, 0, n) ? 'zero' : 'data';
    if (state === undefined) state = s;
    else if (s !== state) break;
    run += n;
  }
  return { state: state ?? 'zero', length: run };
}
