/**
 * Raw disk image: the file's bytes are the disk's bytes, 512-byte logical sectors.
 * Sparse handling: Node exposes neither SEEK_DATA/SEEK_HOLE nor fallocate(PUNCH_HOLE), so
 * `blockStatus` detects zeros by reading (memcmp against a zero page) and `trim` writes zeros only where
 * the range is not already zero (so holes stay holes, but trimmed data is not deallocated).
 */
import { HvError } from '../protocol/errors.ts';
import type { BlockDevice, BlockStatus, VhdInfo } from './block-device.ts';
import { checkRange, DiskFile, isZero, scanZeroStatus } from './file-io.ts';

const SECTOR = 512;
/** Granularity of zero detection and of zero-filling trims, in bytes. */
const PROBE = 64 * 1024;

export class RawDisk implements BlockDevice {
  readonly format = 'Raw' as const;
  readonly type = 'Fixed' as const;
  readonly logicalSectorSize = SECTOR;
  readonly physicalSectorSize = SECTOR;
  readonly readOnly: boolean;
  readonly path: string;
  #file: DiskFile;
  #size: number;
  #probe = new Uint8Array(PROBE);

  private constructor(file: DiskFile, size: number) {
    this.#file = file;
    this.#size = size;
    this.readOnly = file.readOnly;
    this.path = file.path;
  }

  get size(): number {
    return this.#size;
  }

  /**
   * Opens a raw image; its size is the file length rounded down to a 512-byte sector.
   * @throws HvError HV_ERR_NOT_FOUND / HV_ERR_IO.
   */
  static async open(path: string, opts: { readOnly?: boolean } = {}): Promise<RawDisk> {
    const file = await DiskFile.open(path, { readOnly: opts.readOnly ?? false });
    const size = await file.size();
    return new RawDisk(file, size - (size % SECTOR));
  }

  /**
   * Creates a sparse raw image of `size` bytes (a multiple of 512).
   * @throws HvError HV_ERR_INVALID_ARGUMENT for a bad size, HV_ERR_ALREADY_EXISTS if the file exists.
   */
  static async create(path: string, opts: { size: number }): Promise<RawDisk> {
    if (!Number.isSafeInteger(opts.size) || opts.size <= 0 || opts.size % SECTOR !== 0) {
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `raw image size ${opts.size} must be a positive multiple of 512 bytes`,
      );
    }
    const file = await DiskFile.open(path, { create: true, exclusive: true });
    await file.truncate(opts.size);
    return new RawDisk(file, opts.size);
  }

  async read(buf: Uint8Array, offset: number): Promise<void> {
    checkRange(offset, buf.length, this.#size, SECTOR, 'read');
    const n = await this.#file.readAt(buf, offset);
    if (n < buf.length) buf.fill(0, n);
  }

  async write(buf: Uint8Array, offset: number): Promise<void> {
    this.#writable();
    checkRange(offset, buf.length, this.#size, SECTOR, 'write');
    await this.#file.writeAt(buf, offset);
  }

  async flush(): Promise<void> {
    await this.#file.sync();
  }

  async trim(offset: number, length: number): Promise<void> {
    this.#writable();
    checkRange(offset, length, this.#size, SECTOR, 'trim');
    const zero = new Uint8Array(Math.min(length, PROBE));
    for (let p = offset; p < offset + length; p += PROBE) {
      const n = Math.min(PROBE, offset + length - p);
      const got = await this.#file.readAt(this.#probe, p, 0, n);
      if (!isZero(this.#probe, 0, got)) await this.#file.writeAt(zero, p, 0, n);
    }
  }

  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    checkRange(offset, length, this.#size, SECTOR, 'blockStatus');
    if (length === 0)
      throw new HvError('HV_ERR_INVALID_ARGUMENT', 'blockStatus: length must be at least one sector');
    return scanZeroStatus(this.#file, 0, offset, length, this.#probe);
  }

  async resize(newSize: number): Promise<void> {
    this.#writable();
    if (!Number.isSafeInteger(newSize) || newSize <= 0 || newSize % SECTOR !== 0) {
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `new size ${newSize} must be a positive multiple of 512 bytes`,
      );
    }
    if (newSize < this.#size) {
      const min = await this.minimumSize();
      if (newSize < min) {
        throw new HvError(
          'HV_ERR_INVALID_ARGUMENT',
          `cannot shrink to ${newSize} bytes: data extends to byte ${min} (MinimumSize)`,
        );
      }
    }
    await this.#file.truncate(newSize);
    this.#size = newSize;
  }

  /** End of the last non-zero sector, in bytes (scans backwards from the end). */
  async minimumSize(): Promise<number> {
    let end = this.#size;
    while (end > 0) {
      const n = Math.min(PROBE, end);
      const got = await this.#file.readAt(this.#probe, end - n, 0, n);
      if (got < n) this.#probe.fill(0, got, n);
      if (!isZero(this.#probe, 0, n)) {
        let last = n;
        while (last > 0 && this.#probe[last - 1] === 0) last--;
        return end - n + Math.ceil(last / SECTOR) * SECTOR;
      }
      end -= n;
    }
    return 0;
  }

  async info(): Promise<VhdInfo> {
    const st = await this.#file.stat();
    return {
      Path: this.path,
      VhdFormat: 'Raw',
      VhdType: 'Fixed',
      FileSize: st.allocated,
      Size: this.#size,
      MinimumSize: await this.minimumSize(),
      LogicalSectorSize: SECTOR,
      PhysicalSectorSize: SECTOR,
      BlockSize: 0,
      ParentPath: null,
      DiskIdentifier: null,
      FragmentationPercentage: null,
      Alignment: 1,
      Attached: false,
    };
  }

  async close(): Promise<void> {
    await this.#file.close();
  }

  #writable(): void {
    if (this.readOnly) throw new HvError('HV_ERR_INVALID_STATE', `${this.path} is open read-only`);
  }
}
