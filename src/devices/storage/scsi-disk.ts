/**
 * CDB emulation of one LUN backed by a {@link LunImage}, answering as a Hyper-V virtual disk does
 * (OpenVMM scsidisk behaviour, reference devices.md B.10/B.11): INQUIRY (standard + VPD), READ CAPACITY
 * 10/16, READ/WRITE/VERIFY 6/10/12/16, SYNCHRONIZE CACHE, UNMAP, WRITE SAME, MODE SENSE, TEST UNIT READY,
 * REQUEST SENSE, START STOP, PREVENT/ALLOW; anything else → CHECK CONDITION, ILLEGAL REQUEST, INVALID
 * COMMAND OPCODE. A size change of the backing disk is reported once as UNIT ATTENTION 2A/09.
 */
import {
  type BlockRange,
  decodeBlockRange,
  decodeInquiry,
  decodeUnmapParameterList,
} from '../../protocol/scsi/cdb.ts';
import * as op from '../../protocol/scsi/constants.ts';
import {
  encodeModeSenseCaching,
  encodeReadCapacity10,
  encodeReadCapacity16,
  encodeStandardInquiry,
  encodeVpdPage,
  MSFT_REVISION,
  MSFT_VENDOR,
  MSFT_VIRTUAL_DISK_PRODUCT,
} from '../../protocol/scsi/data.ts';
import type { SenseData } from '../../protocol/scsi/sense.ts';
import {
  SRB_STATUS_DATA_OVERRUN,
  SRB_STATUS_ERROR,
  SRB_STATUS_INVALID_REQUEST,
  SRB_STATUS_SUCCESS,
} from '../../protocol/vstor/constants.ts';

/** The data buffer of one SRB as the device sees it (guest memory behind it). */
export interface SrbData {
  /** Bytes the guest offered (data_transfer_length, ≤ the GPA range). */
  readonly length: number;
  /** Copies guest data (data-out) at `offset` into `dst`. */
  copyOut(dst: Uint8Array, offset: number): void;
  /** Copies `src` into the guest buffer (data-in) at `offset`. */
  copyIn(src: Uint8Array, offset: number): void;
  /** A direct view of guest memory for [offset, offset+len), or null when the pages are not contiguous. */
  direct(offset: number, len: number): Uint8Array | null;
}

/** Outcome of one command. */
export interface ScsiResult {
  srbStatus: number;
  scsiStatus: number;
  sense: SenseData | null;
  /** Bytes actually transferred. */
  transferred: number;
}

export interface ScsiDiskOptions {
  /** 16-byte disk identifier for VPD 0x83 (wire order). */
  diskId: Uint8Array;
  /** Largest transfer in bytes (VPD 0xB0, bounce buffers). */
  maxTransferBytes: number;
  vendor?: string;
  product?: string;
}

/**
 * What a LUN needs of its backing image: the I/O half of disk/'s `LunImage` (src/disk/block-device.ts),
 * which satisfies it, declared here so the device does not depend on the disk library. Sizes and offsets
 * in bytes.
 */
export interface LunImage {
  /** Virtual size in bytes. */
  readonly size: number;
  readonly logicalSectorSize: number;
  readonly physicalSectorSize: number;
  readonly readOnly: boolean;
  read(buf: Uint8Array, offset: number): Promise<void>;
  write(buf: Uint8Array, offset: number): Promise<void>;
  flush(): Promise<void>;
  /** Discards a range; it reads as zeros afterwards. */
  trim(offset: number, length: number): Promise<void>;
  /** Never called by the device: whoever attached the image closes it once detached or swapped out. */
  close(): Promise<void>;
}

const BOUNCE_BYTES = 1 << 20;

export class ScsiDisk {
  #disk: LunImage;
  /** Set while the backing image is being switched: new commands wait for it. */
  #gate: Promise<void> | null = null;
  readonly #o: ScsiDiskOptions;
  readonly #range: BlockRange = { lba: 0, blocks: 0, fua: false };
  readonly #small = new Uint8Array(512);
  #reportedSize: number;
  #pendingSense: SenseData | null = null;
  #bounce: Uint8Array | null = null;
  #inFlight = 0;
  readonly #idleWaiters: (() => void)[] = [];

  constructor(disk: LunImage, o: ScsiDiskOptions) {
    this.#disk = disk;
    this.#o = o;
    this.#reportedSize = disk.size;
  }

  get vendor(): string {
    return this.#o.vendor ?? MSFT_VENDOR;
  }

  get product(): string {
    return this.#o.product ?? MSFT_VIRTUAL_DISK_PRODUCT;
  }

  /** The backing image. */
  get disk(): LunImage {
    return this.#disk;
  }

  /**
   * Switches the backing image without the guest noticing (a checkpoint's differencing child): new
   * commands wait, the running ones complete, then `open(old)` (which may flush and close the old image)
   * returns the new one. If `open` throws, the old image stays in use and the error is rethrown.
   */
  async swap(open: (old: LunImage) => Promise<LunImage>): Promise<void> {
    while (this.#gate) await this.#gate;
    let release!: () => void;
    this.#gate = new Promise<void>((r) => {
      release = r;
    });
    try {
      await this.idle();
      this.#disk = await open(this.#disk);
      this.#reportedSize = this.#disk.size;
    } finally {
      this.#gate = null;
      release();
    }
  }

  /** Resolves when no command is running (after a hot remove, before the image is closed). */
  async idle(): Promise<void> {
    while (this.#inFlight > 0) await new Promise<void>((r) => this.#idleWaiters.push(r));
  }

  /** Runs one CDB. Never throws: disk errors become MEDIUM ERROR sense. */
  async execute(cdb: Uint8Array, data: SrbData): Promise<ScsiResult> {
    while (this.#gate) await this.#gate;
    this.#inFlight++;
    try {
      return await this.#execute(cdb, data);
    } finally {
      if (--this.#inFlight === 0) for (const w of this.#idleWaiters.splice(0)) w();
    }
  }

  async #execute(cdb: Uint8Array, data: SrbData): Promise<ScsiResult> {
    const code = cdb[0]!;
    if (code !== op.INQUIRY && code !== op.REQUEST_SENSE && this.disk.size !== this.#reportedSize) {
      this.#reportedSize = this.disk.size;
      return this.#fail(SRB_STATUS_ERROR, {
        senseKey: op.UNIT_ATTENTION,
        asc: op.ASC_PARAMETERS_CHANGED,
        ascq: op.ASCQ_CAPACITY_DATA_HAS_CHANGED,
      });
    }
    try {
      return await this.#dispatch(code, cdb, data);
    } catch (e) {
      if ((e as { structure?: string }).structure === 'scsi_cdb')
        return this.#illegal(op.ASC_INVALID_FIELD_IN_CDB);
      const write =
        code === op.WRITE_6 || code === op.WRITE_10 || code === op.WRITE_12 || code === op.WRITE_16;
      return this.#fail(SRB_STATUS_ERROR, {
        senseKey: op.MEDIUM_ERROR,
        asc: write ? op.ASC_WRITE_ERROR : op.ASC_UNRECOVERED_READ_ERROR,
        ascq: 0,
      });
    }
  }

  async #dispatch(code: number, cdb: Uint8Array, data: SrbData): Promise<ScsiResult> {
    const bs = this.disk.logicalSectorSize;
    switch (code) {
      case op.TEST_UNIT_READY:
      case op.START_STOP:
      case op.ALLOW_MEDIUM_REMOVAL:
        return ok(0);
      case op.REQUEST_SENSE: {
        const s = this.#pendingSense ?? { senseKey: op.NO_SENSE, asc: 0, ascq: 0 };
        this.#pendingSense = null;
        const b = this.#small;
        b.fill(0, 0, 18);
        b[0] = 0x70;
        b[2] = s.senseKey;
        b[7] = 10;
        b[12] = s.asc;
        b[13] = s.ascq;
        return this.#dataIn(b, 18, data, Math.min(cdb[4] ?? 0, 18));
      }
      case op.INQUIRY:
        return this.#inquiry(cdb, data);
      case op.READ_CAPACITY: {
        const n = encodeReadCapacity10(this.#small, this.disk.size / bs - 1, bs);
        return this.#dataIn(this.#small, n, data, n);
      }
      case op.SERVICE_ACTION_IN_16: {
        if ((cdb[1]! & 0x1f) !== op.SAI_READ_CAPACITY_16) return this.#illegal(op.ASC_INVALID_COMMAND_OPCODE);
        const n = encodeReadCapacity16(this.#small, {
          lastLba: this.disk.size / bs - 1,
          blockBytes: bs,
          logicalPerPhysicalExponent: Math.log2(this.disk.physicalSectorSize / bs),
          lbpme: true,
        });
        const alloc = new DataView(cdb.buffer, cdb.byteOffset, 16).getUint32(10);
        return this.#dataIn(this.#small, n, data, Math.min(alloc, n));
      }
      case op.MODE_SENSE:
      case op.MODE_SENSE_10: {
        const page = cdb[2]! & 0x3f;
        if (page !== op.MODE_PAGE_CACHING && page !== op.MODE_PAGE_ALL)
          return this.#illegal(op.ASC_INVALID_FIELD_IN_CDB);
        const ten = code === op.MODE_SENSE_10;
        const n = encodeModeSenseCaching(this.#small, ten, this.disk.readOnly, true);
        const alloc = ten ? (cdb[7]! << 8) | cdb[8]! : cdb[4]!;
        return this.#dataIn(this.#small, n, data, Math.min(alloc, n));
      }
      case op.READ_6:
      case op.READ_10:
      case op.READ_12:
      case op.READ_16:
      case op.WRITE_6:
      case op.WRITE_10:
      case op.WRITE_12:
      case op.WRITE_16:
        return this.#readWrite(code, cdb, data);
      case op.VERIFY:
      case op.VERIFY_12:
      case op.VERIFY_16: {
        const r = decodeBlockRange(cdb, this.#range);
        if (r.lba + r.blocks > this.disk.size / bs) return this.#illegal(op.ASC_LBA_OUT_OF_RANGE);
        return ok(0);
      }
      case op.SYNCHRONIZE_CACHE:
      case op.SYNCHRONIZE_CACHE_16:
        await this.disk.flush();
        return ok(0);
      case op.UNMAP:
        return this.#unmap(cdb, data);
      case op.WRITE_SAME:
      case op.WRITE_SAME_16:
        return this.#writeSame(cdb, data);
      default:
        return this.#illegal(op.ASC_INVALID_COMMAND_OPCODE);
    }
  }

  #inquiry(cdb: Uint8Array, data: SrbData): ScsiResult {
    const q = decodeInquiry(cdb);
    if (q.cmddt || (!q.evpd && q.page !== 0)) return this.#illegal(op.ASC_INVALID_FIELD_IN_CDB);
    const b = this.#small;
    let n: number;
    if (!q.evpd) {
      n = encodeStandardInquiry(b, {
        peripheral: op.TYPE_DISK,
        removable: false,
        version: 0x05,
        vendor: this.vendor,
        product: this.product,
        revision: MSFT_REVISION,
      });
    } else {
      n = encodeVpdPage(b, q.page, {
        diskId: this.#o.diskId,
        unmap: true,
        maxTransferBlocks: this.#o.maxTransferBytes / this.disk.logicalSectorSize,
        optimalUnmapGranularityBlocks: 1,
      });
      if (n < 0) return this.#illegal(op.ASC_INVALID_FIELD_IN_CDB);
    }
    return this.#dataIn(b, n, data, Math.min(q.allocationLength, n));
  }

  async #readWrite(code: number, cdb: Uint8Array, data: SrbData): Promise<ScsiResult> {
    const bs = this.disk.logicalSectorSize;
    const r = decodeBlockRange(cdb, this.#range);
    if (r.lba + r.blocks > this.disk.size / bs) return this.#illegal(op.ASC_LBA_OUT_OF_RANGE);
    const bytes = r.blocks * bs;
    if (bytes > data.length) return this.#illegal(op.ASC_INVALID_FIELD_IN_CDB);
    const write = code === op.WRITE_6 || code === op.WRITE_10 || code === op.WRITE_12 || code === op.WRITE_16;
    if (write && this.disk.readOnly)
      return this.#fail(SRB_STATUS_ERROR, {
        senseKey: op.DATA_PROTECT,
        asc: op.ASC_WRITE_PROTECTED,
        ascq: 0,
      });
    const base = r.lba * bs;
    for (let done = 0; done < bytes; ) {
      const direct = data.direct(done, bytes - done);
      if (direct) {
        // Straight between guest RAM and the image (no bounce copy).
        if (write) await this.disk.write(direct, base + done);
        else await this.disk.read(direct, base + done);
        done += direct.length;
        continue;
      }
      const chunk = Math.min(bytes - done, BOUNCE_BYTES);
      if (!this.#bounce) this.#bounce = new Uint8Array(BOUNCE_BYTES);
      const bounce = this.#bounce.subarray(0, chunk);
      if (write) {
        data.copyOut(bounce, done);
        await this.disk.write(bounce, base + done);
      } else {
        await this.disk.read(bounce, base + done);
        data.copyIn(bounce, done);
      }
      done += chunk;
    }
    if (write && r.fua) await this.disk.flush();
    return ok(bytes);
  }

  async #unmap(cdb: Uint8Array, data: SrbData): Promise<ScsiResult> {
    const len = Math.min((cdb[7]! << 8) | cdb[8]!, data.length);
    if (len === 0) return ok(0);
    if (len < 8) return this.#illegal(op.ASC_PARAMETER_LIST_LENGTH_ERROR);
    const list = new Uint8Array(len);
    data.copyOut(list, 0);
    const bs = this.disk.logicalSectorSize;
    const total = this.disk.size / bs;
    const descs = decodeUnmapParameterList(list);
    for (const d of descs) if (d.lba + d.blocks > total) return this.#illegal(op.ASC_LBA_OUT_OF_RANGE);
    for (const d of descs) if (d.blocks > 0) await this.disk.trim(d.lba * bs, d.blocks * bs);
    return ok(len);
  }

  async #writeSame(cdb: Uint8Array, data: SrbData): Promise<ScsiResult> {
    const bs = this.disk.logicalSectorSize;
    const r = decodeBlockRange(cdb, this.#range);
    if (r.lba + r.blocks > this.disk.size / bs) return this.#illegal(op.ASC_LBA_OUT_OF_RANGE);
    if (r.blocks * bs > 8 * 2 ** 20) return this.#illegal(op.ASC_INVALID_FIELD_IN_CDB);
    const unmapBit = (cdb[1]! & 0x08) !== 0;
    const block = new Uint8Array(bs);
    if (data.length >= bs) data.copyOut(block, 0);
    else if (!unmapBit) return this.#illegal(op.ASC_INVALID_FIELD_IN_CDB);
    if (unmapBit && block.every((b) => b === 0)) {
      await this.disk.trim(r.lba * bs, r.blocks * bs);
      return ok(Math.min(bs, data.length));
    }
    const buf = new Uint8Array(r.blocks * bs);
    for (let i = 0; i < r.blocks; i++) buf.set(block, i * bs);
    await this.disk.write(buf, r.lba * bs);
    return ok(bs);
  }

  #dataIn(src: Uint8Array, available: number, data: SrbData, wanted: number): ScsiResult {
    const n = Math.min(available, wanted, data.length);
    if (n > 0) data.copyIn(src.subarray(0, n), 0);
    return {
      srbStatus: n < Math.min(available, wanted) ? SRB_STATUS_DATA_OVERRUN : SRB_STATUS_SUCCESS,
      scsiStatus: op.SAM_STAT_GOOD,
      sense: null,
      transferred: n,
    };
  }

  #illegal(asc: number): ScsiResult {
    return this.#fail(SRB_STATUS_INVALID_REQUEST, { senseKey: op.ILLEGAL_REQUEST, asc, ascq: 0 });
  }

  #fail(srbStatus: number, sense: SenseData): ScsiResult {
    this.#pendingSense = sense;
    return { srbStatus, scsiStatus: op.SAM_STAT_CHECK_CONDITION, sense, transferred: 0 };
  }
}

function ok(transferred: number): ScsiResult {
  return { srbStatus: SRB_STATUS_SUCCESS, scsiStatus: op.SAM_STAT_GOOD, sense: null, transferred };
}
