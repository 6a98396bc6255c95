/**
 * storvsp: the host side of a synthetic SCSI controller (OpenVMM vm/devices/storage/storvsp behaviour,
 * reference devices.md B.2–B.12). One controller = one VMBus offer (class HV_SCSI_GUID) plus the
 * sub-channels the guest asks for; up to 64 LUNs on path 0 / target 0, each a {@link ScsiDisk}.
 *
 * Per channel: Begin → QueryVersion → QueryProperties → EndInitialization → Ready (other operations during
 * init → STATUS_INVALID_DEVICE_STATE). Every completion is a VM_PKT_COMP carrying COMPLETE_IO whose size
 * mirrors the request's (48 or 64 bytes). EXECUTE_SRB with data must be a GPA-direct packet with exactly one
 * range covering data_transfer_length; the data moves between that guest memory and the image. A packet
 * shorter than the 12-byte header, or a GPA range outside guest RAM, closes the channel (untrusted guest).
 * Hot add/remove sends an unsolicited ENUMERATE_BUS (trans_id 0) on the primary channel.
 */
import { HvError, ProtocolError } from '../../protocol/errors.ts';
import type { Guid } from '../../protocol/guid.ts';
import * as op from '../../protocol/scsi/constants.ts';
import { encodeReportLuns, encodeStandardInquiry } from '../../protocol/scsi/data.ts';
import { writeFixedSense } from '../../protocol/scsi/sense.ts';
import { HV_SCSI_GUID, HV_SYNTHFC_GUID } from '../../protocol/vmbus/device-guids.ts';
import {
  decodeGpaDirectHeader,
  type GpaRange,
  HV_HYP_PAGE_SIZE,
  VM_PKT_COMP,
  VM_PKT_DATA_INBAND,
  VM_PKT_DATA_USING_GPA_DIRECT,
} from '../../protocol/vmbus/packet.ts';
import * as vs from '../../protocol/vstor/constants.ts';
import {
  decodeProtocolVersion,
  decodeSubChannelCount,
  encodeChannelProperties,
  encodeFcWwnPacket,
  newVmscsiRequest,
  readVmscsiRequest,
  type VmscsiRequest,
  writeVmscsiRequest,
} from '../../protocol/vstor/packet.ts';
import type { ChannelHandler, ChannelIo, IncomingPacket } from '../../vmbus/channel-io.ts';
import type { HostProfileName } from '../../vmbus/host-profiles.ts';
import type { GuestMemory } from '../../vmbus/memory.ts';
import type { OfferHandle, OfferOptions, OpenInfo } from '../../vmbus/server.ts';
import { type LunImage, ScsiDisk, type ScsiResult, type SrbData } from './scsi-disk.ts';

/** LUNs per controller (Hyper-V: 64 per virtual SCSI controller). */
export const STORVSP_MAX_LUNS = 64;

/** Highest VSTOR version each host profile accepts (the release that introduced it, devices.md B.1). */
export function vstorMaxVersion(profile: HostProfileName): number {
  switch (profile) {
    case 'WS2008R2':
      return vs.VMSTOR_PROTO_VERSION_WIN7;
    case 'WS2012':
      return vs.VMSTOR_PROTO_VERSION_WIN8;
    case 'WS2012R2':
      return vs.VMSTOR_PROTO_VERSION_WIN8_1;
    default:
      return vs.VMSTOR_PROTO_VERSION_WIN10;
  }
}

const KNOWN_VERSIONS = [
  vs.VMSTOR_PROTO_VERSION_WIN6,
  vs.VMSTOR_PROTO_VERSION_WIN7,
  vs.VMSTOR_PROTO_VERSION_WIN8,
  vs.VMSTOR_PROTO_VERSION_WIN8_1,
  vs.VMSTOR_PROTO_VERSION_WIN10,
];

/** The VMBus server surface the controller needs (VmbusServer satisfies it). */
export interface OfferSink {
  offer(opts: OfferOptions, open: (ch: ChannelIo, info: OpenInfo) => ChannelHandler): OfferHandle;
}

export interface StorvspOptions {
  server: OfferSink;
  instance: Guid;
  profile: HostProfileName;
  /** Sub-channels the host allows (max_channel_cnt, WIN8+ only). Default 0. */
  maxSubChannels?: number;
  /** max_transfer_bytes in QUERY_PROPERTIES (default 256 KiB, OpenVMM's). */
  maxTransferBytes?: number;
  log?: (message: string) => void;
  /**
   * A virtual Fibre Channel HBA instead of a SCSI controller: offered as HV_SYNTHFC_GUID and answering
   * FCHBA_DATA during initialization with these WWNs (8 bytes each, big-endian as Linux `wwn_to_u64`).
   */
  fc?: { portWwn: Uint8Array; nodeWwn: Uint8Array };
}

/** What the host tells about one LUN. */
export interface LunInfo {
  lun: number;
  disk: LunImage;
  vendor: string;
  product: string;
}

type ChannelState = 'begin' | 'version' | 'properties' | 'end' | 'ready';

/** One synthetic SCSI controller. */
export class StorvspController {
  readonly instance: Guid;
  readonly #o: StorvspOptions;
  readonly #luns = new Map<number, ScsiDisk>();
  readonly #subOffers: OfferHandle[] = [];
  readonly #maxVersion: number;
  readonly #classId: Guid;
  #primary: StorvspChannel | null = null;
  #version = 0;
  #handle: OfferHandle | null = null;

  constructor(o: StorvspOptions) {
    this.#o = o;
    this.instance = o.instance;
    this.#maxVersion = vstorMaxVersion(o.profile);
    this.#classId = o.fc ? HV_SYNTHFC_GUID : HV_SCSI_GUID;
  }

  /** Offers the primary channel to the guest (once). */
  offer(): OfferHandle {
    this.#handle ??= this.#o.server.offer(
      { interfaceType: this.#classId, instance: this.instance },
      (ch, info) => {
        const c = new StorvspChannel(this, ch, info.memory, true);
        this.#primary = c;
        return c;
      },
    );
    return this.#handle;
  }

  /** Removes the controller (rescinds its channels). */
  rescind(): void {
    for (const s of this.#subOffers.splice(0)) s.rescind();
    this.#handle?.rescind();
    this.#handle = null;
  }

  /** Negotiated VSTOR version (0 before QUERY_PROTOCOL_VERSION succeeded). */
  get version(): number {
    return this.#version;
  }

  get maxTransferBytes(): number {
    return this.#o.maxTransferBytes ?? vs.STORVSP_MAX_TRANSFER_BYTES;
  }

  /**
   * Attaches a disk at `lun` (hot add when the guest is running: ENUMERATE_BUS follows).
   * @throws HvError HV_ERR_INVALID_ARGUMENT for a LUN outside 0..63; HV_ERR_ALREADY_EXISTS when taken.
   */
  attach(lun: number, disk: LunImage, diskId: Uint8Array): void {
    if (!Number.isInteger(lun) || lun < 0 || lun >= STORVSP_MAX_LUNS)
      throw new HvError('HV_ERR_INVALID_ARGUMENT', `LUN ${lun} is outside 0..${STORVSP_MAX_LUNS - 1}`);
    if (this.#luns.has(lun)) throw new HvError('HV_ERR_ALREADY_EXISTS', `LUN ${lun} already has a disk`);
    this.#luns.set(lun, new ScsiDisk(disk, { diskId, maxTransferBytes: this.maxTransferBytes }));
    this.#primary?.enumerateBus();
  }

  /**
   * Detaches the disk at `lun` (hot remove): new commands get SRB_STATUS_INVALID_LUN at once, and the
   * returned promise resolves with the disk once the commands already running on it have completed.
   * @throws HvError HV_ERR_NOT_FOUND when the LUN is empty.
   */
  detach(lun: number): Promise<LunImage> {
    const d = this.#luns.get(lun);
    if (!d) throw new HvError('HV_ERR_NOT_FOUND', `no disk at LUN ${lun}`);
    this.#luns.delete(lun);
    this.#primary?.enumerateBus();
    return d.idle().then(() => d.disk);
  }

  /**
   * Switches the image behind `lun` while the guest runs (checkpoints): see {@link ScsiDisk.swap}.
   * @throws HvError HV_ERR_NOT_FOUND when the LUN is empty; whatever `open` throws.
   */
  swap(lun: number, open: (old: LunImage) => Promise<LunImage>): Promise<void> {
    const d = this.#luns.get(lun);
    if (!d) throw new HvError('HV_ERR_NOT_FOUND', `no disk at LUN ${lun}`);
    return d.swap(open);
  }

  luns(): LunInfo[] {
    return [...this.#luns.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([lun, d]) => ({ lun, disk: d.disk, vendor: d.vendor.trim(), product: d.product.trim() }));
  }

  /** @internal */
  lun(n: number): ScsiDisk | undefined {
    return this.#luns.get(n);
  }

  /** @internal */
  acceptVersion(v: number): boolean {
    if (!KNOWN_VERSIONS.includes(v) || v > this.#maxVersion) return false;
    this.#version = v;
    return true;
  }

  /** @internal sub-channels allowed for the negotiated version. */
  get maxSubChannels(): number {
    return this.#version >= vs.VMSTOR_PROTO_VERSION_WIN8 ? (this.#o.maxSubChannels ?? 0) : 0;
  }

  /** @internal */
  createSubChannels(count: number): boolean {
    if (count < 1 || count > this.maxSubChannels - this.#subOffers.length) return false;
    for (let i = 0; i < count; i++) {
      const index = this.#subOffers.length + 1;
      this.#subOffers.push(
        this.#o.server.offer(
          { interfaceType: this.#classId, instance: this.instance, subChannelIndex: index },
          (ch, info) => new StorvspChannel(this, ch, info.memory, false),
        ),
      );
    }
    return true;
  }

  /** @internal WWN packet for FCHBA_DATA, or null for a SCSI controller. */
  get fcWwns(): Uint8Array | null {
    const fc = this.#o.fc;
    return fc
      ? encodeFcWwnPacket({
          primaryActive: true,
          primaryPortWwn: fc.portWwn,
          primaryNodeWwn: fc.nodeWwn,
          secondaryPortWwn: new Uint8Array(8),
          secondaryNodeWwn: new Uint8Array(8),
        })
      : null;
  }

  /** @internal */
  log(message: string): void {
    this.#o.log?.(message);
  }
}

/** GPA-direct data of one SRB. */
class GpaData implements SrbData {
  length = 0;
  range: GpaRange | null = null;
  readonly #memory: GuestMemory;
  constructor(memory: GuestMemory) {
    this.#memory = memory;
  }
  copyOut(dst: Uint8Array, offset: number): void {
    if (this.range) this.#memory.copyFromGpaRanges([this.range], dst, offset);
  }
  copyIn(src: Uint8Array, offset: number): void {
    if (this.range) this.#memory.copyToGpaRanges(src, [this.range], offset);
  }
  direct(offset: number, len: number): Uint8Array | null {
    const r = this.range;
    if (!r) return null;
    const start = (r.byteOffset % HV_HYP_PAGE_SIZE) + offset;
    const p0 = Math.floor(start / HV_HYP_PAGE_SIZE);
    const endPage = Math.ceil((start + len) / HV_HYP_PAGE_SIZE);
    let n = 1;
    while (p0 + n < endPage && r.pfns[p0 + n] === r.pfns[p0]! + n) n++;
    if (n < 2 && endPage - p0 > 1) return null;
    const view = this.#memory.pageView(r.pfns[p0]!, n);
    if (!view) return null;
    const inPage = start - p0 * HV_HYP_PAGE_SIZE;
    return view.subarray(inPage, Math.min(view.length, inPage + len));
  }
}

/** One open channel (primary or sub-channel) of a controller. */
class StorvspChannel implements ChannelHandler {
  readonly #c: StorvspController;
  readonly #ch: ChannelIo;
  readonly #memory: GuestMemory;
  readonly #primary: boolean;
  readonly #req: VmscsiRequest = newVmscsiRequest();
  readonly #backlog: { type: number; transId: number; bytes: Uint8Array }[] = [];
  #state: ChannelState;
  #closed = false;

  constructor(c: StorvspController, ch: ChannelIo, memory: GuestMemory, primary: boolean) {
    this.#c = c;
    this.#ch = ch;
    this.#memory = memory;
    this.#primary = primary;
    this.#state = primary ? 'begin' : 'ready';
  }

  onPacket(pkt: IncomingPacket): void {
    if (pkt.type !== VM_PKT_DATA_INBAND && pkt.type !== VM_PKT_DATA_USING_GPA_DIRECT) return;
    const p = pkt.payload;
    if (p.length < vs.VSTOR_PACKET_HEADER_SIZE)
      throw new ProtocolError(`vstor_packet of ${p.length} bytes`, {
        channel: this.#ch.relid,
        offset: 0,
        structure: 'vstor_packet',
      });
    // Replies mirror the request's size (48 or 64): Windows guests check it (devices.md B.2).
    const size = Math.min(p.length, vs.VSTOR_PACKET_SIZE);
    const operation = p[0]! | (p[1]! << 8) | (p[2]! << 16) | (p[3]! << 24);
    if (operation === vs.VSTOR_OPERATION_EXECUTE_SRB && this.#state === 'ready') {
      this.#executeSrb(pkt, size);
      return;
    }
    const reply = new Uint8Array(size);
    reply.set(p.subarray(vs.VSTOR_PACKET_HEADER_SIZE, size), vs.VSTOR_PACKET_HEADER_SIZE);
    const payload = p.subarray(vs.VSTOR_PACKET_HEADER_SIZE, size);
    const status = this.#control(operation, payload, reply);
    this.#complete(pkt.transId, reply, status);
  }

  #control(operation: number, payload: Uint8Array, reply: Uint8Array): number {
    const s = this.#state;
    if (!this.#primary && operation !== vs.VSTOR_OPERATION_EXECUTE_SRB) return vs.STATUS_INVALID_DEVICE_STATE;
    switch (operation) {
      case vs.VSTOR_OPERATION_BEGIN_INITIALIZATION:
        if (s !== 'begin') return vs.STATUS_INVALID_DEVICE_STATE;
        this.#state = 'version';
        return vs.STATUS_SUCCESS;
      case vs.VSTOR_OPERATION_QUERY_PROTOCOL_VERSION: {
        if (s !== 'version') return vs.STATUS_INVALID_DEVICE_STATE;
        if (payload.length < 2) return vs.STATUS_INVALID_PARAMETER;
        if (!this.#c.acceptVersion(decodeProtocolVersion(payload))) return vs.STATUS_REVISION_MISMATCH;
        this.#state = 'properties';
        return vs.STATUS_SUCCESS;
      }
      case vs.VSTOR_OPERATION_QUERY_PROPERTIES: {
        if (s !== 'properties') return vs.STATUS_INVALID_DEVICE_STATE;
        const max = this.#c.maxSubChannels;
        const props = encodeChannelProperties({
          maxChannelCount: max,
          flags: max > 0 ? vs.STORAGE_CHANNEL_SUPPORTS_MULTI_CHANNEL : 0,
          maxTransferBytes: this.#c.maxTransferBytes,
        });
        reply.fill(0, vs.VSTOR_PACKET_HEADER_SIZE);
        reply.set(props.subarray(0, reply.length - vs.VSTOR_PACKET_HEADER_SIZE), vs.VSTOR_PACKET_HEADER_SIZE);
        this.#state = 'end';
        return vs.STATUS_SUCCESS;
      }
      case vs.VSTOR_OPERATION_END_INITIALIZATION:
        if (s !== 'end') return vs.STATUS_INVALID_DEVICE_STATE;
        this.#state = 'ready';
        return vs.STATUS_SUCCESS;
      case vs.VSTOR_OPERATION_FCHBA_DATA: {
        // FC only, between QUERY_PROPERTIES and END_INITIALIZATION (devices.md B.4 step 5, B.13).
        const wwns = this.#c.fcWwns;
        if (!wwns) return vs.STATUS_INVALID_DEVICE_REQUEST;
        if (s !== 'end') return vs.STATUS_INVALID_DEVICE_STATE;
        reply.fill(0, vs.VSTOR_PACKET_HEADER_SIZE);
        reply.set(wwns.subarray(0, reply.length - vs.VSTOR_PACKET_HEADER_SIZE), vs.VSTOR_PACKET_HEADER_SIZE);
        return vs.STATUS_SUCCESS;
      }
      case vs.VSTOR_OPERATION_CREATE_SUB_CHANNELS:
        if (s !== 'end' && s !== 'ready') return vs.STATUS_INVALID_DEVICE_STATE;
        if (payload.length < 2) return vs.STATUS_INVALID_PARAMETER;
        return this.#c.createSubChannels(decodeSubChannelCount(payload))
          ? vs.STATUS_SUCCESS
          : vs.STATUS_INVALID_PARAMETER;
      case vs.VSTOR_OPERATION_RESET_LUN:
      case vs.VSTOR_OPERATION_RESET_ADAPTER:
      case vs.VSTOR_OPERATION_RESET_BUS:
        return s === 'ready' ? vs.STATUS_SUCCESS : vs.STATUS_INVALID_DEVICE_STATE;
      default:
        return s === 'ready' ? vs.STATUS_INVALID_DEVICE_REQUEST : vs.STATUS_INVALID_DEVICE_STATE;
    }
  }

  #executeSrb(pkt: IncomingPacket, size: number): void {
    const p = pkt.payload;
    const req = readVmscsiRequest(p.subarray(0, size), vs.VSTOR_PACKET_HEADER_SIZE, this.#req);
    const reply = new Uint8Array(size);
    reply.set(p.subarray(0, size));
    const data = new GpaData(this.#memory);
    const transId = pkt.transId;
    const finish = (r: ScsiResult) => this.#completeSrb(transId, reply, r);
    const want = req.dataTransferLength;
    if (want > 0 && req.dataIn !== vs.UNKNOWN_TYPE) {
      if (pkt.type !== VM_PKT_DATA_USING_GPA_DIRECT) {
        finish(srbError(vs.SRB_STATUS_INVALID_REQUEST));
        return;
      }
      const ranges = decodeGpaDirectHeader(pkt.extHeader);
      const range = ranges[0]!;
      if (ranges.length !== 1 || range.byteCount < want) {
        finish(srbError(vs.SRB_STATUS_INVALID_REQUEST));
        return;
      }
      // A bounds check per page, not a view per page (decoded PFNs are non-negative integers).
      const pages = this.#memory.pageCount;
      for (const pfn of range.pfns) {
        if (pfn >= pages)
          throw new ProtocolError(`PFN ${pfn} is outside guest memory`, {
            channel: this.#ch.relid,
            structure: 'gpa_range',
          });
      }
      data.range = range;
      data.length = want;
    }
    // Always 16 bytes, zero past cdb_length: the opcode's group fixes the CDB length (SPC-4 §4.2.5.1),
    // and a guest's short cdb_length must not make a field read run off the end.
    const cdb = req.cdbOrSense.slice(0, 16).fill(0, req.cdbLength);
    if (req.pathId !== 0 || req.targetId !== 0) {
      finish(srbError(vs.SRB_STATUS_INVALID_TARGET_ID));
      return;
    }
    if (cdb[0] === op.REPORT_LUNS) {
      finish(this.#reportLuns(cdb, data));
      return;
    }
    const disk = this.#c.lun(req.lun);
    if (!disk) {
      if (cdb[0] === op.INQUIRY && (cdb[1]! & 1) === 0) {
        finish(this.#noLunInquiry(req.lun, cdb, data));
        return;
      }
      finish(srbError(vs.SRB_STATUS_INVALID_LUN));
      return;
    }
    disk.execute(cdb, data).then(finish, (e: unknown) => {
      this.#c.log(`storvsp: LUN ${req.lun}: ${(e as Error).message}`);
      finish(srbError(vs.SRB_STATUS_ERROR));
    });
  }

  #reportLuns(cdb: Uint8Array, data: SrbData): ScsiResult {
    const luns = this.#c.luns().map((l) => l.lun);
    const out = new Uint8Array(8 + 8 * luns.length);
    const n = encodeReportLuns(out, luns);
    const alloc = ((cdb[6]! << 24) >>> 0) + (cdb[7]! << 16) + (cdb[8]! << 8) + cdb[9]!;
    const m = Math.min(n, alloc, data.length);
    if (m > 0) data.copyIn(out.subarray(0, m), 0);
    return { srbStatus: vs.SRB_STATUS_SUCCESS, scsiStatus: op.SAM_STAT_GOOD, sense: null, transferred: m };
  }

  #noLunInquiry(lun: number, cdb: Uint8Array, data: SrbData): ScsiResult {
    const out = new Uint8Array(96);
    encodeStandardInquiry(out, {
      peripheral: op.PERIPHERAL_LUN_NOT_PRESENT,
      removable: false,
      version: 0x05,
      vendor: lun === 0 ? 'Msft    ' : '',
      product: lun === 0 ? 'Virtual Disk    ' : '',
      revision: '',
    });
    const m = Math.min(96, (cdb[3]! << 8) | cdb[4]!, data.length);
    if (m > 0) data.copyIn(out.subarray(0, m), 0);
    return { srbStatus: vs.SRB_STATUS_SUCCESS, scsiStatus: op.SAM_STAT_GOOD, sense: null, transferred: m };
  }

  #completeSrb(transId: number, reply: Uint8Array, r: ScsiResult): void {
    const req = readVmscsiRequest(reply, vs.VSTOR_PACKET_HEADER_SIZE, this.#req);
    req.srbStatus = r.srbStatus | (r.sense ? vs.SRB_STATUS_AUTOSENSE_VALID : 0);
    req.scsiStatus = r.scsiStatus;
    req.dataTransferLength = r.transferred;
    if (r.sense) {
      req.cdbOrSense.fill(0);
      // Valid sense bytes: the 18-byte fixed format fits both sense buffer sizes (0x14 and 0x12).
      req.senseInfoLength = writeFixedSense(req.cdbOrSense, 0, r.sense);
    } else {
      req.senseInfoLength = 0;
    }
    writeVmscsiRequest(reply, vs.VSTOR_PACKET_HEADER_SIZE, req);
    this.#complete(transId, reply, vs.ntStatusForSrb(r.srbStatus));
  }

  #complete(transId: number, reply: Uint8Array, status: number): void {
    const v = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
    v.setUint32(0, vs.VSTOR_OPERATION_COMPLETE_IO, true);
    v.setUint32(4, 0, true);
    v.setUint32(8, status >>> 0, true);
    this.#send(VM_PKT_COMP, transId, reply);
  }

  #send(type: number, transId: number, bytes: Uint8Array): void {
    if (this.#closed) return;
    if (this.#backlog.length > 0 || !this.#trySend(type, transId, bytes))
      this.#backlog.push({ type, transId, bytes });
  }

  #trySend(type: number, transId: number, bytes: Uint8Array): boolean {
    try {
      return this.#ch.send(type, 0, transId, bytes);
    } catch {
      this.#closed = true;
      return true;
    }
  }

  onWritable(): void {
    while (this.#backlog.length > 0) {
      const b = this.#backlog[0]!;
      if (!this.#trySend(b.type, b.transId, b.bytes)) return;
      this.#backlog.shift();
    }
  }

  onClose(): void {
    this.#closed = true;
    this.#backlog.length = 0;
  }

  /** Unsolicited ENUMERATE_BUS (trans_id 0, version-sized, status 0): "rescan the bus". */
  enumerateBus(): void {
    if (this.#state !== 'ready') return;
    const bytes = new Uint8Array(
      this.#c.version >= vs.VMSTOR_PROTO_VERSION_WIN8
        ? vs.VSTOR_PACKET_SIZE
        : vs.VSTOR_PACKET_SIZE - vs.VMSCSI_SIZE_DELTA,
    );
    new DataView(bytes.buffer).setUint32(0, vs.VSTOR_OPERATION_ENUMERATE_BUS, true);
    this.#send(VM_PKT_DATA_INBAND, 0, bytes);
  }
}

function srbError(srbStatus: number): ScsiResult {
  return { srbStatus, scsiStatus: op.SAM_STAT_GOOD, sense: null, transferred: 0 };
}
