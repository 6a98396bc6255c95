/**
 * Positional I/O on an image file. Reads past end of file yield zeros. A read-only open of a file with a dirty
 * log replays it into an in-memory overlay (4 KiB sectors and zero ranges) that reads see instead of the file.
 */
import { type FileHandle, open } from 'node:fs/promises';
import { HvError } from '../../protocol/errors.ts';
import { mapSourcePages } from '../file-io.ts';
import type { LogWrite } from './log.ts';

function ioError(e: unknown, path: string, what: string): HvError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new HvError('HV_ERR_NOT_FOUND', `${path}: no such file`);
  return new HvError('HV_ERR_IO', `${path}: ${what} failed: ${(e as Error).message}`);
}

export class ImageFile {
  readonly path: string;
  readonly readOnly: boolean;
  #fh: FileHandle;
  #size: number;
  #overlay: Map<number, Uint8Array> | null = null;
  #zeroRanges: Array<[number, number]> = [];

  private constructor(path: string, fh: FileHandle, size: number, readOnly: boolean) {
    this.path = path;
    this.#fh = fh;
    this.#size = size;
    this.readOnly = readOnly;
  }

  /** Opens an existing file. @throws HvError `HV_ERR_NOT_FOUND` / `HV_ERR_IO`. */
  static async open(path: string, readOnly: boolean): Promise<ImageFile> {
    try {
      const fh = await open(path, readOnly ? 'r' : 'r+');
      const st = await fh.stat();
      if (!st.isFile()) {
        await fh.close();
        throw new HvError('HV_ERR_INVALID_ARGUMENT', `${path} is not a regular file`);
      }
      return new ImageFile(path, fh, st.size, readOnly);
    } catch (e) {
      if (e instanceof HvError) throw e;
      throw ioError(e, path, 'open');
    }
  }

  /** Creates a new file (failing if it exists). */
  static async create(path: string): Promise<ImageFile> {
    try {
      return new ImageFile(path, await open(path, 'wx+'), 0, false);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new HvError(
          'HV_ERR_ALREADY_EXISTS',
          `${path} already exists; choose another path or delete it first`,
        );
      }
      throw ioError(e, path, 'create');
    }
  }

  /** Current file size in bytes (apparent, including an in-memory replay's extension). */
  get size(): number {
    return this.#size;
  }

  /** Bytes the file occupies on disk. */
  async allocatedBytes(): Promise<number> {
    const st = await this.#fh.stat();
    return st.blocks * 512;
  }

  /** Fills `buf` from `offset`; bytes past end of file read as zeros. */
  async read(buf: Uint8Array, offset: number): Promise<void> {
    let done = 0;
    try {
      while (done < buf.length) {
        const { bytesRead } = await this.#fh.read(buf, done, buf.length - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
    } catch (e) {
      throw ioError(e, this.path, `read at ${offset}`);
    }
    if (done < buf.length) buf.fill(0, done);
    if (this.#overlay) this.#applyOverlay(buf, offset);
  }

  /**
   * Writes `buf` at `offset` (bytes). A SIGKILL during the write leaves each logical sector old or new (never
   * mixed), given a sector-aligned `offset`: see {@link mapSourcePages}.
   * @throws HvError `HV_ERR_INVALID_STATE` (read-only), `HV_ERR_IO`.
   */
  async write(buf: Uint8Array, offset: number): Promise<void> {
    if (this.readOnly) throw new HvError('HV_ERR_INVALID_STATE', `${this.path} is open read-only`);
    mapSourcePages(buf);
    let done = 0;
    try {
      while (done < buf.length) {
        const { bytesWritten } = await this.#fh.write(buf, done, buf.length - done, offset + done);
        done += bytesWritten;
      }
    } catch (e) {
      throw ioError(e, this.path, `write at ${offset}`);
    }
    if (offset + buf.length > this.#size) this.#size = offset + buf.length;
  }

  /** Sets the file length (sparse extension reads as zeros). */
  async truncate(length: number): Promise<void> {
    try {
      await this.#fh.truncate(length);
    } catch (e) {
      throw ioError(e, this.path, 'truncate');
    }
    this.#size = length;
  }

  async sync(): Promise<void> {
    try {
      await this.#fh.datasync();
    } catch (e) {
      throw ioError(e, this.path, 'fsync');
    }
  }

  async close(): Promise<void> {
    await this.#fh.close();
  }

  /** Applies log writes: to the file when writable, else into the in-memory overlay. */
  async applyLogWrites(writes: readonly LogWrite[], lastFileOffset: number): Promise<void> {
    if (!this.readOnly) {
      const zero = new Uint8Array(Math.min(1024 * 1024, Math.max(...writes.map((w) => w.length), 0)));
      for (const w of writes) {
        if (w.data) await this.write(w.data, w.fileOffset);
        else {
          for (let o = 0; o < w.length; o += zero.length) {
            await this.write(zero.subarray(0, Math.min(zero.length, w.length - o)), w.fileOffset + o);
          }
        }
      }
      if (this.#size < lastFileOffset) await this.truncate(lastFileOffset);
      await this.sync();
      return;
    }
    this.#overlay ??= new Map();
    for (const w of writes) {
      if (w.data) {
        this.#overlay.set(w.fileOffset, w.data);
      } else {
        for (const k of [...this.#overlay.keys()])
          if (k >= w.fileOffset && k < w.fileOffset + w.length) this.#overlay.delete(k);
        this.#zeroRanges.push([w.fileOffset, w.fileOffset + w.length]);
      }
      if (w.fileOffset + w.length > this.#size) this.#size = w.fileOffset + w.length;
    }
    if (this.#size < lastFileOffset) this.#size = lastFileOffset;
  }

  #applyOverlay(buf: Uint8Array, offset: number): void {
    const end = offset + buf.length;
    for (const [s, e] of this.#zeroRanges) {
      if (s < end && e > offset) buf.fill(0, Math.max(s, offset) - offset, Math.min(e, end) - offset);
    }
    for (const [s, data] of this.#overlay!) {
      if (s < end && s + data.length > offset) {
        const from = Math.max(s, offset);
        const to = Math.min(s + data.length, end);
        buf.set(data.subarray(from - s, to - s), from - offset);
      }
    }
  }
}
