/**
 * `struct vstor_packet` and its payloads, byte-exact (all little-endian, packed):
 *
 * vstor_packet (64 bytes; 48 before WIN8) — Linux drivers/scsi/storvsc_drv.c `struct vstor_packet`,
 * FreeBSD hv_vstorage.h `struct vstor_packet`, OpenVMM storvsp_protocol `Packet`:
 *   @0 operation u32, @4 flags u32, @8 status u32 (NTSTATUS), @12 payload union (0x34 bytes):
 *   - vmscsi_request (below), vmstorage_channel_properties (24 bytes),
 *     vmstorage_protocol_version {major_minor u16 @0, revision u16 @2}, sub_channel_count u16 @0,
 *     FC WWN packet (36 bytes, see {@link FcWwnPacket}).
 *
 * vmscsi_request (0x34 bytes; 0x24 before WIN8) — Linux `struct vmscsi_request` (+ `vmscsi_win8_extension`):
 *   @0 length u16, @2 srb_status u8, @3 scsi_status u8, @4 port_number u8, @5 path_id u8, @6 target_id u8,
 *   @7 lun u8, @8 cdb_length u8, @9 sense_info_length u8, @10 data_in u8, @11 reserved u8,
 *   @12 data_transfer_length u32, @16 cdb[16] ∪ sense_data[20], (Win8+) @36 reserve u16, @38 queue_tag u8,
 *   @39 queue_action u8, @40 srb_flags u32, @44 time_out_value u32 (s), @48 queue_sort_key u32.
 *
 * Decoders are total: any byte string gives a value or a ProtocolError (structure `vstor_packet`).
 */
import { ProtocolError } from '../errors.ts';
import {
  STORVSC_MAX_CMD_LEN,
  VSTOR_OPERATION_COMPLETE_IO,
  VSTOR_OPERATION_CREATE_SUB_CHANNELS,
  VSTOR_OPERATION_EXECUTE_SRB,
  VSTOR_OPERATION_FCHBA_DATA,
  VSTOR_OPERATION_QUERY_PROPERTIES,
  VSTOR_OPERATION_QUERY_PROTOCOL_VERSION,
  VSTOR_PACKET_HEADER_SIZE,
  VSTOR_PAYLOAD_SIZE,
} from './constants.ts';

/** Field offsets of `struct vmscsi_request` relative to its start (packet offset 12). */
export const VMSCSI_REQUEST = {
  size: 0x34,
  sizeWin7: 0x24,
  offsets: {
    length: 0,
    srb_status: 2,
    scsi_status: 3,
    port_number: 4,
    path_id: 5,
    target_id: 6,
    lun: 7,
    cdb_length: 8,
    sense_info_length: 9,
    data_in: 10,
    reserved: 11,
    data_transfer_length: 12,
    cdb: 16,
    sense_data: 16,
    reserve: 36,
    queue_tag: 38,
    queue_action: 39,
    srb_flags: 40,
    time_out_value: 44,
    queue_sort_key: 48,
  },
} as const;

/** `struct vmstorage_channel_properties` (24 bytes; Linux names, FreeBSD's in comments). */
export const VMSTORAGE_CHANNEL_PROPERTIES = {
  size: 24,
  offsets: { reserved: 0, max_channel_cnt: 4, reserved1: 6, flags: 8, max_transfer_bytes: 12, reserved2: 16 },
} as const;

/** A decoded vmscsi_request. `cdb` holds `cdb_length` bytes (≤ 16); `senseData` the sense bytes present. */
export interface VmscsiRequest {
  length: number;
  srbStatus: number;
  scsiStatus: number;
  portNumber: number;
  pathId: number;
  targetId: number;
  lun: number;
  cdbLength: number;
  senseInfoLength: number;
  dataIn: number;
  dataTransferLength: number;
  /** The 20-byte cdb/sense union as sent. */
  cdbOrSense: Uint8Array;
  /** Win8 extension fields (0 when the packet was pre-Win8 sized). */
  queueTag: number;
  queueAction: number;
  srbFlags: number;
  timeOutValue: number;
  queueSortKey: number;
}

/** `struct vmstorage_channel_properties`. */
export interface ChannelProperties {
  maxChannelCount: number;
  flags: number;
  /** Largest transfer per request, bytes. */
  maxTransferBytes: number;
}

/** FC WWN packet (36 bytes; Linux storvsc_drv.c `struct hv_fc_wwn_packet`, devices.md B.13). WWNs are big-endian 8-byte arrays. */
export interface FcWwnPacket {
  primaryActive: boolean;
  primaryPortWwn: Uint8Array;
  primaryNodeWwn: Uint8Array;
  secondaryPortWwn: Uint8Array;
  secondaryNodeWwn: Uint8Array;
}

/** A decoded vstor_packet; `payload` is the (≤ 0x34) union bytes, interpreted by `operation`. */
export interface VstorPacket {
  operation: number;
  flags: number;
  status: number;
  /** Payload bytes present after the header (what the sender sent, capped at 0x34), copied. */
  payload: Uint8Array;
}

function fail(message: string, offset: number, structure = 'vstor_packet'): never {
  throw new ProtocolError(message, { offset, structure });
}

/**
 * Decodes a vstor_packet from a VMBus packet payload. The payload may be any length ≥ 12; only the first
 * `min(len − 12, 0x34)` payload bytes are kept (OpenVMM's host rule, which Linux relies on at init).
 * @throws ProtocolError when shorter than the 12-byte header.
 */
export function decodeVstorPacket(bytes: Uint8Array): VstorPacket {
  if (bytes.length < VSTOR_PACKET_HEADER_SIZE)
    fail(`vstor_packet of ${bytes.length} bytes is shorter than its 12-byte header`, 0);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Math.min(bytes.length - VSTOR_PACKET_HEADER_SIZE, VSTOR_PAYLOAD_SIZE);
  return {
    operation: v.getUint32(0, true),
    flags: v.getUint32(4, true),
    status: v.getUint32(8, true),
    payload: bytes.slice(VSTOR_PACKET_HEADER_SIZE, VSTOR_PACKET_HEADER_SIZE + n),
  };
}

/**
 * Encodes a vstor_packet of `size` bytes (64, or 48 for pre-WIN8 peers): header then `payload` (truncated
 * or zero-padded to `size − 12`).
 */
export function encodeVstorPacket(
  p: { operation: number; flags: number; status: number; payload?: Uint8Array },
  size = VSTOR_PACKET_HEADER_SIZE + VSTOR_PAYLOAD_SIZE,
): Uint8Array {
  const out = new Uint8Array(Math.max(size, VSTOR_PACKET_HEADER_SIZE));
  const v = new DataView(out.buffer);
  v.setUint32(0, p.operation >>> 0, true);
  v.setUint32(4, p.flags >>> 0, true);
  v.setUint32(8, p.status >>> 0, true);
  if (p.payload)
    out.set(p.payload.subarray(0, out.length - VSTOR_PACKET_HEADER_SIZE), VSTOR_PACKET_HEADER_SIZE);
  return out;
}

/**
 * Reads a vmscsi_request from `bytes` at `base` (packet offset 12). Pre-Win8 sized requests (< 0x34 bytes
 * present) leave the extension fields 0. Writes into `out` (reused: no allocation beyond `out.cdbOrSense`).
 * @throws ProtocolError when fewer than 0x24 bytes are present or cdb_length > 16.
 */
export function readVmscsiRequest(bytes: Uint8Array, base: number, out: VmscsiRequest): VmscsiRequest {
  const avail = bytes.length - base;
  if (avail < VMSCSI_REQUEST.sizeWin7)
    fail(`vmscsi_request needs 36 bytes, ${Math.max(avail, 0)} present`, base, 'vmscsi_request');
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const o = VMSCSI_REQUEST.offsets;
  out.length = v.getUint16(base + o.length, true);
  out.srbStatus = bytes[base + o.srb_status]!;
  out.scsiStatus = bytes[base + o.scsi_status]!;
  out.portNumber = bytes[base + o.port_number]!;
  out.pathId = bytes[base + o.path_id]!;
  out.targetId = bytes[base + o.target_id]!;
  out.lun = bytes[base + o.lun]!;
  out.cdbLength = bytes[base + o.cdb_length]!;
  out.senseInfoLength = bytes[base + o.sense_info_length]!;
  out.dataIn = bytes[base + o.data_in]!;
  out.dataTransferLength = v.getUint32(base + o.data_transfer_length, true);
  out.cdbOrSense.set(bytes.subarray(base + o.cdb, base + o.cdb + 20));
  const ext = avail >= VMSCSI_REQUEST.size;
  out.queueTag = ext ? bytes[base + o.queue_tag]! : 0;
  out.queueAction = ext ? bytes[base + o.queue_action]! : 0;
  out.srbFlags = ext ? v.getUint32(base + o.srb_flags, true) : 0;
  out.timeOutValue = ext ? v.getUint32(base + o.time_out_value, true) : 0;
  out.queueSortKey = ext ? v.getUint32(base + o.queue_sort_key, true) : 0;
  if (out.cdbLength > STORVSC_MAX_CMD_LEN)
    fail(`cdb_length ${out.cdbLength} > 16`, base + o.cdb_length, 'vmscsi_request');
  return out;
}

/** A zeroed VmscsiRequest to reuse with {@link readVmscsiRequest}. */
export function newVmscsiRequest(): VmscsiRequest {
  return {
    length: 0,
    srbStatus: 0,
    scsiStatus: 0,
    portNumber: 0,
    pathId: 0,
    targetId: 0,
    lun: 0,
    cdbLength: 0,
    senseInfoLength: 0,
    dataIn: 0,
    dataTransferLength: 0,
    cdbOrSense: new Uint8Array(20),
    queueTag: 0,
    queueAction: 0,
    srbFlags: 0,
    timeOutValue: 0,
    queueSortKey: 0,
  };
}

/**
 * Writes a vmscsi_request at `base` of `bytes`; the Win8 extension only if `bytes` has room for it
 * (base + 0x34 ≤ length).
 */
export function writeVmscsiRequest(bytes: Uint8Array, base: number, r: VmscsiRequest): void {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const o = VMSCSI_REQUEST.offsets;
  v.setUint16(base + o.length, r.length, true);
  bytes[base + o.srb_status] = r.srbStatus;
  bytes[base + o.scsi_status] = r.scsiStatus;
  bytes[base + o.port_number] = r.portNumber;
  bytes[base + o.path_id] = r.pathId;
  bytes[base + o.target_id] = r.targetId;
  bytes[base + o.lun] = r.lun;
  bytes[base + o.cdb_length] = r.cdbLength;
  bytes[base + o.sense_info_length] = r.senseInfoLength;
  bytes[base + o.data_in] = r.dataIn;
  bytes[base + o.reserved] = 0;
  v.setUint32(base + o.data_transfer_length, r.dataTransferLength >>> 0, true);
  bytes.set(r.cdbOrSense.subarray(0, 20), base + o.cdb);
  if (base + VMSCSI_REQUEST.size <= bytes.length) {
    v.setUint16(base + o.reserve, 0, true);
    bytes[base + o.queue_tag] = r.queueTag;
    bytes[base + o.queue_action] = r.queueAction;
    v.setUint32(base + o.srb_flags, r.srbFlags >>> 0, true);
    v.setUint32(base + o.time_out_value, r.timeOutValue >>> 0, true);
    v.setUint32(base + o.queue_sort_key, r.queueSortKey >>> 0, true);
  }
}

/** Encodes channel properties (24 bytes; reserved fields 0 as OpenVMM sends them). */
export function encodeChannelProperties(p: ChannelProperties): Uint8Array {
  const out = new Uint8Array(VMSTORAGE_CHANNEL_PROPERTIES.size);
  const v = new DataView(out.buffer);
  const o = VMSTORAGE_CHANNEL_PROPERTIES.offsets;
  v.setUint16(o.max_channel_cnt, p.maxChannelCount, true);
  v.setUint32(o.flags, p.flags >>> 0, true);
  v.setUint32(o.max_transfer_bytes, p.maxTransferBytes >>> 0, true);
  return out;
}

/** Decodes channel properties from a payload. @throws ProtocolError when shorter than 24 bytes. */
export function decodeChannelProperties(payload: Uint8Array): ChannelProperties {
  if (payload.length < VMSTORAGE_CHANNEL_PROPERTIES.size)
    fail(`channel properties need 24 bytes, ${payload.length} present`, 12, 'vmstorage_channel_properties');
  const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const o = VMSTORAGE_CHANNEL_PROPERTIES.offsets;
  return {
    maxChannelCount: v.getUint16(o.max_channel_cnt, true),
    flags: v.getUint32(o.flags, true),
    maxTransferBytes: v.getUint32(o.max_transfer_bytes, true),
  };
}

/** `vmstorage_protocol_version` payload {major_minor u16, revision u16 = 0}. */
export function encodeProtocolVersion(majorMinor: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint16(0, majorMinor, true);
  return out;
}

/** major_minor of a QUERY_PROTOCOL_VERSION payload. @throws ProtocolError when shorter than 2 bytes. */
export function decodeProtocolVersion(payload: Uint8Array): number {
  if (payload.length < 2) fail('vmstorage_protocol_version needs 2 bytes', 12, 'vmstorage_protocol_version');
  return payload[0]! | (payload[1]! << 8);
}

/** CREATE_SUB_CHANNELS payload: u16 count. */
export function encodeSubChannelCount(count: number): Uint8Array {
  return Uint8Array.of(count & 0xff, (count >> 8) & 0xff);
}

/** @throws ProtocolError when shorter than 2 bytes. */
export function decodeSubChannelCount(payload: Uint8Array): number {
  if (payload.length < 2) fail('sub_channel_count needs 2 bytes', 12);
  return payload[0]! | (payload[1]! << 8);
}

/** FC WWN packet layout: primary_active u8 @0, reserved[3], primary port @4, node @12, secondary port @20, node @28. */
export function encodeFcWwnPacket(p: FcWwnPacket): Uint8Array {
  const out = new Uint8Array(36);
  out[0] = p.primaryActive ? 1 : 0;
  out.set(p.primaryPortWwn.subarray(0, 8), 4);
  out.set(p.primaryNodeWwn.subarray(0, 8), 12);
  out.set(p.secondaryPortWwn.subarray(0, 8), 20);
  out.set(p.secondaryNodeWwn.subarray(0, 8), 28);
  return out;
}

/** @throws ProtocolError when shorter than 36 bytes. */
export function decodeFcWwnPacket(payload: Uint8Array): FcWwnPacket {
  if (payload.length < 36)
    fail(`FC WWN packet needs 36 bytes, ${payload.length} present`, 12, 'vstor_fc_wwn');
  return {
    primaryActive: payload[0] !== 0,
    primaryPortWwn: payload.slice(4, 12),
    primaryNodeWwn: payload.slice(12, 20),
    secondaryPortWwn: payload.slice(20, 28),
    secondaryNodeWwn: payload.slice(28, 36),
  };
}

/** Operations whose request payload the host interprets (for fuzz coverage and logs). */
export const VSTOR_OPERATIONS_WITH_PAYLOAD = [
  VSTOR_OPERATION_EXECUTE_SRB,
  VSTOR_OPERATION_COMPLETE_IO,
  VSTOR_OPERATION_QUERY_PROTOCOL_VERSION,
  VSTOR_OPERATION_QUERY_PROPERTIES,
  VSTOR_OPERATION_FCHBA_DATA,
  VSTOR_OPERATION_CREATE_SUB_CHANNELS,
] as const;
