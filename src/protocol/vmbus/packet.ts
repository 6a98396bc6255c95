/**
 * VMBus packets as they sit in a channel's ring: the 16-byte descriptor, the packet types, and the extended
 * headers of transfer-page (type 7) and GPA-direct (type 9) packets. All integers little-endian.
 *
 * Sources: Linux include/linux/hyperv.h (`struct vmpacket_descriptor`, `enum vmbus_packet_type`,
 * `struct vmtransfer_page_packet_header`, `struct gpa_range`, `struct hv_page_buffer`, `struct hv_mpb_array`,
 * `struct vmbus_channel_packet_page_buffer`, `struct vmbus_packet_mpb_array`); FreeBSD
 * sys/dev/hyperv/include/vmbus.h (`struct vmbus_chanpkt_hdr`); OpenVMM vm/devices/vmbus/vmbus_ring/src/lib.rs
 * (`PacketDescriptor`, `parse_packet`). Reference: vmbus-core-ics.md §3.
 *
 * Hot-path helpers read and write at constant offsets on a DataView and allocate nothing; transaction ids
 * and PFNs are JS numbers below 2^53, carried on the wire as two u32 halves (no BigInt).
 */
import { ProtocolError } from '../errors.ts';

// enum vmbus_packet_type (Linux include/linux/hyperv.h)
export const VM_PKT_INVALID = 0x0;
export const VM_PKT_SYNCH = 0x1;
export const VM_PKT_ADD_XFER_PAGESET = 0x2;
export const VM_PKT_RM_XFER_PAGESET = 0x3;
export const VM_PKT_ESTABLISH_GPADL = 0x4;
export const VM_PKT_TEARDOWN_GPADL = 0x5;
export const VM_PKT_DATA_INBAND = 0x6;
export const VM_PKT_DATA_USING_XFER_PAGES = 0x7;
export const VM_PKT_DATA_USING_GPADL = 0x8;
export const VM_PKT_DATA_USING_GPA_DIRECT = 0x9;
export const VM_PKT_CANCEL_REQUEST = 0xa;
export const VM_PKT_COMP = 0xb;
export const VM_PKT_DATA_USING_ADDITIONAL_PKT = 0xc;
export const VM_PKT_ADDITIONAL_DATA = 0xd;

/** Descriptor flag bit0: the sender wants a `VM_PKT_COMP` back with the same trans_id. No other flag exists. */
export const VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED = 1;

/** Linux `MAX_PAGE_BUFFER_COUNT` (hv_page_buffer entries per packet). */
export const MAX_PAGE_BUFFER_COUNT = 32;
/** Linux `MAX_MULTIPAGE_BUFFER_COUNT` (PFNs in one hv_multipage_buffer, 128 KiB). */
export const MAX_MULTIPAGE_BUFFER_COUNT = 32;

/** Hyper-V page: 4096 bytes whatever the guest's own page size; PFN = GPA >> 12. */
export const HV_HYP_PAGE_SIZE = 4096;
export const HV_HYP_PAGE_SHIFT = 12;

/** Linux `struct vmpacket_descriptor` (hyperv.h), FreeBSD `struct vmbus_chanpkt_hdr`: 16 bytes. */
export const VMPACKET_DESCRIPTOR = {
  size: 16,
  offsets: { type: 0, offset8: 2, len8: 4, flags: 6, trans_id: 8 },
} as const;

/** Linux `struct vmtransfer_page_range` (hyperv.h): 8 bytes; byte_offset is into the transfer page set. */
export const VMTRANSFER_PAGE_RANGE = { size: 8, offsets: { byte_count: 0, byte_offset: 4 } } as const;

/**
 * Linux `struct vmtransfer_page_packet_header` (hyperv.h): descriptor + 16 bytes of header; sizeof is 32
 * because Linux declares `ranges[1]`. The first range is at 24; offset8 = 3 + range_cnt.
 */
export const VMTRANSFER_PAGE_PACKET_HEADER = {
  size: 32,
  offsets: { d: 0, xfer_pageset_id: 16, sender_owns_set: 18, reserved: 19, range_cnt: 20, ranges: 24 },
} as const;

/** Linux `struct gpa_range` (hyperv.h): 8-byte header then `pfn_array` of u64 (flexible array member). */
export const GPA_RANGE = { size: 8, offsets: { byte_count: 0, byte_offset: 4, pfn_array: 8 } } as const;

/** Linux `struct hv_page_buffer` (hyperv.h): 16 bytes, one PFN; on the wire a gpa_range of exactly one page. */
export const HV_PAGE_BUFFER = { size: 16, offsets: { len: 0, offset: 4, pfn: 8 } } as const;

/** Linux `struct hv_mpb_array` (hyperv.h): 8-byte header then `pfn_array` (same wire form as gpa_range). */
export const HV_MPB_ARRAY = { size: 8, offsets: { len: 0, offset: 4, pfn_array: 8 } } as const;

/**
 * The 24-byte head both GPA-direct packet structs share (Linux hyperv.h `vmbus_channel_packet_page_buffer`
 * and `vmbus_packet_mpb_array`): the 16-byte descriptor, reserved u32, rangecount u32, then the ranges.
 */
const GPA_DIRECT_PACKET_OFFSETS = {
  type: 0,
  dataoffset8: 2,
  length8: 4,
  flags: 6,
  transactionid: 8,
  reserved: 16,
  rangecount: 20,
  range: 24,
} as const;

/** Linux `struct vmbus_channel_packet_page_buffer` (hyperv.h): 24 + 32 × 16 = 536 bytes. */
export const VMBUS_CHANNEL_PACKET_PAGE_BUFFER = {
  size: 24 + HV_PAGE_BUFFER.size * MAX_PAGE_BUFFER_COUNT,
  offsets: GPA_DIRECT_PACKET_OFFSETS,
} as const;

/** Linux `struct vmbus_packet_mpb_array` (hyperv.h): 24-byte GPA-direct header + one hv_mpb_array = 32 bytes. */
export const VMBUS_PACKET_MPB_ARRAY = {
  size: 32,
  offsets: GPA_DIRECT_PACKET_OFFSETS,
} as const;

/**
 * The GPA-direct extended header after the descriptor (FreeBSD `struct vmbus_chanpkt_sglist`/`prplist`
 * minus its descriptor): reserved u32 @0, range_cnt u32 @4, ranges @8 (offsets relative to the extended header).
 */
export const GPA_DIRECT_EXT_HEADER = { size: 8, offsets: { reserved: 0, range_cnt: 4, ranges: 8 } } as const;

const TWO32 = 0x1_0000_0000;
/** Largest high u32 half that keeps a u64 below 2^53. */
const MAX_SAFE_HI = 0x1f_ffff;

/** A decoded descriptor; reuse one object per reader (see {@link readDescriptor}). */
export interface PacketDescriptor {
  type: number;
  offset8: number;
  len8: number;
  flags: number;
  /** Transaction id as a number (< 2^53). */
  transId: number;
}

/** True for the packet types a modern VMBus peer may put in a ring (OpenVMM parse_packet: 6, 7, 9, 0xB). */
export function isKnownPacketType(type: number): boolean {
  return (
    type === VM_PKT_DATA_INBAND ||
    type === VM_PKT_DATA_USING_XFER_PAGES ||
    type === VM_PKT_DATA_USING_GPA_DIRECT ||
    type === VM_PKT_COMP
  );
}

/**
 * Writes a u64 that is a non-negative integer number < 2^53 as two u32 halves at `offset`.
 * The caller guarantees the range (hot path: no check).
 */
export function setU64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, value >>> 0, true);
  view.setUint32(offset + 4, (value / TWO32) >>> 0, true);
}

/**
 * Reads a u64 at `offset` as a number; returns -1 when it is >= 2^53 (not representable exactly), so the
 * caller can raise a ProtocolError naming its structure.
 */
export function getU64(view: DataView, offset: number): number {
  const hi = view.getUint32(offset + 4, true);
  if (hi > MAX_SAFE_HI) return -1;
  return hi * TWO32 + view.getUint32(offset, true);
}

/**
 * Writes a 16-byte `vmpacket_descriptor` at `offset` (allocation-free). `transId` must be an integer in
 * [0, 2^53); `offset8`/`len8` in 8-byte units, u16.
 */
export function writeDescriptor(
  view: DataView,
  offset: number,
  type: number,
  offset8: number,
  len8: number,
  flags: number,
  transId: number,
): void {
  view.setUint16(offset, type, true);
  view.setUint16(offset + 2, offset8, true);
  view.setUint16(offset + 4, len8, true);
  view.setUint16(offset + 6, flags, true);
  setU64(view, offset + 8, transId);
}

/**
 * Decodes and validates the descriptor at `offset` into `out` (allocation-free), applying OpenVMM
 * parse_packet's rules: offset8 >= 2, len8 >= offset8, len8 × 8 <= `available`, type in {6, 7, 9, 0xB},
 * flags 0 or 1; also trans_id < 2^53 (hvis carries ids as numbers).
 * @param available bytes of the packet present after `offset` (trailer excluded)
 * @throws ProtocolError (`vmpacket_descriptor`, offset = field offset) on any violation or if fewer than
 *   16 bytes are available.
 */
export function readDescriptor(
  view: DataView,
  offset: number,
  available: number,
  out: PacketDescriptor,
): void {
  if (
    available < VMPACKET_DESCRIPTOR.size ||
    offset < 0 ||
    offset + VMPACKET_DESCRIPTOR.size > view.byteLength
  ) {
    throw new ProtocolError(`packet of ${available} bytes is shorter than its 16-byte descriptor`, {
      offset: 0,
      structure: 'vmpacket_descriptor',
    });
  }
  const type = view.getUint16(offset, true);
  const offset8 = view.getUint16(offset + 2, true);
  const len8 = view.getUint16(offset + 4, true);
  const flags = view.getUint16(offset + 6, true);
  const transId = getU64(view, offset + 8);
  if (!isKnownPacketType(type)) descriptorError(`unknown packet type ${type}`, 0);
  if (offset8 < 2) descriptorError(`offset8 ${offset8} < 2 (payload inside the descriptor)`, 2);
  if (len8 < offset8) descriptorError(`len8 ${len8} < offset8 ${offset8}`, 4);
  if (len8 * 8 > available)
    descriptorError(`len8 ${len8} (${len8 * 8} bytes) exceeds the ${available} bytes present`, 4);
  if (flags > VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED)
    descriptorError(`flags 0x${flags.toString(16)} not 0 or 1`, 6);
  if (transId < 0) descriptorError('trans_id >= 2^53 is not supported', 8);
  out.type = type;
  out.offset8 = offset8;
  out.len8 = len8;
  out.flags = flags;
  out.transId = transId;
}

function descriptorError(message: string, offset: number): never {
  throw new ProtocolError(message, { offset, structure: 'vmpacket_descriptor' });
}

/** Bytes one packet occupies in a ring: `len8 × 8` plus the 8-byte trailer (vmbus-core-ics.md §2.2). */
export function ringBytesForPacket(payloadLength: number, extHeaderLength = 0): number {
  return ((16 + extHeaderLength + payloadLength + 7) & ~7) + 8;
}

// ---- transfer-page packets (type 7) ----

/** One `vmtransfer_page_range`: `byteCount` bytes at `byteOffset` in the transfer page set. */
export interface TransferPageRange {
  byteCount: number;
  byteOffset: number;
}

/** The extended header of a `VM_PKT_DATA_USING_XFER_PAGES` packet (bytes 16.. of the packet). */
export interface TransferPageHeader {
  xferPagesetId: number;
  senderOwnsSet: number;
  ranges: TransferPageRange[];
}

/** Extended-header bytes (after the descriptor) for a transfer-page packet of `rangeCount` ranges. */
export function transferPageHeaderLength(rangeCount: number): number {
  return 8 + rangeCount * VMTRANSFER_PAGE_RANGE.size;
}

/**
 * Encodes a transfer-page extended header (the packet bytes from offset 16; offset8 becomes 3 + ranges).
 * `reserved` is written 0.
 */
export function encodeTransferPageHeader(h: TransferPageHeader): Uint8Array {
  const out = new Uint8Array(transferPageHeaderLength(h.ranges.length));
  const v = new DataView(out.buffer);
  v.setUint16(0, h.xferPagesetId, true);
  v.setUint8(2, h.senderOwnsSet);
  v.setUint32(4, h.ranges.length, true);
  let o = 8;
  for (const r of h.ranges) {
    v.setUint32(o, r.byteCount, true);
    v.setUint32(o + 4, r.byteOffset, true);
    o += 8;
  }
  return out;
}

/**
 * Decodes a transfer-page extended header (`extHeader` = packet bytes 16 .. offset8 × 8). Bytes 18..19 are
 * tolerated whatever they hold (OpenVMM treats them as reserved).
 * @throws ProtocolError (`vmtransfer_page_packet_header`, offsets relative to the packet start) when the
 *   header is shorter than 8 bytes or range_cnt ranges do not fit in it.
 */
export function decodeTransferPageHeader(extHeader: Uint8Array): TransferPageHeader {
  const v = new DataView(extHeader.buffer, extHeader.byteOffset, extHeader.byteLength);
  if (extHeader.length < 8) xferError(`extended header of ${extHeader.length} bytes < 8`, 16);
  const count = v.getUint32(4, true);
  if (count > (extHeader.length - 8) / 8) {
    xferError(`range_cnt ${count} does not fit in a ${extHeader.length}-byte extended header`, 20);
  }
  const ranges: TransferPageRange[] = [];
  for (let i = 0, o = 8; i < count; i++, o += 8) {
    ranges.push({ byteCount: v.getUint32(o, true), byteOffset: v.getUint32(o + 4, true) });
  }
  return { xferPagesetId: v.getUint16(0, true), senderOwnsSet: v.getUint8(2), ranges };
}

function xferError(message: string, offset: number): never {
  throw new ProtocolError(message, { offset, structure: 'vmtransfer_page_packet_header' });
}

// ---- GPA-direct packets (type 9) ----

/**
 * One `gpa_range` / `hv_mpb_array` / `hv_page_buffer`: `byteCount` bytes starting `byteOffset % 4096` bytes
 * into page `pfns[0]`, continuing through the following PFNs in order.
 */
export interface GpaRange {
  byteCount: number;
  byteOffset: number;
  pfns: number[];
}

/** Pages a range spans: ceil((byteOffset % 4096 + byteCount) / 4096) (Linux/OpenVMM). */
export function gpaRangePageCount(byteOffset: number, byteCount: number): number {
  return Math.ceil(((byteOffset % HV_HYP_PAGE_SIZE) + byteCount) / HV_HYP_PAGE_SIZE);
}

/** Extended-header bytes (after the descriptor) for a GPA-direct packet with these ranges. */
export function gpaDirectHeaderLength(ranges: readonly GpaRange[]): number {
  let n = GPA_DIRECT_EXT_HEADER.size;
  for (const r of ranges) n += GPA_RANGE.size + 8 * r.pfns.length;
  return n;
}

/**
 * Encodes a GPA-direct extended header (packet bytes from 16: reserved 0, range_cnt, ranges).
 * @throws RangeError if a range's PFN count differs from {@link gpaRangePageCount} (caller bug).
 */
export function encodeGpaDirectHeader(ranges: readonly GpaRange[]): Uint8Array {
  const out = new Uint8Array(gpaDirectHeaderLength(ranges));
  const v = new DataView(out.buffer);
  v.setUint32(4, ranges.length, true);
  let o = 8;
  for (const r of ranges) {
    if (r.pfns.length !== gpaRangePageCount(r.byteOffset, r.byteCount)) {
      throw new RangeError(
        `gpa_range of ${r.byteCount} bytes at offset ${r.byteOffset} needs ${gpaRangePageCount(r.byteOffset, r.byteCount)} PFNs, got ${r.pfns.length}`,
      );
    }
    v.setUint32(o, r.byteCount, true);
    v.setUint32(o + 4, r.byteOffset, true);
    o += 8;
    for (const pfn of r.pfns) {
      setU64(v, o, pfn);
      o += 8;
    }
  }
  return out;
}

/**
 * Decodes a GPA-direct extended header (packet bytes 16 .. offset8 × 8) into ranges. Enforces OpenVMM's
 * rules: range_cnt != 0, each range's PFN count = {@link gpaRangePageCount} and all of them inside the header;
 * PFNs must be < 2^53. The reserved word may hold anything.
 * @throws ProtocolError (`gpa_range`, offsets relative to the packet start) on any violation.
 */
export function decodeGpaDirectHeader(extHeader: Uint8Array): GpaRange[] {
  const v = new DataView(extHeader.buffer, extHeader.byteOffset, extHeader.byteLength);
  const len = extHeader.length;
  if (len < 8) gpaError(`extended header of ${len} bytes < 8`, 16);
  const count = v.getUint32(4, true);
  if (count === 0) gpaError('range_cnt is 0', 20);
  // Every range takes at least 8 bytes: bounds the loop before any allocation.
  if (count > (len - 8) / 8) gpaError(`range_cnt ${count} does not fit in a ${len}-byte extended header`, 20);
  const ranges: GpaRange[] = [];
  let o = 8;
  for (let i = 0; i < count; i++) {
    if (o + 8 > len) gpaError(`range ${i} runs past the extended header`, 16 + o);
    const byteCount = v.getUint32(o, true);
    const byteOffset = v.getUint32(o + 4, true);
    const pages = gpaRangePageCount(byteOffset, byteCount);
    o += 8;
    if (pages > (len - o) / 8)
      gpaError(`range ${i} needs ${pages} PFNs past the extended header`, 16 + o - 8);
    const pfns: number[] = [];
    for (let p = 0; p < pages; p++, o += 8) {
      const pfn = getU64(v, o);
      if (pfn < 0) gpaError(`PFN >= 2^53 in range ${i}`, 16 + o);
      pfns.push(pfn);
    }
    ranges.push({ byteCount, byteOffset, pfns });
  }
  return ranges;
}

function gpaError(message: string, offset: number): never {
  throw new ProtocolError(message, { offset, structure: 'gpa_range' });
}
