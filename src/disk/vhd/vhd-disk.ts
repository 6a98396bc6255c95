/**
 * VHD (fixed, dynamic, differencing) behind the {@link BlockDevice} interface.
 * Source: Microsoft "Virtual Hard Disk Image Format Specification" v1.0; interop rules from QEMU
 * block/vpc.c and libvhdi (see /work/shared/reference/disk-formats.md §1, §3, §5).
 *
 * Policies:
 * - The trailing footer (last 512 bytes, or 511 for pre-Virtual-PC-2004 files) is authoritative. If it is
 *   damaged but the copy at offset 0 is good, the image opens read-only only (`test-vhd --repair` fixes it).
 * - Dynamic disks: reads ignore the sector bitmap (the spec guarantees unset sectors hold zeros; QEMU reads
 *   the same way); `check` flags bitmaps that contradict non-zero data. Differencing disks honour it.
 * - Block allocation order (crash safety): footer at the new end of file, then bitmap + zeroed data over the
 *   old footer, fdatasync, then the BAT entry. A crash in between leaks the block but never loses the footer
 *   or exposes garbage. Writes into allocated dynamic blocks set bitmap bits before the data (differencing:
 *   after), so a torn write never leaves data under a clear bit (or hides parent data).
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { HvError } from '../../protocol/errors.ts';
import type { BlockDevice, BlockStatus, VhdInfo, VhdType } from '../block-device.ts';
import { checkRange, DiskFile, publishTemp, removeQuietly, scanZeroStatus, tempPathFor } from '../file-io.ts';
import {
  bitmapBytes,
  decodeDynamicHeader,
  decodeUtf16le,
  dynHeaderChecksumOk,
  encodeDynamicHeader,
  encodeUtf16le,
  locatorSpaceBytes,
  type ParentLocator,
  PLAT_CODE,
  VHD_BAT_UNUSED,
  VHD_DYN_HEADER_SIZE,
  VHD_DYN_HEADER_VERSION,
  type VhdDynamicHeader,
} from './dynamic-header.ts';
import {
  decodeFooter,
  encodeFooter,
  footerChecksumOk,
  hasVhdCookie,
  randomUniqueId,
  sizeForCreate,
  uuidString,
  VHD_DISK_TYPE,
  VHD_FEATURES_RESERVED,
  VHD_FOOTER_SIZE,
  VHD_FORMAT_VERSION,
  VHD_MAX_DYNAMIC_SECTORS,
  type VhdFooter,
  type VhdSizeCalc,
  type VhdSizeRule,
  vhdTimestamp,
  visibleSize,
} from './footer.ts';

const SECTOR = 512;
const DEFAULT_BLOCK_SIZE = 2 * 1024 * 1024;
/** Largest locator payload we read (a path of 32 767 UTF-16 units). */
const MAX_LOCATOR_BYTES = 65536;

/** Opens a parent image (given its path) for a differencing child; supplied by the dispatcher in open.ts. */
export type OpenParent = (path: string) => Promise<BlockDevice>;

export interface VhdOpenOptions {
  readOnly?: boolean;
  /** Which footer field gives the size (QEMU's `force_size_calc`); default `auto` (creator table). */
  sizeCalc?: VhdSizeCalc;
  /** Required for differencing images. */
  openParent?: OpenParent;
}

export interface VhdCreateOptions {
  /** Virtual size in bytes (multiple of 512); ignored for differencing (the parent's size is used). */
  size?: number;
  type: 'fixed' | 'dynamic' | 'differencing';
  /** Dynamic/differencing block size in bytes: a power of two ≥ 512; default 2 MiB. */
  blockSize?: number;
  parentPath?: string;
  /** Size/geometry rule; default `exact` (Hyper-V). */
  sizeRule?: VhdSizeRule;
  /** Footer creator application (4 chars); default `win ` so readers use CurrentSize as Hyper-V images do. */
  creatorApplication?: string;
  openParent?: OpenParent;
}

/** Facts about a VHD needed by check/repair and the ops (not part of BlockDevice). */
export interface VhdLayout {
  footer: VhdFooter;
  footerOffset: number;
  footerLength: number;
  header: VhdDynamicHeader | null;
  bat: Uint32Array | null;
}

export class VhdDisk implements BlockDevice {
  readonly format = 'VHD' as const;
  readonly type: VhdType;
  readonly logicalSectorSize = SECTOR;
  readonly physicalSectorSize = SECTOR;
  readonly readOnly: boolean;
  readonly path: string;
  readonly parent: BlockDevice | null;
  readonly parentPath: string | null;
  #file: DiskFile;
  #footer: VhdFooter;
  #footerOffset: number;
  #size: number;
  #header: VhdDynamicHeader | null;
  #bat: Uint32Array | null;
  #blockSize: number;
  #bitmapSize: number;
  #nextFree: number;
  #bitmaps = new Map<number, Uint8Array>();
  #probe = new Uint8Array(65536);
  #closed = false;
  /** Serializes writes, trims and resizes of dynamic/differencing disks (allocation moves the file end). */
  #lock: Promise<unknown> = Promise.resolve();

  private constructor(init: {
    file: DiskFile;
    footer: VhdFooter;
    footerOffset: number;
    size: number;
    header: VhdDynamicHeader | null;
    bat: Uint32Array | null;
    nextFree: number;
    parent: BlockDevice | null;
    parentPath: string | null;
    readOnly: boolean;
  }) {
    this.#file = init.file;
    this.path = init.file.path;
    this.#footer = init.footer;
    this.#footerOffset = init.footerOffset;
    this.#size = init.size;
    this.#header = init.header;
    this.#bat = init.bat;
    this.#blockSize = init.header?.blockSize ?? 0;
    this.#bitmapSize = init.header ? bitmapBytes(init.header.blockSize) : 0;
    this.#nextFree = init.nextFree;
    this.parent = init.parent;
    this.parentPath = init.parentPath;
    this.readOnly = init.readOnly;
    this.type =
      init.footer.diskType === VHD_DISK_TYPE.FIXED
        ? 'Fixed'
        : init.footer.diskType === VHD_DISK_TYPE.DYNAMIC
          ? 'Dynamic'
          : 'Differencing';
  }

  get size(): number {
    return this.#size;
  }

  /** Unique Id of this disk (16 bytes as stored). */
  get uniqueId(): Uint8Array {
    return this.#footer.uniqueId;
  }

  /** Structures as read at open (for check and tests). */
  get layout(): VhdLayout {
    return {
      footer: this.#footer,
      footerOffset: this.#footerOffset,
      footerLength: VHD_FOOTER_SIZE,
      header: this.#header,
      bat: this.#bat,
    };
  }

  /**
   * Opens a VHD. Differencing images need `openParent` (openDisk in open.ts supplies it).
   * @throws HvError HV_ERR_CORRUPT for a damaged or truncated image (message says what and where),
   *   HV_ERR_NOT_FOUND for a missing file or parent, HV_ERR_UNSUPPORTED for an unknown format version.
   */
  static async open(path: string, opts: VhdOpenOptions = {}): Promise<VhdDisk> {
    const file = await DiskFile.open(path, { readOnly: opts.readOnly ?? false });
    try {
      return await VhdDisk.#openFile(file, opts);
    } catch (err) {
      await file.close();
      throw err;
    }
  }

  static async #openFile(file: DiskFile, opts: VhdOpenOptions): Promise<VhdDisk> {
    const where = file.path;
    const located = await readFooters(file);
    let readOnly = file.readOnly;
    if (!located.trailingOk) {
      if (!located.copyOk) {
        throw new HvError('HV_ERR_CORRUPT', `${where}: not a usable VHD: ${located.problem}`, {
          path: where,
        });
      }
      if (!readOnly) {
        throw new HvError(
          'HV_ERR_CORRUPT',
          `${where}: the footer at the end of the file is damaged (${located.problem}); the copy at offset 0 is good. Open read-only, or run 'hvis test-vhd --repair' to rewrite it`,
          { path: where },
        );
      }
      readOnly = true;
    }
    const footer = located.footer;
    const footerOffset = located.footerOffset;
    if (footer.formatVersion !== VHD_FORMAT_VERSION) {
      throw new HvError(
        'HV_ERR_UNSUPPORTED',
        `${where}: VHD format version 0x${footer.formatVersion.toString(16)} is not 0x00010000`,
      );
    }
    if (footer.diskType !== 2 && footer.diskType !== 3 && footer.diskType !== 4) {
      throw new HvError(
        'HV_ERR_CORRUPT',
        `${where}: disk type ${footer.diskType} is not fixed (2), dynamic (3) or differencing (4)`,
      );
    }
    let size = visibleSize(footer, opts.sizeCalc ?? 'auto');
    size -= size % SECTOR;
    if (footer.diskType === VHD_DISK_TYPE.FIXED) {
      if (size > footerOffset) {
        throw new HvError(
          'HV_ERR_CORRUPT',
          `${where}: fixed VHD says ${size} bytes but the file holds only ${footerOffset} bytes of data (truncated)`,
        );
      }
      return new VhdDisk({
        file,
        footer,
        footerOffset,
        size,
        header: null,
        bat: null,
        nextFree: footerOffset,
        parent: null,
        parentPath: null,
        readOnly,
      });
    }
    const { header, bat, metadataEnd, dataEnd } = await readDynamic(file, footer, footerOffset, size);
    let parent: BlockDevice | null = null;
    let parentPath: string | null = null;
    if (footer.diskType === VHD_DISK_TYPE.DIFFERENCING) {
      if (!opts.openParent)
        throw new HvError(
          'HV_ERR_INVALID_ARGUMENT',
          `${where}: differencing VHD needs a parent resolver (use openDisk)`,
        );
      ({ parent, parentPath } = await resolveParent(file, header, opts.openParent));
    }
    return new VhdDisk({
      file,
      footer,
      footerOffset,
      size,
      header,
      bat,
      nextFree: Math.max(footerOffset, metadataEnd, dataEnd),
      parent,
      parentPath,
      readOnly,
    });
  }

  /**
   * Creates a VHD at `path` (written to a temp file and renamed into place) and opens it read-write.
   * @throws HvError HV_ERR_INVALID_ARGUMENT for a bad size/block size/parent, HV_ERR_ALREADY_EXISTS.
   */
  static async create(path: string, opts: VhdCreateOptions): Promise<VhdDisk> {
    if (fs.existsSync(path))
      throw new HvError(
        'HV_ERR_ALREADY_EXISTS',
        `${path} already exists; choose another path or delete it first`,
      );
    const blockSize = opts.blockSize ?? DEFAULT_BLOCK_SIZE;
    let parentInfo: { uniqueId: Uint8Array; size: number; abs: string; mtime: number } | null = null;
    if (opts.type === 'differencing') {
      if (!opts.parentPath)
        throw new HvError('HV_ERR_INVALID_ARGUMENT', 'a differencing VHD needs --parent-path');
      if (!opts.openParent)
        throw new HvError(
          'HV_ERR_INVALID_ARGUMENT',
          'a differencing VHD needs a parent resolver (use createDisk)',
        );
      const abs = nodePath.resolve(opts.parentPath);
      const p = await opts.openParent(abs);
      try {
        if (!(p instanceof VhdDisk))
          throw new HvError(
            'HV_ERR_INVALID_ARGUMENT',
            `the parent of a VHD must be a VHD; ${abs} is ${p.format}`,
          );
        parentInfo = { uniqueId: p.uniqueId, size: p.size, abs, mtime: fs.statSync(abs).mtimeMs };
      } finally {
        await p.close();
      }
    }
    const requested = parentInfo ? parentInfo.size : (opts.size ?? 0);
    if (!Number.isSafeInteger(requested) || requested <= 0 || requested % SECTOR !== 0) {
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `VHD size ${requested} must be a positive multiple of 512 bytes`,
      );
    }
    const { size, geometry } = parentInfo
      ? { size: requested, geometry: sizeForCreate(requested, 'exact').geometry }
      : sizeForCreate(requested, opts.sizeRule ?? 'exact');
    if (opts.type !== 'fixed') {
      if (
        !Number.isInteger(blockSize) ||
        blockSize < SECTOR ||
        blockSize > 0x80000000 ||
        (blockSize & (blockSize - 1)) !== 0
      ) {
        throw new HvError(
          'HV_ERR_INVALID_ARGUMENT',
          `VHD block size ${blockSize} must be a power of two from 512 bytes (2 MiB is usual)`,
        );
      }
      if (size / SECTOR > VHD_MAX_DYNAMIC_SECTORS) {
        throw new HvError(
          'HV_ERR_INVALID_ARGUMENT',
          `a ${opts.type} VHD holds at most 2040 GiB (${VHD_MAX_DYNAMIC_SECTORS * SECTOR} bytes); use VHDX or a fixed VHD`,
        );
      }
    }
    const creator = (opts.creatorApplication ?? 'win ').padEnd(4, '\0').slice(0, 4);
    const footer: VhdFooter = {
      features: VHD_FEATURES_RESERVED,
      formatVersion: VHD_FORMAT_VERSION,
      dataOffset: opts.type === 'fixed' ? null : VHD_FOOTER_SIZE,
      timestamp: vhdTimestamp(),
      creatorApplication: creator,
      creatorVersion: 0x000a0000,
      creatorHostOs: 'Wi2k',
      originalSize: size,
      currentSize: size,
      geometry,
      diskType: opts.type === 'fixed' ? 2 : opts.type === 'dynamic' ? 3 : 4,
      checksum: 0,
      uniqueId: randomUniqueId(),
      savedState: 0,
    };
    const temp = tempPathFor(path);
    const file = await DiskFile.open(temp, { create: true, exclusive: true });
    try {
      if (opts.type === 'fixed') {
        await file.truncate(size);
        await file.writeAt(encodeFooter(footer), size);
      } else {
        await writeDynamicSkeleton(file, footer, blockSize, path, parentInfo);
      }
      await file.close();
      await publishTemp(temp, path);
    } catch (err) {
      await file.close();
      await removeQuietly(temp);
      throw err;
    }
    const openOpts: VhdOpenOptions = { sizeCalc: 'current-size' };
    if (opts.openParent) openOpts.openParent = opts.openParent;
    return VhdDisk.open(path, openOpts);
  }

  async read(buf: Uint8Array, offset: number): Promise<void> {
    checkRange(offset, buf.length, this.#size, SECTOR, 'read');
    if (this.#bat === null) {
      await this.#file.readExact(buf, offset, 'fixed VHD data');
      return;
    }
    let done = 0;
    while (done < buf.length) {
      const pos = offset + done;
      const blk = Math.floor(pos / this.#blockSize);
      const inBlock = pos - blk * this.#blockSize;
      const n = Math.min(buf.length - done, this.#blockSize - inBlock);
      const part = buf.subarray(done, done + n);
      const entry = this.#bat[blk]!;
      if (entry === VHD_BAT_UNUSED) {
        if (this.parent) await this.#readParent(part, pos);
        else part.fill(0);
      } else {
        const dataPos = entry * SECTOR + this.#bitmapSize + inBlock;
        if (this.parent) await this.#readDiffBlock(part, blk, dataPos, inBlock, pos);
        else await this.#file.readExact(part, dataPos, `data block ${blk}`);
      }
      done += n;
    }
  }

  async #readParent(part: Uint8Array, pos: number): Promise<void> {
    const p = this.parent!;
    const inParent = Math.max(0, Math.min(part.length, p.size - pos));
    if (inParent > 0) await p.read(part.subarray(0, inParent), pos);
    if (inParent < part.length) part.fill(0, inParent);
  }

  /** Differencing block: runs of set bitmap bits come from this file, clear bits from the parent. */
  async #readDiffBlock(
    part: Uint8Array,
    blk: number,
    dataPos: number,
    inBlock: number,
    pos: number,
  ): Promise<void> {
    const bm = await this.#bitmap(blk);
    const first = inBlock / SECTOR;
    const count = part.length / SECTOR;
    let i = 0;
    while (i < count) {
      const set = bitSet(bm, first + i);
      let j = i + 1;
      while (j < count && bitSet(bm, first + j) === set) j++;
      const sub = part.subarray(i * SECTOR, j * SECTOR);
      if (set) await this.#file.readExact(sub, dataPos + i * SECTOR, `data block ${blk}`);
      else await this.#readParent(sub, pos + i * SECTOR);
      i = j;
    }
  }

  async #bitmap(blk: number): Promise<Uint8Array> {
    let bm = this.#bitmaps.get(blk);
    if (!bm) {
      bm = new Uint8Array(this.#bitmapSize);
      await this.#file.readExact(bm, this.#bat![blk]! * SECTOR, `sector bitmap of block ${blk}`);
      this.#bitmaps.set(blk, bm);
    }
    return bm;
  }

  #exclusive<T>(f: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(f, f);
    this.#lock = run.catch(() => undefined);
    return run;
  }

  async write(buf: Uint8Array, offset: number): Promise<void> {
    this.#writable();
    checkRange(offset, buf.length, this.#size, SECTOR, 'write');
    if (this.#bat === null) {
      await this.#file.writeAt(buf, offset);
      return;
    }
    await this.#exclusive(() => this.#writeBlocks(buf, offset));
  }

  async #writeBlocks(buf: Uint8Array, offset: number): Promise<void> {
    const bat = this.#bat!;
    let done = 0;
    while (done < buf.length) {
      const pos = offset + done;
      const blk = Math.floor(pos / this.#blockSize);
      const inBlock = pos - blk * this.#blockSize;
      const n = Math.min(buf.length - done, this.#blockSize - inBlock);
      const part = buf.subarray(done, done + n);
      if (bat[blk] === VHD_BAT_UNUSED) await this.#allocate(blk, part, inBlock);
      else if (this.parent) {
        // Differencing: data before bits, so a torn write still reads the parent where bits are clear.
        await this.#file.writeAt(part, bat[blk]! * SECTOR + this.#bitmapSize + inBlock);
        await this.#setBits(blk, inBlock / SECTOR, n / SECTOR, true);
      } else {
        // Dynamic: bits before data, so a torn write never leaves data under a clear bit (a spec violation
        // libvhdi would read as zeros); a set bit over still-zero sectors is valid.
        await this.#setBits(blk, inBlock / SECTOR, n / SECTOR, true);
        await this.#file.writeAt(part, bat[blk]! * SECTOR + this.#bitmapSize + inBlock);
      }
      done += n;
    }
  }

  /**
   * Appends a block holding `part` at `inBlock`, in crash-safe order: the footer at the new end of file first
   * (one 512-byte write inside one page, so never torn), then [bitmap | data] over the old footer, fdatasync,
   * then the BAT entry. A kill at any point leaves a valid trailing footer, and at worst a block no BAT entry
   * points to yet (leaked space).
   */
  async #allocate(blk: number, part: Uint8Array, inBlock: number): Promise<void> {
    const at = this.#nextFree;
    const chunk = new Uint8Array(this.#bitmapSize + this.#blockSize);
    const bm = chunk.subarray(0, this.#bitmapSize);
    setBits(bm, inBlock / SECTOR, part.length / SECTOR, true);
    chunk.set(part, this.#bitmapSize + inBlock);
    await this.#file.writeAt(encodeFooter(this.#footer), at + chunk.length);
    await this.#file.writeAt(chunk, at);
    await this.#file.datasync();
    this.#bat![blk] = at / SECTOR;
    await this.#writeBatEntry(blk);
    this.#bitmaps.set(blk, bm.slice());
    this.#nextFree = at + this.#bitmapSize + this.#blockSize;
    this.#footerOffset = this.#nextFree;
  }

  async #writeBatEntry(blk: number): Promise<void> {
    const first = blk - (blk % 128);
    const sector = new Uint8Array(SECTOR);
    const dv = new DataView(sector.buffer);
    const bat = this.#bat!;
    for (let i = 0; i < 128; i++)
      dv.setUint32(i * 4, first + i < bat.length ? bat[first + i]! : VHD_BAT_UNUSED);
    const n = Math.min(SECTOR, (bat.length - first) * 4);
    await this.#file.writeAt(sector, this.#header!.tableOffset + first * 4, 0, n);
  }

  async #setBits(blk: number, first: number, count: number, value: boolean): Promise<void> {
    const bm = await this.#bitmap(blk);
    if (allBits(bm, first, count, value)) return;
    setBits(bm, first, count, value);
    const lo = Math.floor(first / 8 / SECTOR) * SECTOR;
    const hi = Math.ceil((first + count) / 8 / SECTOR) * SECTOR;
    await this.#file.writeAt(bm, this.#bat![blk]! * SECTOR + lo, lo, hi - lo);
  }

  async flush(): Promise<void> {
    if (!this.readOnly) await this.#file.sync();
  }

  async trim(offset: number, length: number): Promise<void> {
    this.#writable();
    checkRange(offset, length, this.#size, SECTOR, 'trim');
    if (this.#bat === null || this.parent) {
      await this.#zeroFill(offset, length);
      return;
    }
    await this.#exclusive(() => this.#trimBlocks(offset, length));
  }

  async #zeroFill(offset: number, length: number): Promise<void> {
    {
      // Fixed: no allocation map. Differencing: unallocating would expose the parent, so write zeros.
      const zero = new Uint8Array(Math.min(length, 1 << 20));
      for (let p = offset; p < offset + length; p += zero.length) {
        const n = Math.min(zero.length, offset + length - p);
        await this.write(zero.subarray(0, n), p);
      }
    }
  }

  async #trimBlocks(offset: number, length: number): Promise<void> {
    if (!this.#bat) return;
    let pos = offset;
    while (pos < offset + length) {
      const blk = Math.floor(pos / this.#blockSize);
      const inBlock = pos - blk * this.#blockSize;
      const n = Math.min(offset + length - pos, this.#blockSize - inBlock);
      const entry = this.#bat[blk]!;
      if (entry !== VHD_BAT_UNUSED) {
        const whole = inBlock === 0 && (n === this.#blockSize || pos + n >= this.#size);
        if (whole) {
          this.#bat[blk] = VHD_BAT_UNUSED;
          this.#bitmaps.delete(blk);
          await this.#writeBatEntry(blk);
        } else {
          await this.#file.writeAt(new Uint8Array(n), entry * SECTOR + this.#bitmapSize + inBlock);
          await this.#setBits(blk, inBlock / SECTOR, n / SECTOR, false);
        }
      }
      pos += n;
    }
  }

  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    checkRange(offset, length, this.#size, SECTOR, 'blockStatus');
    if (length === 0)
      throw new HvError('HV_ERR_INVALID_ARGUMENT', 'blockStatus: length must be at least one sector');
    if (this.#bat === null) return scanZeroStatus(this.#file, 0, offset, length, this.#probe);
    const end = offset + length;
    const blockEnd = (p: number) => Math.min(end, (Math.floor(p / this.#blockSize) + 1) * this.#blockSize);
    const allocated = (p: number) => this.#bat![Math.floor(p / this.#blockSize)] !== VHD_BAT_UNUSED;
    const first = allocated(offset);
    if (!first && this.parent) {
      const stop = blockEnd(offset);
      if (offset >= this.parent.size) return { state: 'zero', length: stop - offset };
      const st = await this.parent.blockStatus(offset, Math.min(stop, this.parent.size) - offset);
      return st;
    }
    let p = blockEnd(offset);
    while (p < end && allocated(p) === first && (first || !this.parent)) p = blockEnd(p);
    return { state: first ? 'data' : 'zero', length: p - offset };
  }

  async resize(newSize: number): Promise<void> {
    this.#writable();
    await this.#exclusive(() => this.#resize(newSize));
  }

  async #resize(newSize: number): Promise<void> {
    if (!Number.isSafeInteger(newSize) || newSize <= 0 || newSize % SECTOR !== 0) {
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `new size ${newSize} must be a positive multiple of 512 bytes`,
      );
    }
    if (this.#footer.savedState)
      throw new HvError('HV_ERR_INVALID_STATE', `${this.path} is in a saved state; resize is not allowed`);
    if (newSize === this.#size) return;
    if (newSize < this.#size) {
      const min = await this.minimumSize();
      if (newSize < min)
        throw new HvError(
          'HV_ERR_INVALID_ARGUMENT',
          `cannot shrink ${this.path} to ${newSize} bytes: data extends to byte ${min} (MinimumSize)`,
        );
    }
    const geometry = sizeForCreate(newSize, 'exact').geometry;
    const footer: VhdFooter = { ...this.#footer, currentSize: newSize, geometry };
    if (this.#bat === null) {
      const oldEnd = this.#footerOffset;
      if (newSize > oldEnd) {
        await this.#file.writeAt(encodeFooter(footer), newSize);
        await this.#file.datasync();
        await this.#file.writeAt(new Uint8Array(VHD_FOOTER_SIZE), oldEnd);
      } else {
        await this.#file.writeAt(encodeFooter(footer), newSize);
        await this.#file.datasync();
        await this.#file.truncate(newSize + VHD_FOOTER_SIZE);
      }
      this.#footerOffset = newSize;
    } else {
      if (newSize / SECTOR > VHD_MAX_DYNAMIC_SECTORS)
        throw new HvError('HV_ERR_INVALID_ARGUMENT', 'a dynamic VHD holds at most 2040 GiB');
      const needed = Math.ceil(newSize / this.#blockSize);
      if (needed > this.#bat.length) await this.#growBat(needed);
      else if (newSize < this.#size) {
        for (let b = needed; b < this.#bat.length; b++) {
          if (this.#bat[b] !== VHD_BAT_UNUSED) {
            this.#bat[b] = VHD_BAT_UNUSED;
            this.#bitmaps.delete(b);
            await this.#writeBatEntry(b);
          }
        }
      }
      await this.#file.writeAt(encodeFooter(footer), 0);
      await this.#file.writeAt(encodeFooter(footer), this.#footerOffset);
    }
    await this.#file.sync();
    this.#footer = footer;
    this.#size = newSize;
  }

  /** Moves the BAT to the end of the file with room for `entries`, then repoints the header (crash-safe order). */
  async #growBat(entries: number): Promise<void> {
    const bat = new Uint32Array(entries).fill(VHD_BAT_UNUSED);
    bat.set(this.#bat!);
    const batBytes = Math.ceil((entries * 4) / SECTOR) * SECTOR;
    const at = this.#nextFree;
    const buf = new Uint8Array(batBytes + VHD_FOOTER_SIZE);
    const dv = new DataView(buf.buffer);
    for (let i = 0; i < batBytes / 4; i++) dv.setUint32(i * 4, i < entries ? bat[i]! : VHD_BAT_UNUSED);
    buf.set(encodeFooter(this.#footer), batBytes);
    await this.#file.writeAt(buf, at);
    await this.#file.datasync();
    const header = { ...this.#header!, tableOffset: at, maxTableEntries: entries };
    await this.#file.writeAt(encodeDynamicHeader(header), this.#footer.dataOffset!);
    await this.#file.datasync();
    this.#header = header;
    this.#bat = bat;
    this.#nextFree = at + batBytes;
    this.#footerOffset = this.#nextFree;
  }

  /** Smallest size (bytes) that keeps every non-zero sector: end of the last non-zero sector. */
  async minimumSize(): Promise<number> {
    if (this.#bat === null) return scanBackForData(this, this.#size, this.#probe);
    let own = 0;
    for (let b = this.#bat.length - 1; b >= 0; b--) {
      if (this.#bat[b] === VHD_BAT_UNUSED || b * this.#blockSize >= this.#size) continue;
      own = await scanBackForData(
        this,
        Math.min(this.#size, (b + 1) * this.#blockSize),
        this.#probe,
        b * this.#blockSize,
      );
      if (own > 0) break;
    }
    if (this.parent) {
      const pi = await this.parent.info();
      own = Math.max(own, Math.min(this.#size, pi.MinimumSize ?? this.parent.size));
    }
    return own;
  }

  async info(): Promise<VhdInfo> {
    const st = await this.#file.stat();
    return {
      Path: nodePath.resolve(this.path),
      VhdFormat: 'VHD',
      VhdType: this.type,
      FileSize: st.size,
      Size: this.#size,
      MinimumSize: await this.minimumSize(),
      LogicalSectorSize: SECTOR,
      PhysicalSectorSize: SECTOR,
      BlockSize: this.#blockSize,
      ParentPath: this.parentPath,
      DiskIdentifier: uuidString(this.#footer.uniqueId),
      FragmentationPercentage: this.#fragmentation(),
      Alignment: 1,
      Attached: false,
    };
  }

  /** Percentage of allocated blocks not stored right after their virtual predecessor. */
  #fragmentation(): number {
    const bat = this.#bat;
    if (!bat) return 0;
    let allocated = 0;
    let scattered = 0;
    let prev = -1;
    for (let b = 0; b < bat.length; b++) {
      const e = bat[b]!;
      if (e === VHD_BAT_UNUSED) continue;
      if (allocated > 0 && e * SECTOR !== prev) scattered++;
      allocated++;
      prev = e * SECTOR + this.#bitmapSize + this.#blockSize;
    }
    return allocated > 1 ? Math.round((scattered / (allocated - 1)) * 100) : 0;
  }

  /** The sector bitmap of a block, or null when unallocated (copy; for check and merge). */
  async blockBitmap(blk: number): Promise<Uint8Array | null> {
    if (!this.#bat || this.#bat[blk] === undefined || this.#bat[blk] === VHD_BAT_UNUSED) return null;
    return (await this.#bitmap(blk)).slice();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#file.close();
    if (this.parent) await this.parent.close();
  }

  #writable(): void {
    if (this.readOnly) throw new HvError('HV_ERR_INVALID_STATE', `${this.path} is open read-only`);
  }
}

function bitSet(bm: Uint8Array, i: number): boolean {
  return (bm[i >> 3]! & (0x80 >> (i & 7))) !== 0;
}

function setBits(bm: Uint8Array, first: number, count: number, value: boolean): void {
  for (let i = first; i < first + count; i++) {
    if (value) bm[i >> 3]! |= 0x80 >> (i & 7);
    else bm[i >> 3]! &= ~(0x80 >> (i & 7));
  }
}

function allBits(bm: Uint8Array, first: number, count: number, value: boolean): boolean {
  for (let i = first; i < first + count; i++) if (bitSet(bm, i) !== value) return false;
  return true;
}

async function scanBackForData(dev: BlockDevice, end: number, probe: Uint8Array, start = 0): Promise<number> {
  let e = end;
  while (e > start) {
    const n = Math.min(probe.length, e - start);
    const view = probe.subarray(0, n);
    await dev.read(view, e - n);
    let last = n;
    while (last > 0 && view[last - 1] === 0) last--;
    if (last > 0) return e - n + Math.ceil(last / SECTOR) * SECTOR;
    e -= n;
  }
  return 0;
}

function tryDecode(b: Uint8Array): VhdFooter | null {
  try {
    return decodeFooter(b);
  } catch {
    return null;
  }
}

/** Where the footers are and whether they are usable. */
export interface FooterLocation {
  footer: VhdFooter;
  footerOffset: number;
  trailingOk: boolean;
  copyOk: boolean;
  problem: string;
}

/**
 * Finds the authoritative footer: last 512 bytes, else last 511 (pre-VPC2004), falling back to the copy at
 * offset 0 (dynamic/differencing only). Never throws for a bad footer; `problem` explains.
 * @throws HvError HV_ERR_CORRUPT when no footer is found at all.
 */
export async function readFooters(file: DiskFile): Promise<FooterLocation> {
  const size = await file.size();
  if (size < VHD_FOOTER_SIZE - 1)
    throw new HvError('HV_ERR_CORRUPT', `${file.path}: ${size} bytes is too small for a VHD footer`);
  const tail = new Uint8Array(VHD_FOOTER_SIZE);
  const tailLen = Math.min(size, VHD_FOOTER_SIZE);
  await file.readExact(tail, size - tailLen, 'VHD footer', 0, tailLen);
  let trailing: { f: VhdFooter; off: number; ok: boolean } | null = null;
  let problem = '';
  if (tailLen === VHD_FOOTER_SIZE && hasVhdCookie(tail)) {
    const f = tryDecode(tail);
    if (f) trailing = { f, off: size - VHD_FOOTER_SIZE, ok: footerChecksumOk(tail) };
    else problem = 'footer fields out of range';
  } else if (hasVhdCookie(tail, 1)) {
    const t511 = new Uint8Array(VHD_FOOTER_SIZE);
    t511.set(tail.subarray(1));
    trailing = {
      f: tryDecode(t511) ?? decodeFooter(t511, 'VHD footer (511 bytes)'),
      off: size - (VHD_FOOTER_SIZE - 1),
      ok: footerChecksumOk(t511, VHD_FOOTER_SIZE - 1),
    };
  } else problem = "no 'conectix' footer at the end of the file";
  if (trailing && !trailing.ok) problem = 'footer checksum mismatch';
  if (trailing?.ok && trailing.f.diskType === VHD_DISK_TYPE.FIXED) {
    return { footer: trailing.f, footerOffset: trailing.off, trailingOk: true, copyOk: false, problem };
  }
  let copy: VhdFooter | null = null;
  let copyOk = false;
  if (size >= VHD_FOOTER_SIZE * 2) {
    const head = new Uint8Array(VHD_FOOTER_SIZE);
    await file.readExact(head, 0, 'VHD footer copy');
    if (hasVhdCookie(head)) {
      copy = tryDecode(head);
      copyOk = copy !== null && footerChecksumOk(head) && copy.diskType !== VHD_DISK_TYPE.FIXED;
    }
  }
  if (trailing?.ok)
    return { footer: trailing.f, footerOffset: trailing.off, trailingOk: true, copyOk, problem };
  if (copy && copyOk) {
    const off = trailing
      ? trailing.off
      : size - ((size - VHD_FOOTER_SIZE) % SECTOR === 0 ? VHD_FOOTER_SIZE : 0);
    return {
      footer: copy,
      footerOffset: trailing ? trailing.off : off,
      trailingOk: false,
      copyOk: true,
      problem,
    };
  }
  throw new HvError(
    'HV_ERR_CORRUPT',
    `${file.path}: ${problem || 'footer checksum mismatch'}${copy ? ', and the copy at offset 0 is damaged too' : ''}`,
    {
      path: file.path,
    },
  );
}

/**
 * Reads and validates the dynamic header and BAT. Every length is checked against the file before it
 * drives an allocation.
 */
export async function readDynamic(
  file: DiskFile,
  footer: VhdFooter,
  footerOffset: number,
  size: number,
): Promise<{ header: VhdDynamicHeader; bat: Uint32Array; metadataEnd: number; dataEnd: number }> {
  const where = file.path;
  const off = footer.dataOffset;
  if (off === null || off % SECTOR !== 0 || off + VHD_DYN_HEADER_SIZE > footerOffset) {
    throw new HvError(
      'HV_ERR_CORRUPT',
      `${where}: dynamic header offset ${off ?? 'none'} is not a sector inside the file`,
    );
  }
  const raw = new Uint8Array(VHD_DYN_HEADER_SIZE);
  await file.readExact(raw, off, 'dynamic disk header');
  const header = decodeDynamicHeader(raw);
  if (!dynHeaderChecksumOk(raw))
    throw new HvError('HV_ERR_CORRUPT', `${where}: dynamic disk header checksum mismatch`);
  if (header.headerVersion !== VHD_DYN_HEADER_VERSION) {
    throw new HvError(
      'HV_ERR_UNSUPPORTED',
      `${where}: dynamic header version 0x${header.headerVersion.toString(16)} is not 0x00010000`,
    );
  }
  const bs = header.blockSize;
  if (bs < SECTOR || (bs & (bs - 1)) !== 0)
    throw new HvError('HV_ERR_CORRUPT', `${where}: block size ${bs} is not a power of two of at least 512`);
  if (header.maxTableEntries * bs < size) {
    throw new HvError(
      'HV_ERR_CORRUPT',
      `${where}: BAT has ${header.maxTableEntries} entries of ${bs} bytes, too few for ${size} bytes`,
    );
  }
  const batBytes = header.maxTableEntries * 4;
  if (header.tableOffset % SECTOR !== 0 || header.tableOffset + batBytes > footerOffset) {
    throw new HvError(
      'HV_ERR_CORRUPT',
      `${where}: BAT at byte ${header.tableOffset} (${batBytes} bytes) lies outside the file`,
    );
  }
  const batRaw = new Uint8Array(batBytes);
  await file.readExact(batRaw, header.tableOffset, 'BAT');
  const dv = new DataView(batRaw.buffer);
  const bat = new Uint32Array(header.maxTableEntries);
  for (let i = 0; i < bat.length; i++) bat[i] = dv.getUint32(i * 4);
  const bitmap = bitmapBytes(bs);
  const meta: [number, number][] = [
    [0, VHD_FOOTER_SIZE],
    [off, off + VHD_DYN_HEADER_SIZE],
    [header.tableOffset, header.tableOffset + Math.ceil(batBytes / SECTOR) * SECTOR],
  ];
  if (footer.diskType === VHD_DISK_TYPE.DIFFERENCING) {
    for (const l of header.locators) {
      if (l.platformCode !== PLAT_CODE.NONE && l.platformDataLength > 0)
        meta.push([l.platformDataOffset, l.platformDataOffset + locatorSpaceBytes(l)]);
    }
  }
  const metadataEnd = Math.max(...meta.map((m) => m[1]));
  const blocks: [number, number, number][] = [];
  for (let i = 0; i < bat.length; i++) {
    const e = bat[i]!;
    if (e === VHD_BAT_UNUSED) continue;
    const start = e * SECTOR;
    const end = start + bitmap + bs;
    if (end > footerOffset) {
      throw new HvError(
        'HV_ERR_CORRUPT',
        `${where}: block ${i} at byte ${start} runs past the end of the data (truncated image or bad BAT entry)`,
        {
          path: where,
          block: i,
        },
      );
    }
    for (const [a, b] of meta) {
      if (start < b && end > a)
        throw new HvError(
          'HV_ERR_CORRUPT',
          `${where}: BAT entry ${i} points into metadata at byte ${start}`,
          { path: where, block: i },
        );
    }
    blocks.push([start, end, i]);
  }
  blocks.sort((a, b) => a[0] - b[0]);
  let dataEnd = 0;
  for (let k = 0; k < blocks.length; k++) {
    const [s, e, i] = blocks[k]!;
    if (k > 0 && s < blocks[k - 1]![1]) {
      throw new HvError(
        'HV_ERR_CORRUPT',
        `${where}: blocks ${blocks[k - 1]![2]} and ${i} overlap in the file`,
        { path: where, block: i },
      );
    }
    dataEnd = Math.max(dataEnd, e);
  }
  return { header, bat, metadataEnd, dataEnd };
}

/** Candidate parent paths, in the order tried: W2ru, W2ku, Parent Unicode Name. */
export async function parentCandidates(file: DiskFile, header: VhdDynamicHeader): Promise<string[]> {
  const dir = nodePath.dirname(nodePath.resolve(file.path));
  const fileSize = await file.size();
  const out: string[] = [];
  const add = (p: string) => {
    if (!p) return;
    let q = p.replace(/\\/g, '/');
    if (/^[A-Za-z]:\//.test(q)) return; // a Windows drive path cannot be resolved here
    if (q.startsWith('file://')) q = decodeURIComponent(q.slice(7));
    const abs = nodePath.isAbsolute(q) ? q : nodePath.resolve(dir, q);
    if (!out.includes(abs)) out.push(abs);
  };
  const order = [PLAT_CODE.W2RU, PLAT_CODE.W2KU, PLAT_CODE.MACX];
  for (const code of order) {
    for (const l of header.locators) {
      if (l.platformCode !== code) continue;
      const len = Math.min(l.platformDataLength, locatorSpaceBytes(l), MAX_LOCATOR_BYTES);
      if (len === 0 || l.platformDataOffset + len > fileSize) continue;
      const data = new Uint8Array(len);
      await file.readExact(data, l.platformDataOffset, 'parent locator');
      add(
        code === PLAT_CODE.MACX ? new TextDecoder().decode(data).replace(/\0.*$/s, '') : decodeUtf16le(data),
      );
    }
  }
  if (header.parentName) {
    add(header.parentName);
    add(nodePath.basename(header.parentName.replace(/\\/g, '/')));
  }
  return out;
}

async function resolveParent(
  file: DiskFile,
  header: VhdDynamicHeader,
  openParent: OpenParent,
): Promise<{ parent: BlockDevice; parentPath: string }> {
  const candidates = await parentCandidates(file, header);
  const want = uuidString(header.parentUniqueId);
  const mismatched: string[] = [];
  for (const c of candidates) {
    if (!fs.existsSync(c)) continue;
    const p = await openParent(c);
    const id = p instanceof VhdDisk ? uuidString(p.uniqueId) : null;
    if (id === want) return { parent: p, parentPath: c };
    await p.close();
    mismatched.push(`${c} (unique id ${id ?? `none: ${p.format}`})`);
  }
  if (mismatched.length > 0) {
    throw new HvError(
      'HV_ERR_CORRUPT',
      `${file.path}: parent unique id ${want} does not match ${mismatched.join(', ')}; the parent was replaced or modified`,
      {
        path: file.path,
      },
    );
  }
  throw new HvError(
    'HV_ERR_NOT_FOUND',
    `${file.path}: parent disk not found; looked for ${candidates.join(', ') || '(no locator or name)'}`,
    { path: file.path },
  );
}

/** Writes footer copy, header, BAT (all unused), locators and trailing footer of a new dynamic/differencing VHD. */
async function writeDynamicSkeleton(
  file: DiskFile,
  footer: VhdFooter,
  blockSize: number,
  childPath: string,
  parent: { uniqueId: Uint8Array; abs: string; mtime: number } | null,
): Promise<void> {
  const entries = Math.ceil(footer.currentSize / blockSize);
  const tableOffset = VHD_FOOTER_SIZE + VHD_DYN_HEADER_SIZE;
  const batBytes = Math.ceil((entries * 4) / SECTOR) * SECTOR;
  let end = tableOffset + batBytes;
  const locators: ParentLocator[] = [];
  const locatorData: [number, Uint8Array][] = [];
  let parentName = '';
  if (parent) {
    const rel = nodePath.relative(nodePath.dirname(nodePath.resolve(childPath)), parent.abs);
    const relWin = (rel.startsWith('..') ? rel : `.${nodePath.sep}${rel}`).split(nodePath.sep).join('\\');
    for (const [code, text] of [
      [PLAT_CODE.W2KU, parent.abs],
      [PLAT_CODE.W2RU, relWin],
    ] as const) {
      const data = encodeUtf16le(text);
      const space = Math.max(SECTOR, Math.ceil(data.length / SECTOR) * SECTOR);
      // Platform Data Space in bytes (Microsoft's practice); a multiple of 512 ≥ 512, so the blktap
      // sectors-vs-bytes rule also reads it as bytes.
      locators.push({
        platformCode: code,
        platformDataSpace: space,
        platformDataLength: data.length,
        platformDataOffset: end,
      });
      locatorData.push([end, data]);
      end += space;
    }
    parentName = parent.abs.length <= 256 ? parent.abs : nodePath.basename(parent.abs);
  }
  const header: VhdDynamicHeader = {
    tableOffset,
    headerVersion: VHD_DYN_HEADER_VERSION,
    maxTableEntries: entries,
    blockSize,
    checksum: 0,
    parentUniqueId: parent ? parent.uniqueId : new Uint8Array(16),
    parentTimestamp: parent ? vhdTimestamp(parent.mtime) : 0,
    parentName,
    locators,
  };
  const fbytes = encodeFooter(footer);
  await file.writeAt(fbytes, 0);
  await file.writeAt(encodeDynamicHeader(header), VHD_FOOTER_SIZE);
  await file.writeAt(new Uint8Array(batBytes).fill(0xff), tableOffset);
  for (const [at, data] of locatorData) await file.writeAt(data, at);
  await file.writeAt(fbytes, end);
}
