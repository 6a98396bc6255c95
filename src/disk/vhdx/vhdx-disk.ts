/**
 * A VHDX image as a {@link BlockDevice}: fixed, dynamic and differencing; 512 B and 4 KiB logical sectors.
 *
 * Crash safety: payload data is written in place (new blocks at a fresh, zero-extended 1 MiB-aligned end of
 * file); BAT, sector-bitmap, metadata and region-table changes are kept in memory and committed by `flush()`
 * through the log: fsync data, write one log entry, fsync, then write the sectors in place. Each entry's Tail is
 * itself (everything older is already in place), so after a kill the active sequence replays the last commit.
 * Headers are updated the [MS-VHDX] §2.2.2.1 way (non-current slot, fsync, twice). GUID discipline: a new
 * FileWriteGuid before the first change of a read-write session, a new DataWriteGuid before the first
 * user-visible change; the log is emptied (LogGuid = 0) on close.
 * Sources: [MS-VHDX] §2.2–§2.6, VHDX v1.00 §2.3 (log); disk-formats.md §2.
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import { HvError } from '../../protocol/errors.ts';
import { Guid } from '../../protocol/guid.ts';
import type { BlockDevice, BlockStatus, VhdInfo, VhdType } from '../block-device.ts';
import {
  type BatGeometry,
  batGeometry,
  bitmapIndex,
  entryOffsetMB,
  entryReserved,
  entryState,
  payloadIndex,
  setEntry,
} from './bat.ts';
import { createVhdx, type VhdxCreateOptions } from './create.ts';
import {
  corrupt,
  decodeRegionTable,
  encodeHeader,
  encodeRegionTable,
  hasFileSignature,
  MiB,
  PAYLOAD_BLOCK_FULLY_PRESENT,
  PAYLOAD_BLOCK_NOT_PRESENT,
  PAYLOAD_BLOCK_PARTIALLY_PRESENT,
  PAYLOAD_BLOCK_UNDEFINED,
  PAYLOAD_BLOCK_UNMAPPED,
  PAYLOAD_BLOCK_UNMAPPED_V095,
  PAYLOAD_BLOCK_ZERO,
  SB_BLOCK_NOT_PRESENT,
  SB_BLOCK_PRESENT,
  selectHeader,
  VHDX_BAT_REGION_GUID,
  VHDX_HEADER_SIZE,
  VHDX_HEADER1_OFFSET,
  VHDX_HEADER2_OFFSET,
  VHDX_MAX_DISK_SIZE,
  VHDX_METADATA_REGION_GUID,
  VHDX_REGION_TABLE_SIZE,
  VHDX_REGION_TABLE1_OFFSET,
  VHDX_REGION_TABLE2_OFFSET,
  type VhdxHeader,
  type VhdxRegion,
  writeU64,
} from './format.ts';
import { ImageFile } from './image-file.ts';
import { IoGate } from './io-gate.ts';
import { descriptorSectors, encodeLogEntry, findActiveSequence, LOG_SECTOR } from './log.ts';
import { decodeMetadata, type VhdxMetadata } from './metadata.ts';

/** Options of {@link VhdxDisk.open}. */
export interface VhdxOpenOptions {
  readOnly?: boolean;
  /** Collect BAT problems into `problems` instead of failing (used by checkVhdx). */
  lenient?: boolean;
  /** Paths already open further down the chain (cycle detection). */
  chain?: readonly string[];
}

const SECTOR = LOG_SECTOR;
/** Upper bound on the metadata region we read (Hyper-V and QEMU use 1 MiB). */
const MAX_METADATA_REGION = 64 * MiB;

function ceilTo(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}

function invalid(message: string): never {
  throw new HvError('HV_ERR_INVALID_ARGUMENT', message);
}

export class VhdxDisk implements BlockDevice {
  readonly format = 'VHDX' as const;
  readonly readOnly: boolean;
  readonly path: string;
  /** Problems found while opening (lenient opens collect BAT problems here). */
  readonly problems: string[] = [];
  #file: ImageFile;
  #header: VhdxHeader;
  #headerSlot: 0 | 1;
  #regions: VhdxRegion[];
  #batRegion: VhdxRegion;
  #metaRegion: VhdxRegion;
  #meta: VhdxMetadata;
  #geo: BatGeometry;
  #bat: Uint8Array;
  #batDv: DataView;
  #parent: VhdxDisk | null = null;
  #parentPath: string | null = null;
  #dirtyBat = new Set<number>();
  #bitmaps = new Map<number, Uint8Array>();
  #dirtyBitmap = new Map<number, Set<number>>();
  /** Extra sectors to commit through the log: file offset → 4 KiB content. */
  #dirtyExtra = new Map<number, Uint8Array>();
  #nextFree = 0;
  #logHead = 0;
  #logSeq = 1n;
  #fileGuidChanged = false;
  #dataGuidChanged = false;
  #closed = false;
  #chain: Promise<unknown> = Promise.resolve();
  /** I/O runs shared; resize, compaction steps, repair and close run exclusive (see io-gate.ts). */
  #gate = new IoGate();

  private constructor(
    file: ImageFile,
    init: {
      header: VhdxHeader;
      slot: 0 | 1;
      regions: VhdxRegion[];
      meta: VhdxMetadata;
      bat: Uint8Array;
    },
  ) {
    this.#file = file;
    this.path = file.path;
    this.readOnly = file.readOnly;
    this.#header = init.header;
    this.#headerSlot = init.slot;
    this.#regions = init.regions;
    this.#batRegion = init.regions.find((r) => r.guid.equals(VHDX_BAT_REGION_GUID))!;
    this.#metaRegion = init.regions.find((r) => r.guid.equals(VHDX_METADATA_REGION_GUID))!;
    this.#meta = init.meta;
    this.#geo = batGeometry(
      init.meta.virtualDiskSize,
      init.meta.blockSize,
      init.meta.logicalSectorSize,
      init.meta.hasParent,
    );
    this.#bat = init.bat;
    this.#batDv = new DataView(init.bat.buffer, init.bat.byteOffset, init.bat.byteLength);
  }

  get type(): VhdType {
    if (this.#meta.hasParent) return 'Differencing';
    return this.#meta.leaveBlockAllocated ? 'Fixed' : 'Dynamic';
  }
  get size(): number {
    return this.#meta.virtualDiskSize;
  }
  get logicalSectorSize(): number {
    return this.#meta.logicalSectorSize;
  }
  get physicalSectorSize(): number {
    return this.#meta.physicalSectorSize;
  }
  get blockSize(): number {
    return this.#meta.blockSize;
  }
  /** The header's DataWriteGuid: what children record as `parent_linkage`. */
  get dataWriteGuid(): Guid {
    return this.#header.dataWriteGuid;
  }
  get fileWriteGuid(): Guid {
    return this.#header.fileWriteGuid;
  }
  get logGuid(): Guid {
    return this.#header.logGuid;
  }
  /** Virtual Disk ID (page 83 data). */
  get diskIdentifier(): Guid {
    return this.#meta.page83Data;
  }
  get parent(): VhdxDisk | null {
    return this.#parent;
  }
  get metadata(): Readonly<VhdxMetadata> {
    return this.#meta;
  }

  /** Creates a new VHDX file and opens it read-write (see {@link createVhdx} for defaults and errors). */
  static create(path: string, opts: VhdxCreateOptions): Promise<VhdxDisk> {
    return createVhdx(path, opts);
  }

  /**
   * Opens a VHDX file. A dirty log is replayed first: into the file for a read-write open (after a new
   * FileWriteGuid, then the log is emptied), in memory for a read-only one (nothing is written). Parents of a
   * differencing file are opened read-only through the locator (relative_path, then absolute_win32_path) and
   * checked against `parent_linkage`/`parent_linkage2`.
   * @throws HvError `HV_ERR_NOT_FOUND` (file or parent missing), `HV_ERR_CORRUPT` (a structure fails its checks,
   * including a parent chain cycle or a linkage mismatch), `HV_ERR_IO`.
   */
  static async open(path: string, opts: VhdxOpenOptions = {}): Promise<VhdxDisk> {
    const file = await ImageFile.open(path, opts.readOnly ?? false);
    try {
      const d = await VhdxDisk.#load(file, opts);
      return d;
    } catch (e) {
      await file.close();
      throw e;
    }
  }

  static async #load(file: ImageFile, opts: VhdxOpenOptions): Promise<VhdxDisk> {
    const p = file.path;
    if (file.size < 4 * MiB) {
      const head = new Uint8Array(8);
      await file.read(head, 0);
      if (!hasFileSignature(head)) corrupt(`${p} is not a VHDX file (no 'vhdxfile' signature)`);
      corrupt(`${p} is truncated (${file.size} bytes; a VHDX file is at least 4 MiB)`);
    }
    const section = new Uint8Array(MiB);
    await file.read(section, 0);
    if (!hasFileSignature(section)) corrupt(`${p} is not a VHDX file (no 'vhdxfile' signature)`);
    const sel = selectHeader(
      section.subarray(VHDX_HEADER1_OFFSET, VHDX_HEADER1_OFFSET + VHDX_HEADER_SIZE),
      section.subarray(VHDX_HEADER2_OFFSET, VHDX_HEADER2_OFFSET + VHDX_HEADER_SIZE),
    );
    const problems = [...sel.problems];
    let header = sel.header;
    let slot = sel.slot;
    const stub = { header, slot };
    // Replay before reading any region table, BAT or metadata.
    if (!header.logGuid.equals(Guid.NIL) && header.logLength > 0) {
      if (header.logOffset + header.logLength > file.size)
        corrupt(`${p}: the log lies past the end of the file`);
      const log = new Uint8Array(header.logLength);
      await file.read(log, header.logOffset);
      const seq = findActiveSequence(log, header.logGuid);
      if (seq) {
        const head = seq[seq.length - 1]!;
        if (head.flushedFileOffset > file.size) {
          corrupt(
            `${p} is truncated: the log says ${head.flushedFileOffset} bytes were stable, the file has ${file.size}`,
          );
        }
        if (!file.readOnly) {
          const h = await writeHeaderTwice(file, stub, { fileWriteGuid: Guid.random() });
          header = h;
        }
        for (const e of seq) await file.applyLogWrites(e.writes, e.lastFileOffset);
        problems.push(
          `the log held ${seq.length} unapplied entr${seq.length === 1 ? 'y' : 'ies'} (replayed${file.readOnly ? ' in memory' : ''})`,
        );
      }
      if (!file.readOnly) header = await writeHeaderTwice(file, stub, { logGuid: Guid.NIL });
    }
    slot = stub.slot;
    // Region tables: the first copy, else the second.
    let regions: VhdxRegion[] | null = null;
    for (const off of [VHDX_REGION_TABLE1_OFFSET, VHDX_REGION_TABLE2_OFFSET]) {
      const buf = new Uint8Array(VHDX_REGION_TABLE_SIZE);
      await file.read(buf, off);
      try {
        const r = decodeRegionTable(buf);
        regions ??= r;
      } catch (e) {
        problems.push(`region table at ${off / 1024} KiB: ${(e as Error).message}`);
      }
    }
    if (!regions) corrupt(`${p}: both region tables are damaged (${problems.join('; ')})`);
    const bat = regions.find((r) => r.guid.equals(VHDX_BAT_REGION_GUID));
    const md = regions.find((r) => r.guid.equals(VHDX_METADATA_REGION_GUID));
    if (!bat || !md) corrupt(`${p}: the region table lacks the ${bat ? 'metadata' : 'BAT'} region`);
    for (const r of regions) {
      if (r.fileOffset + r.length > file.size)
        corrupt(`${p}: region ${r.guid} lies past the end of the file`);
      if (
        header.logLength &&
        r.fileOffset < header.logOffset + header.logLength &&
        header.logOffset < r.fileOffset + r.length
      ) {
        corrupt(`${p}: region ${r.guid} overlaps the log`);
      }
    }
    if (md.length > MAX_METADATA_REGION || md.length === 0)
      corrupt(`${p}: metadata region length ${md.length} is out of range`);
    const mdBuf = new Uint8Array(md.length);
    await file.read(mdBuf, md.fileOffset);
    const meta = decodeMetadata(mdBuf);
    const geo = batGeometry(meta.virtualDiskSize, meta.blockSize, meta.logicalSectorSize, meta.hasParent);
    if (geo.totalEntries * 8 > bat.length) {
      corrupt(`${p}: the BAT region (${bat.length} bytes) is too small for ${geo.totalEntries} entries`);
    }
    const batBuf = new Uint8Array(ceilTo(geo.totalEntries * 8, SECTOR));
    await file.read(batBuf, bat.fileOffset);
    const d = new VhdxDisk(file, { header, slot, regions, meta, bat: batBuf });
    d.problems.push(...problems);
    d.#validateBat(opts.lenient ?? false);
    if (meta.hasParent) await d.#openParent(opts.chain ?? []);
    return d;
  }

  /**
   * Checks every BAT entry: legal state for the type, zero reserved bits, blocks and bitmaps inside the file and
   * clear of the header section, log and regions, no file space owned by two entries (a read-only open only
   * notes double references in `problems`, so the data stays readable for convert-vhd).
   */
  #validateBat(lenient: boolean): void {
    const g = this.#geo;
    const dv = this.#batDv;
    const fileSize = this.#file.size;
    const diff = this.#meta.hasParent;
    const fixed = this.type === 'Fixed';
    const reserved = this.reservedRanges();
    let end = Math.max(...reserved.map((r) => r[1]), ceilTo(fileSize, MiB));
    /** [start, end, BAT index] of every entry that owns file space inside the file. */
    const owned: Array<[number, number, number]> = [];
    const report = (msg: string): void => {
      if (!lenient) corrupt(`${this.path}: ${msg}`);
      this.problems.push(msg);
    };
    for (let i = 0; i < g.totalEntries; i++) {
      const isBitmap = i % (g.chunkRatio + 1) === g.chunkRatio;
      const state = entryState(dv, i);
      const off = entryOffsetMB(dv, i) * MiB;
      if (entryReserved(dv, i)) report(`BAT entry ${i} has reserved bits set`);
      if (isBitmap) {
        if (state === SB_BLOCK_NOT_PRESENT) {
          if (off) report(`sector bitmap entry ${i} is NOT_PRESENT with a non-zero FileOffsetMB`);
          continue;
        }
        if (state !== SB_BLOCK_PRESENT || !diff) {
          report(
            `sector bitmap entry ${i} has state ${state}, not allowed in a ${this.type.toLowerCase()} file`,
          );
          continue;
        }
        if (off < MiB || off >= fileSize) {
          report(`sector bitmap entry ${i} points at ${off}, outside the file`);
          continue;
        }
        if (reserved.some(([s, e]) => off < e && s < off + MiB)) {
          report(`sector bitmap entry ${i} points at ${off}, inside the header section, log or a region`);
          continue;
        }
        owned.push([off, off + MiB, i]);
        end = Math.max(end, off + MiB);
        continue;
      }
      switch (state) {
        case PAYLOAD_BLOCK_NOT_PRESENT:
        case PAYLOAD_BLOCK_UNDEFINED:
        case PAYLOAD_BLOCK_ZERO:
        case PAYLOAD_BLOCK_UNMAPPED:
        case PAYLOAD_BLOCK_UNMAPPED_V095:
          if (off && !lenient) continue; // tolerated on read (Hyper-V writes 0 here); reported by check
          if (off) report(`BAT entry ${i} is in non-present state ${state} with a non-zero FileOffsetMB`);
          continue;
        case PAYLOAD_BLOCK_PARTIALLY_PRESENT:
          if (!diff) {
            report(`BAT entry ${i} is PARTIALLY_PRESENT in a ${this.type.toLowerCase()} file`);
            continue;
          }
          break;
        case PAYLOAD_BLOCK_FULLY_PRESENT:
          break;
        default:
          report(`BAT entry ${i} has reserved state ${state}`);
          continue;
      }
      if (off >= fileSize) {
        report(`BAT entry ${i} points at ${off}, at or past the end of the file (${fileSize})`);
        continue;
      }
      if (reserved.some(([s, e]) => off < e && s < off + g.blockSize)) {
        report(`BAT entry ${i} points at ${off}, inside the header section, log or a region`);
        continue;
      }
      owned.push([off, off + g.blockSize, i]);
      end = Math.max(end, off + g.blockSize);
    }
    // Two entries sharing file space: a write through one would change the other's data.
    owned.sort((a, b) => a[0] - b[0]);
    let last: [number, number, number] | undefined;
    for (const r of owned) {
      if (last && r[0] < last[1]) {
        const msg = `BAT entries ${last[2]} and ${r[2]} both point into [${r[0]}, ${Math.min(r[1], last[1])}) (double-referenced file space)`;
        if (this.readOnly) this.problems.push(msg);
        else report(msg);
      }
      if (!last || r[1] > last[1]) last = r;
    }
    if (fixed && lenient) {
      for (let b = 0; b < g.payloadBlocks; b++) {
        if (entryState(dv, payloadIndex(g, b)) !== PAYLOAD_BLOCK_FULLY_PRESENT) {
          this.problems.push(`fixed file: payload block ${b} is not FULLY_PRESENT`);
          break;
        }
      }
    }
    this.#nextFree = ceilTo(end, MiB);
  }

  async #openParent(chain: readonly string[]): Promise<void> {
    const loc = this.#meta.parentLocator!;
    const here = dirname(resolve(this.path));
    const candidates: string[] = [];
    const rel = loc.get('relative_path');
    if (rel) candidates.push(resolve(here, rel.replaceAll('\\', '/')));
    const abs = loc.get('absolute_win32_path');
    if (abs) {
      const p = abs
        .replace(/^\\\\\?\\/, '')
        .replace(/^[A-Za-z]:/, '')
        .replaceAll('\\', '/');
      candidates.push(isAbsolute(p) ? p : resolve(here, p));
    }
    const { access } = await import('node:fs/promises');
    let found: string | null = null;
    for (const c of candidates) {
      try {
        await access(c);
        found = c;
        break;
      } catch {
        // try the next locator
      }
    }
    if (!found) {
      throw new HvError(
        'HV_ERR_NOT_FOUND',
        `${this.path}: parent disk not found (tried ${candidates.join(', ') || 'no path: the locator has none'})`,
      );
    }
    const seen = [...chain, resolve(this.path)];
    if (seen.includes(resolve(found)))
      corrupt(`${this.path}: the parent chain is cyclic (${[...seen, found].join(' -> ')})`);
    const parent = await VhdxDisk.open(found, { readOnly: true, chain: seen });
    const linkage = [loc.get('parent_linkage'), loc.get('parent_linkage2')].filter((x): x is string => !!x);
    const ok = linkage.some((l) => {
      try {
        return Guid.parse(l).equals(parent.dataWriteGuid);
      } catch {
        return false;
      }
    });
    if (!ok) {
      await parent.close();
      corrupt(
        `${this.path}: parent ${found} has DataWriteGuid ${parent.dataWriteGuid}, but the child expects ${linkage.join(' or ')} (the parent was modified after the child was created)`,
      );
    }
    if (parent.logicalSectorSize !== this.logicalSectorSize) {
      await parent.close();
      corrupt(
        `${this.path}: parent ${found} has ${parent.logicalSectorSize}-byte sectors, the child ${this.logicalSectorSize}`,
      );
    }
    this.#parent = parent;
    this.#parentPath = found;
  }

  #checkRange(offset: number, length: number, what: string): void {
    const s = this.logicalSectorSize;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      invalid(`${what}: offset ${offset} and length ${length} must be non-negative integers`);
    }
    if (offset % s || length % s)
      invalid(
        `${what}: offset ${offset} and length ${length} must be multiples of the ${s}-byte logical sector`,
      );
    if (offset + length > this.size)
      invalid(`${what}: range [${offset}, ${offset + length}) runs past the disk size ${this.size}`);
    if (this.#closed) throw new HvError('HV_ERR_INVALID_STATE', `${this.path} is closed`);
  }

  read(buf: Uint8Array, offset: number): Promise<void> {
    return this.#gate.shared(() => this.#read(buf, offset));
  }

  async #read(buf: Uint8Array, offset: number): Promise<void> {
    this.#checkRange(offset, buf.length, 'read');
    const bs = this.#geo.blockSize;
    let done = 0;
    while (done < buf.length) {
      const pos = offset + done;
      const block = Math.floor(pos / bs);
      const inBlock = pos - block * bs;
      const n = Math.min(buf.length - done, bs - inBlock);
      await this.#readInBlock(buf.subarray(done, done + n), block, inBlock);
      done += n;
    }
  }

  async #readInBlock(out: Uint8Array, block: number, inBlock: number): Promise<void> {
    const idx = payloadIndex(this.#geo, block);
    const state = entryState(this.#batDv, idx);
    const pos = block * this.#geo.blockSize + inBlock;
    if (state === PAYLOAD_BLOCK_FULLY_PRESENT) {
      await this.#file.read(out, entryOffsetMB(this.#batDv, idx) * MiB + inBlock);
    } else if (state === PAYLOAD_BLOCK_PARTIALLY_PRESENT && this.#meta.hasParent) {
      const base = entryOffsetMB(this.#batDv, idx) * MiB;
      const ss = this.logicalSectorSize;
      const first = pos / ss;
      const count = out.length / ss;
      let i = 0;
      while (i < count) {
        const present = await this.#bitmapBit(first + i);
        let j = i + 1;
        while (j < count && (await this.#bitmapBit(first + j)) === present) j++;
        const part = out.subarray(i * ss, j * ss);
        if (present) await this.#file.read(part, base + inBlock + i * ss);
        else await this.#readParent(part, pos + i * ss);
        i = j;
      }
    } else if (
      this.#meta.hasParent &&
      (state === PAYLOAD_BLOCK_NOT_PRESENT || state === PAYLOAD_BLOCK_UNDEFINED)
    ) {
      await this.#readParent(out, pos);
    } else {
      out.fill(0);
    }
  }

  async #readParent(out: Uint8Array, pos: number): Promise<void> {
    const p = this.#parent!;
    const inside = Math.max(0, Math.min(out.length, p.size - pos));
    if (inside > 0) await p.read(out.subarray(0, inside), pos);
    out.fill(0, inside);
  }

  /** The chunk's 1 MiB sector bitmap (zeros when its entry is not present). */
  async #bitmap(chunk: number): Promise<Uint8Array> {
    let bm = this.#bitmaps.get(chunk);
    if (!bm) {
      bm = new Uint8Array(MiB);
      const i = bitmapIndex(this.#geo, chunk);
      if (entryState(this.#batDv, i) === SB_BLOCK_PRESENT)
        await this.#file.read(bm, entryOffsetMB(this.#batDv, i) * MiB);
      this.#bitmaps.set(chunk, bm);
    }
    return bm;
  }

  /** Sector-bitmap bit of absolute logical sector `sector` (LSB first). */
  async #bitmapBit(sector: number): Promise<boolean> {
    const chunk = Math.floor(sector / 2 ** 23);
    const bm = await this.#bitmap(chunk);
    const bit = sector - chunk * 2 ** 23;
    return ((bm[bit >>> 3]! >>> (bit & 7)) & 1) === 1;
  }

  async #setBitmapBits(firstSector: number, count: number): Promise<void> {
    for (let s = firstSector; s < firstSector + count; ) {
      const chunk = Math.floor(s / 2 ** 23);
      const bm = await this.#bitmap(chunk);
      const i = bitmapIndex(this.#geo, chunk);
      if (entryState(this.#batDv, i) !== SB_BLOCK_PRESENT) {
        const at = await this.#allocate(MiB);
        setEntry(this.#batDv, i, SB_BLOCK_PRESENT, at / MiB);
        this.#dirtyBat.add(Math.floor((i * 8) / SECTOR));
        const all = new Set<number>();
        for (let k = 0; k < MiB / SECTOR; k++) all.add(k);
        this.#dirtyBitmap.set(chunk, all);
      }
      const dirty = this.#dirtyBitmap.get(chunk) ?? new Set<number>();
      this.#dirtyBitmap.set(chunk, dirty);
      const end = Math.min(firstSector + count, (chunk + 1) * 2 ** 23);
      for (; s < end; s++) {
        const bit = s - chunk * 2 ** 23;
        bm[bit >>> 3]! |= 1 << (bit & 7);
        dirty.add(bit >>> 15);
      }
    }
  }

  /** Reserves `length` bytes at the 1 MiB-aligned end of the file, zero-extended. */
  async #allocate(length: number): Promise<number> {
    const at = this.#nextFree;
    this.#nextFree = at + ceilTo(length, MiB);
    await this.#file.truncate(this.#nextFree);
    return at;
  }

  /** Runs `fn` after every earlier locked step: allocations, bitmap and header updates, commits never interleave. */
  #locked<T>(fn: () => Promise<T>): Promise<T> {
    const r = this.#chain.then(fn);
    this.#chain = r.catch(() => {});
    return r;
  }

  async #beginChange(userVisible: boolean): Promise<void> {
    if (this.readOnly) throw new HvError('HV_ERR_INVALID_STATE', `${this.path} is open read-only`);
    if (this.#fileGuidChanged && (this.#dataGuidChanged || !userVisible)) return;
    await this.#locked(() => this.#changeGuids(userVisible));
  }

  async #changeGuids(userVisible: boolean): Promise<void> {
    const change: Partial<VhdxHeader> = {};
    if (!this.#fileGuidChanged) change.fileWriteGuid = Guid.random();
    if (userVisible && !this.#dataGuidChanged) change.dataWriteGuid = Guid.random();
    if (change.fileWriteGuid || change.dataWriteGuid) {
      const stub = { header: this.#header, slot: this.#headerSlot };
      this.#header = await writeHeaderTwice(this.#file, stub, change);
      this.#headerSlot = stub.slot;
      this.#fileGuidChanged = true;
      if (userVisible) this.#dataGuidChanged = true;
    }
  }

  write(buf: Uint8Array, offset: number): Promise<void> {
    return this.#gate.shared(() => this.#write(buf, offset));
  }

  async #write(buf: Uint8Array, offset: number): Promise<void> {
    this.#checkRange(offset, buf.length, 'write');
    await this.#beginChange(true);
    const bs = this.#geo.blockSize;
    let done = 0;
    while (done < buf.length) {
      const pos = offset + done;
      const block = Math.floor(pos / bs);
      const inBlock = pos - block * bs;
      const n = Math.min(buf.length - done, bs - inBlock);
      await this.#writeInBlock(buf.subarray(done, done + n), block, inBlock);
      done += n;
    }
  }

  async #writeInBlock(data: Uint8Array, block: number, inBlock: number): Promise<void> {
    const idx = payloadIndex(this.#geo, block);
    if (entryState(this.#batDv, idx) === PAYLOAD_BLOCK_FULLY_PRESENT) {
      await this.#file.write(data, entryOffsetMB(this.#batDv, idx) * MiB + inBlock);
      return;
    }
    await this.#locked(() => this.#writeInBlockLocked(data, block, inBlock));
  }

  /** Writes into a block that may need allocating or bitmap bits (under the lock, so never twice). */
  async #writeInBlockLocked(data: Uint8Array, block: number, inBlock: number): Promise<void> {
    const idx = payloadIndex(this.#geo, block);
    const state = entryState(this.#batDv, idx);
    const ss = this.logicalSectorSize;
    if (state === PAYLOAD_BLOCK_FULLY_PRESENT || state === PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
      await this.#file.write(data, entryOffsetMB(this.#batDv, idx) * MiB + inBlock);
      if (state === PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
        await this.#setBitmapBits((block * this.#geo.blockSize + inBlock) / ss, data.length / ss);
      }
      return;
    }
    // A new block: zero-filled by the file extension, data written before the BAT entry is committed.
    const at = await this.#allocate(this.#geo.blockSize);
    await this.#file.write(data, at + inBlock);
    const inherits =
      this.#meta.hasParent && (state === PAYLOAD_BLOCK_NOT_PRESENT || state === PAYLOAD_BLOCK_UNDEFINED);
    if (inherits) {
      setEntry(this.#batDv, idx, PAYLOAD_BLOCK_PARTIALLY_PRESENT, at / MiB);
      await this.#setBitmapBits((block * this.#geo.blockSize + inBlock) / ss, data.length / ss);
    } else {
      setEntry(this.#batDv, idx, PAYLOAD_BLOCK_FULLY_PRESENT, at / MiB);
    }
    this.#dirtyBat.add(Math.floor((idx * 8) / SECTOR));
  }

  /**
   * Commits: fsync the data, then every pending metadata sector through the log (entry, fsync, in place).
   * Once this resolves, every write before it survives a crash.
   */
  flush(): Promise<void> {
    return this.#gate.shared(() => this.#flush());
  }

  async #flush(): Promise<void> {
    if (this.readOnly || this.#closed) return;
    await this.#locked(() => this.#flushLocked());
  }

  async #flushLocked(): Promise<void> {
    await this.#file.sync();
    const sectors: Array<{ fileOffset: number; data: Uint8Array }> = [];
    for (const s of [...this.#dirtyBat].sort((a, b) => a - b)) {
      sectors.push({
        fileOffset: this.#batRegion.fileOffset + s * SECTOR,
        data: this.#bat.slice(s * SECTOR, (s + 1) * SECTOR),
      });
    }
    for (const [chunk, set] of this.#dirtyBitmap) {
      const bm = this.#bitmaps.get(chunk)!;
      const base = entryOffsetMB(this.#batDv, bitmapIndex(this.#geo, chunk)) * MiB;
      for (const s of [...set].sort((a, b) => a - b)) {
        sectors.push({ fileOffset: base + s * SECTOR, data: bm.slice(s * SECTOR, (s + 1) * SECTOR) });
      }
    }
    for (const [off, data] of this.#dirtyExtra) sectors.push({ fileOffset: off, data });
    this.#dirtyBat.clear();
    this.#dirtyBitmap.clear();
    this.#dirtyExtra.clear();
    if (sectors.length === 0) return;
    await this.#commit(sectors);
  }

  /** Writes `sectors` through the log, as many entries as the log needs. */
  async #commit(sectors: Array<{ fileOffset: number; data: Uint8Array }>): Promise<void> {
    const h = this.#header;
    if (h.logLength < 2 * SECTOR)
      throw new HvError(
        'HV_ERR_UNSUPPORTED',
        `${this.path} has no usable log; cannot update metadata safely`,
      );
    if (h.logGuid.equals(Guid.NIL)) {
      const stub = { header: h, slot: this.#headerSlot };
      this.#header = await writeHeaderTwice(this.#file, stub, { logGuid: Guid.random() });
      this.#headerSlot = stub.slot;
      this.#logHead = 0;
      this.#logSeq = 1n;
    }
    const maxSectors = h.logLength / SECTOR;
    let i = 0;
    while (i < sectors.length) {
      let n = Math.min(sectors.length - i, maxSectors - 1);
      while (n > 1 && descriptorSectors(n) + n > maxSectors) n--;
      const batch = sectors.slice(i, i + n);
      i += n;
      const entry = encodeLogEntry({
        sequenceNumber: this.#logSeq,
        tail: this.#logHead,
        logGuid: this.#header.logGuid,
        flushedFileOffset: this.#file.size,
        lastFileOffset: this.#nextFree,
        sectors: batch,
      });
      const first = Math.min(entry.length, h.logLength - this.#logHead);
      await this.#file.write(entry.subarray(0, first), h.logOffset + this.#logHead);
      if (first < entry.length) await this.#file.write(entry.subarray(first), h.logOffset);
      await this.#file.sync();
      for (const s of batch) await this.#file.write(s.data, s.fileOffset);
      this.#logHead = (this.#logHead + entry.length) % h.logLength;
      this.#logSeq++;
      // The next entry claims to be the only one needed, so this one must be in place first.
      if (i < sectors.length) await this.#file.sync();
    }
  }

  /**
   * Discards `[offset, offset+length)`: it reads as zeros afterwards. Whole blocks of a dynamic file become
   * PAYLOAD_BLOCK_ZERO (FileOffsetMB 0); partial blocks, fixed files and differencing files get zeros written
   * (a differencing file must hide its parent, which ZERO may not do in every reader).
   */
  trim(offset: number, length: number): Promise<void> {
    return this.#gate.shared(() => this.#trim(offset, length));
  }

  async #trim(offset: number, length: number): Promise<void> {
    this.#checkRange(offset, length, 'trim');
    if (length === 0) return;
    await this.#beginChange(true);
    const bs = this.#geo.blockSize;
    const zeros = new Uint8Array(Math.min(bs, 4 * MiB));
    let done = 0;
    while (done < length) {
      const pos = offset + done;
      const block = Math.floor(pos / bs);
      const inBlock = pos - block * bs;
      const n = Math.min(length - done, bs - inBlock);
      const idx = payloadIndex(this.#geo, block);
      const state = entryState(this.#batDv, idx);
      const whole = inBlock === 0 && (n === bs || pos + n === this.size);
      if (this.type === 'Dynamic' && whole) {
        if (state !== PAYLOAD_BLOCK_ZERO || entryOffsetMB(this.#batDv, idx)) {
          setEntry(this.#batDv, idx, PAYLOAD_BLOCK_ZERO, 0);
          this.#dirtyBat.add(Math.floor((idx * 8) / SECTOR));
        }
      } else if (this.type !== 'Dynamic' || state === PAYLOAD_BLOCK_FULLY_PRESENT) {
        for (let o = 0; o < n; o += zeros.length) {
          await this.#write(zeros.subarray(0, Math.min(zeros.length, n - o)), pos + o);
        }
      }
      done += n;
    }
  }

  blockStatus(offset: number, length: number): Promise<BlockStatus> {
    return this.#gate.shared(() => this.#blockStatus(offset, length));
  }

  async #blockStatus(offset: number, length: number): Promise<BlockStatus> {
    this.#checkRange(offset, length, 'blockStatus');
    if (length === 0) invalid('blockStatus: length must be at least one sector');
    const bs = this.#geo.blockSize;
    const stateAt = async (pos: number, max: number): Promise<BlockStatus> => {
      const block = Math.floor(pos / bs);
      const n = Math.min(max, (block + 1) * bs - pos);
      const st = entryState(this.#batDv, payloadIndex(this.#geo, block));
      if (st === PAYLOAD_BLOCK_FULLY_PRESENT || st === PAYLOAD_BLOCK_PARTIALLY_PRESENT)
        return { state: 'data', length: n };
      if (this.#parent && (st === PAYLOAD_BLOCK_NOT_PRESENT || st === PAYLOAD_BLOCK_UNDEFINED)) {
        if (pos >= this.#parent.size) return { state: 'zero', length: n };
        return this.#parent.blockStatus(pos, Math.min(n, this.#parent.size - pos));
      }
      return { state: 'zero', length: n };
    };
    const first = await stateAt(offset, length);
    let run = first.length;
    while (run < length) {
      const next = await stateAt(offset + run, length - run);
      if (next.state !== first.state) break;
      run += next.length;
    }
    return { state: first.state, length: run };
  }

  /**
   * Changes the virtual size through the log (BAT entries, Virtual Disk Size item, and region tables when the
   * BAT region must move to a bigger place at the end of the file). Growing a fixed file allocates the new
   * blocks. Shrinking a dynamic or differencing file below an allocated block throws.
   * @throws HvError `HV_ERR_INVALID_ARGUMENT` (size not a sector multiple, 0 or above 64 TiB),
   * `HV_ERR_INVALID_STATE` (data beyond the new size, or read-only).
   */
  resize(newSize: number): Promise<void> {
    return this.#gate.exclusive(() => this.#resize(newSize));
  }

  async #resize(newSize: number): Promise<void> {
    if (this.#closed) throw new HvError('HV_ERR_INVALID_STATE', `${this.path} is closed`);
    const ss = this.logicalSectorSize;
    if (!Number.isSafeInteger(newSize) || newSize <= 0 || newSize % ss || newSize > VHDX_MAX_DISK_SIZE) {
      invalid(`new size ${newSize} must be a positive multiple of ${ss} bytes up to 64 TiB`);
    }
    if (newSize === this.size) return;
    const g = this.#geo;
    const ng = batGeometry(newSize, g.blockSize, ss, this.#meta.hasParent);
    if (newSize < this.size) {
      const min = this.#minimumSize();
      if (this.type !== 'Fixed' && newSize < min) {
        throw new HvError(
          'HV_ERR_INVALID_STATE',
          `cannot shrink ${this.path} to ${newSize} bytes: data is allocated up to ${min} bytes (MinimumSize)`,
        );
      }
    }
    await this.#beginChange(true);
    await this.#flush();
    if (newSize < this.size) {
      // Blocks past the end are dropped; the tail of a kept partial block is zeroed so a later grow reads zeros.
      const keep = ng.payloadBlocks;
      for (let b = keep; b < g.payloadBlocks; b++)
        setEntry(this.#batDv, payloadIndex(g, b), PAYLOAD_BLOCK_NOT_PRESENT, 0);
      const tailStart = newSize;
      const tailEnd = Math.min(keep * g.blockSize, this.size);
      if (tailEnd > tailStart) await this.#trim(tailStart, tailEnd - tailStart);
      for (let i = ng.totalEntries; i < g.totalEntries; i++) setEntry(this.#batDv, i, 0, 0);
      for (let s = Math.floor((ng.totalEntries * 8) / SECTOR); s < this.#bat.length / SECTOR; s++)
        this.#dirtyBat.add(s);
    }
    let newBat = this.#bat;
    if (ng.totalEntries * 8 > this.#bat.length) {
      newBat = new Uint8Array(ceilTo(ng.totalEntries * 8, SECTOR));
      newBat.set(this.#bat);
    }
    const extra: Array<{ fileOffset: number; data: Uint8Array }> = [];
    if (ng.totalEntries * 8 > this.#batRegion.length) {
      // Move the BAT to fresh space: copy it there, then switch both region tables through the log.
      const len = ceilTo(ng.totalEntries * 8, MiB);
      const at = await this.#allocate(len);
      await this.#file.write(newBat, at);
      await this.#file.sync();
      const regions = this.#regions.map((r) =>
        r.guid.equals(VHDX_BAT_REGION_GUID) ? { ...r, fileOffset: at, length: len } : r,
      );
      const table = encodeRegionTable(regions);
      for (const base of [VHDX_REGION_TABLE1_OFFSET, VHDX_REGION_TABLE2_OFFSET]) {
        for (let s = 0; s < VHDX_REGION_TABLE_SIZE / SECTOR; s++) {
          extra.push({ fileOffset: base + s * SECTOR, data: table.slice(s * SECTOR, (s + 1) * SECTOR) });
        }
      }
      this.#regions = regions;
      this.#batRegion = regions.find((r) => r.guid.equals(VHDX_BAT_REGION_GUID))!;
    }
    this.#bat = newBat;
    this.#batDv = new DataView(newBat.buffer, newBat.byteOffset, newBat.byteLength);
    if (this.type === 'Fixed') {
      for (let b = g.payloadBlocks; b < ng.payloadBlocks; b++) {
        const at = await this.#allocate(g.blockSize);
        setEntry(this.#batDv, payloadIndex(ng, b), PAYLOAD_BLOCK_FULLY_PRESENT, at / MiB);
      }
    }
    for (
      let s = Math.floor((Math.min(g.totalEntries, ng.totalEntries) * 8) / SECTOR);
      s < newBat.length / SECTOR;
      s++
    ) {
      this.#dirtyBat.add(s);
    }
    // The Virtual Disk Size item (8 bytes, possibly straddling two sectors).
    const itemAt = this.#metaRegion.fileOffset + this.#meta.virtualDiskSizeOffset;
    const s0 = Math.floor(itemAt / SECTOR) * SECTOR;
    const span = new Uint8Array(2 * SECTOR);
    await this.#file.read(span, s0);
    writeU64(new DataView(span.buffer), itemAt - s0, newSize);
    this.#dirtyExtra.set(s0, span.slice(0, SECTOR));
    if (itemAt + 8 > s0 + SECTOR) this.#dirtyExtra.set(s0 + SECTOR, span.slice(SECTOR));
    for (const e of extra) this.#dirtyExtra.set(e.fileOffset, e.data);
    this.#meta = { ...this.#meta, virtualDiskSize: newSize };
    this.#geo = ng;
    await this.#flush();
  }

  /** End of the last allocated payload block, clamped to the size (bytes); 0 when nothing is allocated. */
  #minimumSize(): number {
    const g = this.#geo;
    for (let b = g.payloadBlocks - 1; b >= 0; b--) {
      const st = entryState(this.#batDv, payloadIndex(g, b));
      if (st === PAYLOAD_BLOCK_FULLY_PRESENT || st === PAYLOAD_BLOCK_PARTIALLY_PRESENT)
        return Math.min(this.size, (b + 1) * g.blockSize);
    }
    return 0;
  }

  /** Get-VHD's view of this file. */
  async info(): Promise<VhdInfo> {
    const g = this.#geo;
    let allocated = 0;
    let breaks = 0;
    let prev = -1;
    for (let b = 0; b < g.payloadBlocks; b++) {
      const i = payloadIndex(g, b);
      const st = entryState(this.#batDv, i);
      if (st !== PAYLOAD_BLOCK_FULLY_PRESENT && st !== PAYLOAD_BLOCK_PARTIALLY_PRESENT) continue;
      const off = entryOffsetMB(this.#batDv, i) * MiB;
      if (prev >= 0 && off !== prev + g.blockSize) breaks++;
      prev = off;
      allocated++;
    }
    return {
      Path: resolve(this.path),
      VhdFormat: 'VHDX',
      VhdType: this.type,
      FileSize: await this.#file.allocatedBytes(),
      Size: this.size,
      MinimumSize: this.type === 'Fixed' ? null : this.#minimumSize(),
      LogicalSectorSize: this.logicalSectorSize,
      PhysicalSectorSize: this.physicalSectorSize,
      BlockSize: this.type === 'Fixed' ? 0 : g.blockSize,
      ParentPath: this.#parentPath,
      DiskIdentifier: this.#meta.page83Data.toString(),
      FragmentationPercentage: allocated > 1 ? Math.round((breaks * 100) / (allocated - 1)) : 0,
      Alignment: 1,
      Attached: false,
    };
  }

  /** Allocation state of each payload block: its BAT state and file offset (bytes, 0 when not present). */
  blockEntry(block: number): { state: number; fileOffset: number } {
    if (!Number.isInteger(block) || block < 0 || block >= this.#geo.payloadBlocks)
      invalid(`block ${block} is out of range`);
    const i = payloadIndex(this.#geo, block);
    return { state: entryState(this.#batDv, i), fileOffset: entryOffsetMB(this.#batDv, i) * MiB };
  }

  /** BAT geometry of this file (entry counts, chunk ratio, block size). */
  get geometry(): Readonly<BatGeometry> {
    return this.#geo;
  }

  /** Apparent file size in bytes. */
  get fileSize(): number {
    return this.#file.size;
  }

  /** File ranges `[start, end)` in bytes that no block may overlap: the header section, the log, every region. */
  reservedRanges(): Array<[number, number]> {
    const reserved: Array<[number, number]> = [[0, MiB]];
    const h = this.#header;
    if (h.logLength) reserved.push([h.logOffset, h.logOffset + h.logLength]);
    for (const r of this.#regions) reserved.push([r.fileOffset, r.fileOffset + r.length]);
    return reserved;
  }

  /**
   * Every BAT entry that owns file space, in BAT order: payload blocks in FULLY_PRESENT or PARTIALLY_PRESENT
   * state (`blockSize` bytes) and SB_BLOCK_PRESENT sector bitmaps (1 MiB). `block` is the payload block number
   * or the chunk number. Entries pointing past the end of the file are included.
   */
  allocations(): FileAllocation[] {
    const g = this.#geo;
    const dv = this.#batDv;
    const out: FileAllocation[] = [];
    for (let i = 0; i < g.totalEntries; i++) {
      const st = entryState(dv, i);
      const chunk = Math.floor(i / (g.chunkRatio + 1));
      if (i % (g.chunkRatio + 1) === g.chunkRatio) {
        if (st === SB_BLOCK_PRESENT)
          out.push({
            index: i,
            kind: 'bitmap',
            block: chunk,
            fileOffset: entryOffsetMB(dv, i) * MiB,
            length: MiB,
          });
      } else if (st === PAYLOAD_BLOCK_FULLY_PRESENT || st === PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
        const block = i - chunk;
        if (block < g.payloadBlocks)
          out.push({
            index: i,
            kind: 'payload',
            block,
            fileOffset: entryOffsetMB(dv, i) * MiB,
            length: g.blockSize,
          });
      }
    }
    return out;
  }

  /**
   * Compaction, step 1: sets each listed payload block to `state` (NOT_PRESENT, UNDEFINED, ZERO or UNMAPPED) with
   * FileOffsetMB 0, clears the sector-bitmap bits of blocks that were PARTIALLY_PRESENT, drops the sector bitmap
   * of every chunk left without a PARTIALLY_PRESENT block, and commits through the log. The DataWriteGuid is
   * kept: the caller guarantees that what the chain reads does not change, so children stay linked.
   * @throws HvError `HV_ERR_INVALID_ARGUMENT` (block out of range or a present state), `HV_ERR_INVALID_STATE`
   * (read-only or closed).
   */
  deallocate(blocks: ReadonlyArray<{ block: number; state: number }>): Promise<void> {
    return this.#gate.exclusive(async () => {
      this.#checkOpen();
      const g = this.#geo;
      for (const { block, state } of blocks) {
        if (!Number.isInteger(block) || block < 0 || block >= g.payloadBlocks)
          invalid(`block ${block} is out of range`);
        if (state < PAYLOAD_BLOCK_NOT_PRESENT || state > PAYLOAD_BLOCK_UNMAPPED)
          invalid(`deallocate: state ${state} is not a non-present payload state`);
      }
      await this.#beginChange(false);
      await this.#locked(async () => {
        const dv = this.#batDv;
        for (const { block, state } of blocks) {
          const i = payloadIndex(g, block);
          const was = entryState(dv, i);
          setEntry(dv, i, state, 0);
          this.#dirtyBat.add(Math.floor((i * 8) / SECTOR));
          if (was === PAYLOAD_BLOCK_PARTIALLY_PRESENT && this.#meta.hasParent) {
            const ss = this.logicalSectorSize;
            const count = Math.ceil(Math.min(g.blockSize, this.size - block * g.blockSize) / ss);
            await this.#clearBitmapBits((block * g.blockSize) / ss, count);
          }
        }
        for (let c = 0; c < g.bitmapBlocks && this.#meta.hasParent; c++) {
          const bi = bitmapIndex(g, c);
          if (entryState(dv, bi) !== SB_BLOCK_PRESENT) continue;
          let partial = false;
          for (
            let b = c * g.chunkRatio;
            b < Math.min(g.payloadBlocks, (c + 1) * g.chunkRatio) && !partial;
            b++
          )
            partial = entryState(dv, payloadIndex(g, b)) === PAYLOAD_BLOCK_PARTIALLY_PRESENT;
          if (partial) continue;
          setEntry(dv, bi, SB_BLOCK_NOT_PRESENT, 0);
          this.#dirtyBat.add(Math.floor((bi * 8) / SECTOR));
          this.#bitmaps.delete(c);
          this.#dirtyBitmap.delete(c);
        }
        await this.#flushLocked();
      });
    });
  }

  async #clearBitmapBits(firstSector: number, count: number): Promise<void> {
    for (let s = firstSector; s < firstSector + count; ) {
      const chunk = Math.floor(s / 2 ** 23);
      const end = Math.min(firstSector + count, (chunk + 1) * 2 ** 23);
      if (entryState(this.#batDv, bitmapIndex(this.#geo, chunk)) !== SB_BLOCK_PRESENT) {
        s = end;
        continue;
      }
      const bm = await this.#bitmap(chunk);
      const dirty = this.#dirtyBitmap.get(chunk) ?? new Set<number>();
      this.#dirtyBitmap.set(chunk, dirty);
      for (; s < end; s++) {
        const bit = s - chunk * 2 ** 23;
        bm[bit >>> 3]! &= ~(1 << (bit & 7));
        dirty.add(bit >>> 15);
      }
    }
  }

  /**
   * Moves the file space of BAT entries (compaction step 2; repair of double references): commits pending
   * changes, copies each entry's range to `to` (or to fresh space at the end of the file when `to` is omitted),
   * fsyncs, then points the entries at the copies through the log. A kill at any point leaves every entry
   * pointing at intact data (old or new place). The old places are free once this resolves.
   * @throws HvError `HV_ERR_INVALID_ARGUMENT` (an index that owns no space, a target not 1 MiB aligned, or one
   * overlapping a structure, an allocated block or another target), `HV_ERR_INVALID_STATE` (read-only or closed).
   */
  relocate(moves: ReadonlyArray<{ index: number; to?: number }>): Promise<void> {
    return this.#gate.exclusive(async () => {
      this.#checkOpen();
      const byIndex = new Map(this.allocations().map((a) => [a.index, a]));
      const used = [
        ...this.reservedRanges(),
        ...[...byIndex.values()].map((a): [number, number] => [a.fileOffset, a.fileOffset + a.length]),
      ];
      const plan: Array<{ from: FileAllocation; to: number | undefined }> = [];
      for (const m of moves) {
        const from = byIndex.get(m.index);
        if (!from) invalid(`relocate: BAT entry ${m.index} owns no file space`);
        if (m.to !== undefined) {
          const t = m.to;
          if (!Number.isSafeInteger(t) || t < MiB || t % MiB)
            invalid(`relocate: target ${t} is not a 1 MiB-aligned offset past the header section`);
          if (used.some(([a, b]) => t < b && a < t + from.length))
            invalid(
              `relocate: target ${t} of BAT entry ${m.index} overlaps a structure, a block or another target`,
            );
          used.push([t, t + from.length]);
        }
        plan.push({ from, to: m.to });
      }
      if (plan.length === 0) return;
      await this.#beginChange(false);
      await this.#locked(async () => {
        await this.#flushLocked();
        const buf = new Uint8Array(Math.min(4 * MiB, this.#geo.blockSize));
        for (const p of plan) {
          const to = p.to ?? (await this.#allocate(p.from.length));
          for (let o = 0; o < p.from.length; o += buf.length) {
            const part = buf.subarray(0, Math.min(buf.length, p.from.length - o));
            await this.#file.read(part, p.from.fileOffset + o);
            await this.#file.write(part, to + o);
          }
          const st = entryState(this.#batDv, p.from.index);
          setEntry(this.#batDv, p.from.index, st, to / MiB);
          this.#dirtyBat.add(Math.floor((p.from.index * 8) / SECTOR));
        }
        // #flushLocked fsyncs the copies before the log entry that points at them.
        await this.#flushLocked();
      });
    });
  }

  /**
   * Compaction, step 3: commits, empties the log (so no entry names a longer file), then truncates the file to
   * the end of the last structure or allocated block, rounded up to 1 MiB. Returns the file size afterwards.
   * @throws HvError `HV_ERR_INVALID_STATE` (read-only or closed), `HV_ERR_IO`.
   */
  truncateUnused(): Promise<number> {
    return this.#gate.exclusive(async () => {
      this.#checkOpen();
      let end = 0;
      for (const [, e] of this.reservedRanges()) end = Math.max(end, e);
      for (const a of this.allocations()) end = Math.max(end, a.fileOffset + a.length);
      end = ceilTo(end, MiB);
      if (end >= this.#file.size) return this.#file.size;
      await this.#beginChange(false);
      await this.#locked(async () => {
        await this.#flushLocked();
        await this.#file.sync();
        if (!this.#header.logGuid.equals(Guid.NIL)) {
          const stub = { header: this.#header, slot: this.#headerSlot };
          this.#header = await writeHeaderTwice(this.#file, stub, { logGuid: Guid.NIL });
          this.#headerSlot = stub.slot;
        }
        await this.#file.truncate(end);
        await this.#file.sync();
        this.#nextFree = end;
      });
      return end;
    });
  }

  #checkOpen(): void {
    if (this.#closed) throw new HvError('HV_ERR_INVALID_STATE', `${this.path} is closed`);
    if (this.readOnly) throw new HvError('HV_ERR_INVALID_STATE', `${this.path} is open read-only`);
  }

  /**
   * Rewrites BAT entries that check found bad to NOT_PRESENT: reserved bits set, illegal states, blocks or
   * bitmaps past the end of the file or overlapping the header section, the log or a region.
   */
  repairBat(): Promise<string[]> {
    return this.#gate.exclusive(async () => {
      this.#checkOpen();
      const fixed: string[] = [];
      const g = this.#geo;
      const dv = this.#batDv;
      const size = this.#file.size;
      const reserved = this.reservedRanges();
      const overlaps = (off: number, len: number): boolean =>
        reserved.some(([a, b]) => off < b && a < off + len);
      await this.#beginChange(false);
      for (let i = 0; i < g.totalEntries; i++) {
        const isBitmap = i % (g.chunkRatio + 1) === g.chunkRatio;
        const st = entryState(dv, i);
        const off = entryOffsetMB(dv, i) * MiB;
        let bad = entryReserved(dv, i) !== 0;
        if (isBitmap)
          bad ||=
            (!this.#meta.hasParent && (st !== 0 || off !== 0)) ||
            (st === SB_BLOCK_PRESENT && (off >= size || overlaps(off, MiB)));
        else if (st === PAYLOAD_BLOCK_FULLY_PRESENT || st === PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
          bad ||= off >= size || (st === PAYLOAD_BLOCK_PARTIALLY_PRESENT && !this.#meta.hasParent);
          bad ||= overlaps(off, g.blockSize);
        } else if (off !== 0 || st === 4) bad = true;
        if (bad) {
          setEntry(dv, i, 0, 0);
          if (isBitmap) this.#bitmaps.delete(Math.floor(i / (g.chunkRatio + 1)));
          this.#dirtyBat.add(Math.floor((i * 8) / SECTOR));
          fixed.push(`BAT entry ${i} reset to NOT_PRESENT`);
        }
      }
      await this.#flush();
      return fixed;
    });
  }

  /** Rewrites both region tables (through the log) from the copy that was read. */
  rewriteRegionTables(): Promise<void> {
    return this.#gate.exclusive(async () => {
      this.#checkOpen();
      await this.#beginChange(false);
      const table = encodeRegionTable(this.#regions);
      for (const base of [VHDX_REGION_TABLE1_OFFSET, VHDX_REGION_TABLE2_OFFSET]) {
        for (let s = 0; s < VHDX_REGION_TABLE_SIZE / SECTOR; s++) {
          this.#dirtyExtra.set(base + s * SECTOR, table.slice(s * SECTOR, (s + 1) * SECTOR));
        }
      }
      await this.#flush();
    });
  }

  /** Waits for I/O in flight, commits pending changes, empties the log, closes the file and the parent chain. */
  close(): Promise<void> {
    return this.#gate.exclusive(() => this.#close());
  }

  async #close(): Promise<void> {
    if (this.#closed) return;
    try {
      if (!this.readOnly) {
        await this.#flush();
        if (!this.#header.logGuid.equals(Guid.NIL)) {
          const stub = { header: this.#header, slot: this.#headerSlot };
          this.#header = await writeHeaderTwice(this.#file, stub, { logGuid: Guid.NIL });
        }
      }
    } finally {
      this.#closed = true;
      await this.#file.close();
      await this.#parent?.close();
    }
  }
}

/** File space owned by one BAT entry (see {@link VhdxDisk.allocations}). */
export interface FileAllocation {
  /** BAT index. */
  index: number;
  kind: 'payload' | 'bitmap';
  /** Payload block number, or chunk number for a sector bitmap. */
  block: number;
  /** Bytes. */
  fileOffset: number;
  /** Bytes: the block size, or 1 MiB for a sector bitmap. */
  length: number;
}

/**
 * The header update procedure [MS-VHDX] §2.2.2.1, run twice so both copies are current: build from the current
 * header with SequenceNumber+1 and `change`, write over the non-current slot, fsync. Updates `stub` in place.
 */
export async function writeHeaderTwice(
  file: ImageFile,
  stub: { header: VhdxHeader; slot: 0 | 1 },
  change: Partial<VhdxHeader>,
): Promise<VhdxHeader> {
  for (let k = 0; k < 2; k++) {
    const next: VhdxHeader = { ...stub.header, ...change, sequenceNumber: stub.header.sequenceNumber + 1n };
    const slot: 0 | 1 = stub.slot === 0 ? 1 : 0;
    await file.write(encodeHeader(next), slot === 0 ? VHDX_HEADER1_OFFSET : VHDX_HEADER2_OFFSET);
    await file.sync();
    stub.header = next;
    stub.slot = slot;
  }
  return stub.header;
}
