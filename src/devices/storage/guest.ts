/**
 * storvsc: the guest's synthetic SCSI driver (Linux drivers/scsi/storvsc_drv.c behaviour, reference
 * devices.md B.4–B.12). On the primary channel: BEGIN_INITIALIZATION, QUERY_PROTOCOL_VERSION (newest first
 * until status 0), QUERY_PROPERTIES, END_INITIALIZATION, then CREATE_SUB_CHANNELS when the host supports
 * multi-channel; then a bus scan: REPORT LUNS on LUN 0, INQUIRY and READ CAPACITY(16) per LUN. Each LUN is
 * exposed as a {@link GuestDisk} (a block device inside the guest). I/O goes out as EXECUTE_SRB with one
 * GPA-direct range over a bounce slot of guest pages, spread round-robin over the primary and sub-channels.
 * ENUMERATE_BUS / REMOVE_DEVICE → rescan (TEST UNIT READY on known LUNs drops removed ones); UNIT ATTENTION
 * 2A/09 → READ CAPACITY again and retry, so an online resize is seen without reattach.
 *
 * The host is untrusted: short or unknown completions are ignored and counted; lengths are clamped.
 */
import { HvError } from '../../protocol/errors.ts';
import {
  encodeInquiry,
  encodeReadCapacity16,
  encodeReadWrite16,
  encodeReportLuns,
  encodeSynchronizeCache,
  encodeUnmap,
  encodeUnmapParameterList,
} from '../../protocol/scsi/cdb.ts';
import * as op from '../../protocol/scsi/constants.ts';
import { decodeReadCapacity16, decodeReportLuns, decodeStandardInquiry } from '../../protocol/scsi/data.ts';
import { decodeSense, type SenseData } from '../../protocol/scsi/sense.ts';
import {
  encodeGpaDirectHeader,
  HV_HYP_PAGE_SIZE,
  VM_PKT_COMP,
  VM_PKT_DATA_INBAND,
  VM_PKT_DATA_USING_GPA_DIRECT,
  VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
} from '../../protocol/vmbus/packet.ts';
import * as vs from '../../protocol/vstor/constants.ts';
import {
  decodeChannelProperties,
  decodeFcWwnPacket,
  encodeProtocolVersion,
  encodeSubChannelCount,
  newVmscsiRequest,
  readVmscsiRequest,
  type VmscsiRequest,
  writeVmscsiRequest,
} from '../../protocol/vstor/packet.ts';
import type { ChannelHandler, ChannelIo, IncomingPacket } from '../../vmbus/channel-io.ts';
import type { GuestMemory } from '../../vmbus/memory.ts';

export interface StorvscOptions {
  memory: GuestMemory;
  /** VSTOR versions to try, newest first (default Linux's WIN10, WIN8_1, WIN8). */
  versions?: readonly number[];
  /** Sub-channels to ask for (Linux: online CPUs − 1), capped by the host's max_channel_cnt. Default 1. */
  subChannels?: number;
  /** Concurrent SRBs (bounce slots of max-transfer size in guest RAM). Default 32. */
  queueDepth?: number;
  /** A Fibre Channel HBA (class HV_SYNTHFC_GUID): ask FCHBA_DATA at init, cap transfers at 512 KiB. */
  fc?: boolean;
  /** Called after each scan with the current disks. */
  onDisksChanged?(disks: readonly GuestDisk[]): void;
  log?(message: string): void;
}

/** Result of one SRB as the guest sees it. */
export interface SrbResult {
  srbStatus: number;
  scsiStatus: number;
  sense: SenseData | null;
  transferred: number;
}

interface Pending {
  resolve(p: Uint8Array): void;
  reject(e: Error): void;
}

interface Slot {
  pfn: number;
  view: Uint8Array;
  /** GPA-direct extended header over all of the slot's pages. */
  ext: Uint8Array;
}

/** One synthetic SCSI controller in the guest. */
export class StorvscController {
  readonly #o: StorvscOptions;
  readonly #channels: ChannelIo[] = [];
  readonly #pending = new Map<number, Pending>();
  readonly #disks = new Map<number, GuestDisk>();
  readonly #slots: Slot[] = [];
  readonly #slotWaiters: ((s: Slot) => void)[] = [];
  readonly #req: VmscsiRequest = newVmscsiRequest();
  readonly #completion: VmscsiRequest = newVmscsiRequest();
  #nextId = 1;
  #rr = 0;
  #version = 0;
  #maxTransfer: number = vs.STORVSP_MAX_TRANSFER_BYTES;
  #slotsMade = 0;
  #scanning: Promise<void> | null = null;
  #rescanAgain = false;
  #closed = false;
  readonly ready: Promise<void>;
  #readyResolve!: () => void;
  #readyReject!: (e: Error) => void;
  /** FC port and node WWNs (8 bytes each) after FCHBA_DATA, null for SCSI. */
  wwns: { port: Uint8Array; node: Uint8Array } | null = null;
  /** Completions from the host that matched no request or were malformed. */
  badCompletions = 0;

  constructor(o: StorvscOptions) {
    this.#o = o;
    this.ready = new Promise<void>((res, rej) => {
      this.#readyResolve = res;
      this.#readyReject = rej;
    });
    this.ready.catch(() => {});
  }

  get version(): number {
    return this.#version;
  }

  get maxTransferBytes(): number {
    return this.#maxTransfer;
  }

  /** Open channels (primary first). */
  get channelCount(): number {
    return this.#channels.length;
  }

  disks(): GuestDisk[] {
    return [...this.#disks.values()].sort((a, b) => a.lun - b.lun);
  }

  /** The driver's attach for a channel of this controller: the primary starts initialization. */
  attachChannel(subChannelIndex: number, ch: ChannelIo): ChannelHandler {
    this.#channels.push(ch);
    if (subChannelIndex === 0) queueMicrotask(() => void this.#init(ch));
    return {
      onPacket: (p) => this.#onPacket(p),
      onClose: () => {
        const i = this.#channels.indexOf(ch);
        if (i >= 0) this.#channels.splice(i, 1);
        if (subChannelIndex === 0)
          this.#shutdown(new HvError('HV_ERR_CHANNEL_CLOSED', 'storvsc primary channel closed'));
      },
    };
  }

  #shutdown(e: Error): void {
    this.#closed = true;
    this.#readyReject(e);
    for (const p of this.#pending.values()) p.reject(e);
    this.#pending.clear();
    for (const d of this.#disks.values()) d.removed = true;
    this.#disks.clear();
    this.#o.onDisksChanged?.([]);
  }

  async #init(ch: ChannelIo): Promise<void> {
    try {
      await this.#control(ch, vs.VSTOR_OPERATION_BEGIN_INITIALIZATION, undefined, true);
      let ok = false;
      for (const v of this.#o.versions ?? vs.LINUX_VSTOR_VERSIONS) {
        this.#version = v;
        const r = await this.#control(
          ch,
          vs.VSTOR_OPERATION_QUERY_PROTOCOL_VERSION,
          encodeProtocolVersion(v),
          false,
        );
        if (status(r) === vs.STATUS_SUCCESS) {
          ok = true;
          break;
        }
      }
      if (!ok)
        throw new HvError('HV_ERR_UNSUPPORTED', 'storvsc: the host accepted no VSTOR protocol version');
      const props = decodeChannelProperties(
        (await this.#control(ch, vs.VSTOR_OPERATION_QUERY_PROPERTIES, undefined, true)).subarray(12),
      );
      if (props.maxTransferBytes >= HV_HYP_PAGE_SIZE)
        this.#maxTransfer =
          Math.min(props.maxTransferBytes, this.#o.fc ? 512 * 1024 : 1 << 20) & ~(HV_HYP_PAGE_SIZE - 1);
      if (this.#o.fc) {
        // Linux storvsc FC: FCHBA_DATA before END_INITIALIZATION; primary WWNs if primary_active.
        const w = decodeFcWwnPacket(
          (await this.#control(ch, vs.VSTOR_OPERATION_FCHBA_DATA, undefined, true)).subarray(12),
        );
        this.wwns = w.primaryActive
          ? { port: w.primaryPortWwn, node: w.primaryNodeWwn }
          : { port: w.secondaryPortWwn, node: w.secondaryNodeWwn };
      }
      await this.#control(ch, vs.VSTOR_OPERATION_END_INITIALIZATION, undefined, true);
      const want = Math.min(this.#o.subChannels ?? 1, props.maxChannelCount);
      if (props.flags & vs.STORAGE_CHANNEL_SUPPORTS_MULTI_CHANNEL && want > 0)
        await this.#control(ch, vs.VSTOR_OPERATION_CREATE_SUB_CHANNELS, encodeSubChannelCount(want), true);
      await this.rescan();
      this.#readyResolve();
    } catch (e) {
      this.#o.log?.(`storvsc: ${(e as Error).message}`);
      this.#readyReject(e as Error);
    }
  }

  get #packetSize(): number {
    return this.#version >= vs.VMSTOR_PROTO_VERSION_WIN8
      ? vs.VSTOR_PACKET_SIZE
      : vs.VSTOR_PACKET_SIZE - vs.VMSCSI_SIZE_DELTA;
  }

  #control(
    ch: ChannelIo,
    operation: number,
    payload: Uint8Array | undefined,
    mustSucceed: boolean,
  ): Promise<Uint8Array> {
    const bytes = new Uint8Array(this.#packetSize);
    const v = new DataView(bytes.buffer);
    v.setUint32(0, operation, true);
    v.setUint32(4, vs.REQUEST_COMPLETION_FLAG, true);
    if (payload) bytes.set(payload, 12);
    return this.#submit(ch, bytes, VM_PKT_DATA_INBAND).then((r) => {
      if (mustSucceed && status(r) !== vs.STATUS_SUCCESS)
        throw new HvError(
          'HV_ERR_PROTOCOL',
          `storvsc: ${vs.vstorOperationName(operation)} failed with status 0x${status(r).toString(16)}`,
        );
      return r;
    });
  }

  #submit(ch: ChannelIo, bytes: Uint8Array, type: number, ext?: Uint8Array): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new HvError('HV_ERR_CHANNEL_CLOSED', 'storvsc is closed'));
    const id = this.#nextId++;
    return new Promise<Uint8Array>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      const trySend = (): void => {
        try {
          if (ch.send(type, VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, id, bytes, ext)) return;
        } catch (e) {
          this.#pending.delete(id);
          reject(e as Error);
          return;
        }
        // Ring full: retry shortly (the host drains it).
        setTimeout(trySend, 1);
      };
      trySend();
    });
  }

  #onPacket(p: IncomingPacket): void {
    const b = p.payload;
    if (b.length < vs.VSTOR_PACKET_HEADER_SIZE) {
      this.badCompletions++;
      return;
    }
    if (p.type === VM_PKT_COMP) {
      const w = this.#pending.get(p.transId);
      if (!w) {
        this.badCompletions++;
        return;
      }
      this.#pending.delete(p.transId);
      w.resolve(b.slice(0, Math.min(b.length, vs.VSTOR_PACKET_SIZE)));
      return;
    }
    const operation = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0, true);
    if (operation === vs.VSTOR_OPERATION_ENUMERATE_BUS || operation === vs.VSTOR_OPERATION_REMOVE_DEVICE)
      void this.rescan().catch(() => {});
  }

  /** Scans the bus: drops LUNs that answer INVALID_LUN, adds new ones from REPORT LUNS. */
  rescan(): Promise<void> {
    if (this.#scanning) {
      this.#rescanAgain = true;
      return this.#scanning;
    }
    this.#scanning = (async () => {
      do {
        this.#rescanAgain = false;
        await this.#scanOnce();
      } while (this.#rescanAgain);
    })().finally(() => {
      this.#scanning = null;
    });
    return this.#scanning;
  }

  async #scanOnce(): Promise<void> {
    const cdb = new Uint8Array(16);
    for (const d of [...this.#disks.values()]) {
      cdb.fill(0);
      const r = await this.srb(d.lun, cdb, 6, null, false);
      if (vs.srbStatusCode(r.srbStatus) === vs.SRB_STATUS_INVALID_LUN) {
        d.removed = true;
        this.#disks.delete(d.lun);
      } else if (r.sense?.senseKey === op.UNIT_ATTENTION && r.sense.asc === op.ASC_PARAMETERS_CHANGED) {
        // Linux storvsc: capacity changed → rescan the device (re-read its capacity).
        await d.readCapacity().catch(() => {});
      }
    }
    const list = new Uint8Array(8 + 8 * 256);
    encodeReportLuns(cdb, list.length);
    const rl = await this.srb(0, cdb, 12, list, true);
    const luns =
      rl.scsiStatus === op.SAM_STAT_GOOD ? decodeReportLuns(list.subarray(0, rl.transferred)) : [0];
    for (const lun of luns) {
      if (this.#disks.has(lun) || lun > 255) continue;
      const inq = new Uint8Array(96);
      encodeInquiry(cdb, false, 0, inq.length);
      const ri = await this.srb(lun, cdb, 6, inq, true);
      if (ri.scsiStatus !== op.SAM_STAT_GOOD || ri.transferred < 36) continue;
      const std = decodeStandardInquiry(inq.subarray(0, ri.transferred));
      if ((std.peripheral & 0xe0) !== 0 || (std.peripheral & 0x1f) !== op.TYPE_DISK) continue;
      const disk = new GuestDisk(this, lun, std.vendor.trim(), std.product.trim(), std.revision.trim());
      await disk.readCapacity();
      this.#disks.set(lun, disk);
    }
    this.#o.onDisksChanged?.(this.disks());
  }

  async #slot(): Promise<Slot> {
    const s = this.#slots.pop();
    if (s) return s;
    if (this.#slotsMade < (this.#o.queueDepth ?? 32)) {
      this.#slotsMade++;
      const pages = this.#maxTransfer / HV_HYP_PAGE_SIZE;
      const pfn = this.#o.memory.allocPages(pages);
      const pfns: number[] = [];
      for (let i = 0; i < pages; i++) pfns.push(pfn + i);
      const ext = encodeGpaDirectHeader([{ byteCount: pages * HV_HYP_PAGE_SIZE, byteOffset: 0, pfns }]);
      return { pfn, view: this.#o.memory.pageView(pfn, pages)!, ext };
    }
    return new Promise<Slot>((res) => this.#slotWaiters.push(res));
  }

  #release(s: Slot): void {
    const w = this.#slotWaiters.shift();
    if (w) w(s);
    else this.#slots.push(s);
  }

  /**
   * Sends one SRB to `lun`. `buf` (≤ max transfer) is the data buffer: copied into guest pages for writes
   * (`dataIn` false), filled from them for reads. Never throws for SCSI errors: the statuses come back.
   * @throws HvError HV_ERR_CHANNEL_CLOSED when the controller is gone.
   */
  async srb(
    lun: number,
    cdb: Uint8Array,
    cdbLength: number,
    buf: Uint8Array | null,
    dataIn: boolean,
  ): Promise<SrbResult> {
    if (buf && buf.length > this.#maxTransfer)
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `SRB of ${buf.length} bytes > max transfer ${this.#maxTransfer}`,
      );
    const ch = this.#channels[this.#rr++ % Math.max(this.#channels.length, 1)];
    if (!ch || this.#closed) throw new HvError('HV_ERR_CHANNEL_CLOSED', 'storvsc has no open channel');
    const bytes = new Uint8Array(this.#packetSize);
    bytes[0] = vs.VSTOR_OPERATION_EXECUTE_SRB;
    bytes[4] = vs.REQUEST_COMPLETION_FLAG;
    const win8 = this.#packetSize === vs.VSTOR_PACKET_SIZE;
    const r = this.#req;
    r.length = win8 ? 0x34 : 0x24;
    r.srbStatus = 0;
    r.scsiStatus = 0;
    r.portNumber = 0;
    r.pathId = 0;
    r.targetId = 0;
    r.lun = lun;
    r.cdbLength = cdbLength;
    r.senseInfoLength = win8 ? vs.STORVSC_SENSE_BUFFER_SIZE : vs.PRE_WIN8_STORVSC_SENSE_BUFFER_SIZE;
    r.dataIn = buf ? (dataIn ? vs.READ_TYPE : vs.WRITE_TYPE) : vs.UNKNOWN_TYPE;
    r.dataTransferLength = buf?.length ?? 0;
    r.cdbOrSense.fill(0);
    r.cdbOrSense.set(cdb.subarray(0, cdbLength));
    r.queueTag = vs.SP_UNTAGGED;
    r.queueAction = vs.SRB_SIMPLE_TAG_REQUEST;
    r.srbFlags =
      vs.SRB_FLAGS_DISABLE_SYNCH_TRANSFER |
      vs.SRB_FLAGS_QUEUE_ACTION_ENABLE |
      vs.SRB_FLAGS_NO_QUEUE_FREEZE |
      (buf ? (dataIn ? vs.SRB_FLAGS_DATA_IN : vs.SRB_FLAGS_DATA_OUT) : 0);
    r.timeOutValue = 60;
    r.queueSortKey = 0;
    writeVmscsiRequest(bytes, 12, r);
    let reply: Uint8Array;
    if (!buf || buf.length === 0) {
      reply = await this.#submit(ch, bytes, VM_PKT_DATA_INBAND);
    } else {
      const slot = await this.#slot();
      try {
        if (!dataIn) slot.view.set(buf);
        // The slot's GPA-direct header (one range over its pages) is built once; only byte_count and the
        // length vary. The ring copies it at send time and the slot is ours until the completion.
        const pages = Math.ceil(buf.length / HV_HYP_PAGE_SIZE);
        new DataView(slot.ext.buffer).setUint32(8, buf.length, true);
        const ext = slot.ext.subarray(0, 16 + 8 * pages);
        reply = await this.#submit(ch, bytes, VM_PKT_DATA_USING_GPA_DIRECT, ext);
        const res = this.#result(reply, buf.length);
        if (dataIn && res.transferred > 0) buf.set(slot.view.subarray(0, res.transferred));
        return res;
      } finally {
        this.#release(slot);
      }
    }
    return this.#result(reply, 0);
  }

  #result(reply: Uint8Array, bufLen: number): SrbResult {
    if (reply.length < 12 + 0x24) {
      this.badCompletions++;
      return { srbStatus: vs.SRB_STATUS_ERROR, scsiStatus: op.SAM_STAT_GOOD, sense: null, transferred: 0 };
    }
    const r = readVmscsiRequestSafe(reply, this.#completion);
    const code = vs.srbStatusCode(r.srbStatus);
    let sense: SenseData | null = null;
    if (r.scsiStatus === op.SAM_STAT_CHECK_CONDITION && r.srbStatus & vs.SRB_STATUS_AUTOSENSE_VALID) {
      try {
        sense = decodeSense(r.cdbOrSense.subarray(0, Math.min(r.senseInfoLength, 20)));
      } catch {
        sense = null;
      }
    }
    const ok = code === vs.SRB_STATUS_SUCCESS || code === vs.SRB_STATUS_DATA_OVERRUN;
    return {
      srbStatus: r.srbStatus,
      scsiStatus: r.scsiStatus,
      sense,
      transferred: ok ? Math.min(r.dataTransferLength, bufLen) : 0,
    };
  }

  /** @internal a disk's capacity changed outside a scan. */
  notifyChanged(): void {
    this.#o.onDisksChanged?.(this.disks());
  }
}

function readVmscsiRequestSafe(reply: Uint8Array, out: VmscsiRequest): VmscsiRequest {
  try {
    return readVmscsiRequest(reply, 12, out);
  } catch {
    out.srbStatus = vs.SRB_STATUS_ERROR;
    out.scsiStatus = op.SAM_STAT_GOOD;
    out.dataTransferLength = 0;
    return out;
  }
}

function status(reply: Uint8Array): number {
  return new DataView(reply.buffer, reply.byteOffset, reply.byteLength).getUint32(8, true);
}

/**
 * A disk as the guest sees it (one LUN): size and block size from READ CAPACITY(16), vendor/product from
 * INQUIRY. `read`/`write`/`trim` take byte offsets and lengths that are multiples of `blockSize`.
 */
export class GuestDisk {
  readonly lun: number;
  readonly vendor: string;
  readonly product: string;
  readonly revision: string;
  /** Bytes. */
  size = 0;
  blockSize = 512;
  /** Logical block provisioning (UNMAP) supported. */
  thin = false;
  removed = false;
  readonly #c: StorvscController;

  constructor(c: StorvscController, lun: number, vendor: string, product: string, revision: string) {
    this.#c = c;
    this.lun = lun;
    this.vendor = vendor;
    this.product = product;
    this.revision = revision;
  }

  /** READ CAPACITY(16) → size, blockSize. @throws HvError HV_ERR_IO when the LUN fails it. */
  async readCapacity(): Promise<void> {
    const cdb = new Uint8Array(16);
    encodeReadCapacity16(cdb, 32);
    const buf = new Uint8Array(32);
    for (let attempt = 0; attempt < 3; attempt++) {
      const r = await this.#c.srb(this.lun, cdb, 16, buf, true);
      if (r.scsiStatus === op.SAM_STAT_GOOD && r.transferred >= 15) {
        const c = decodeReadCapacity16(buf);
        this.blockSize = c.blockBytes;
        this.size = (c.lastLba + 1) * c.blockBytes;
        this.thin = c.lbpme;
        return;
      }
      if (r.sense?.senseKey !== op.UNIT_ATTENTION) break;
    }
    throw new HvError('HV_ERR_IO', `LUN ${this.lun}: READ CAPACITY(16) failed`);
  }

  #check(offset: number, length: number): void {
    if (this.removed) throw new HvError('HV_ERR_NOT_FOUND', `LUN ${this.lun} was removed`);
    const bs = this.blockSize;
    if (
      !Number.isSafeInteger(offset) ||
      offset < 0 ||
      offset % bs !== 0 ||
      length % bs !== 0 ||
      offset + length > this.size
    )
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `I/O at ${offset} + ${length} bytes is not ${bs}-byte aligned inside the ${this.size}-byte disk`,
      );
  }

  /** Runs an SRB, re-reading capacity and retrying once after a capacity-changed unit attention. */
  async #run(
    cdb: Uint8Array,
    len: number,
    buf: Uint8Array | null,
    dataIn: boolean,
    what: string,
  ): Promise<SrbResult> {
    for (let attempt = 0; ; attempt++) {
      const r = await this.#c.srb(this.lun, cdb, len, buf, dataIn);
      if (r.scsiStatus === op.SAM_STAT_GOOD && vs.srbStatusCode(r.srbStatus) === vs.SRB_STATUS_SUCCESS)
        return r;
      const ua = r.sense?.senseKey === op.UNIT_ATTENTION;
      if (ua && r.sense?.asc === op.ASC_PARAMETERS_CHANGED) {
        await this.readCapacity();
        this.#c.notifyChanged();
      }
      if (ua && attempt < 3) continue;
      const s = r.sense
        ? ` sense ${r.sense.senseKey}/${r.sense.asc.toString(16)}/${r.sense.ascq.toString(16)}`
        : '';
      throw new HvError(
        'HV_ERR_IO',
        `LUN ${this.lun}: ${what} failed (srb 0x${r.srbStatus.toString(16)}, scsi 0x${r.scsiStatus.toString(16)}${s})`,
        { sense: r.sense },
      );
    }
  }

  async #rw(buf: Uint8Array, offset: number, write: boolean): Promise<void> {
    this.#check(offset, buf.length);
    const max = this.#c.maxTransferBytes;
    const jobs: Promise<SrbResult>[] = [];
    for (let done = 0; done < buf.length; done += max) {
      const part = buf.subarray(done, Math.min(buf.length, done + max));
      const cdb = new Uint8Array(16);
      encodeReadWrite16(cdb, write, (offset + done) / this.blockSize, part.length / this.blockSize);
      jobs.push(this.#run(cdb, 16, part, !write, write ? 'WRITE(16)' : 'READ(16)'));
    }
    await Promise.all(jobs);
  }

  read(buf: Uint8Array, offset: number): Promise<void> {
    return this.#rw(buf, offset, false);
  }

  write(buf: Uint8Array, offset: number): Promise<void> {
    return this.#rw(buf, offset, true);
  }

  /** SYNCHRONIZE CACHE(10) over the whole disk. */
  async flush(): Promise<void> {
    const cdb = new Uint8Array(16);
    encodeSynchronizeCache(cdb);
    await this.#run(cdb, 10, null, false, 'SYNCHRONIZE CACHE');
  }

  /** UNMAP of a byte range (split into descriptors of at most 2^32 − 1 blocks). */
  async trim(offset: number, length: number): Promise<void> {
    this.#check(offset, length);
    if (length === 0) return;
    const descs = [];
    const maxBlocks = 0xffffffff;
    for (let lba = offset / this.blockSize, left = length / this.blockSize; left > 0; ) {
      const n = Math.min(left, maxBlocks);
      descs.push({ lba, blocks: n });
      lba += n;
      left -= n;
    }
    const list = encodeUnmapParameterList(descs);
    const cdb = new Uint8Array(16);
    encodeUnmap(cdb, list.length);
    await this.#run(cdb, 10, list, false, 'UNMAP');
  }
}
