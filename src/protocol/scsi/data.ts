/**
 * Data-in structures a disk returns (SPC-4/SBC-3 layouts, big-endian), with the values OpenVMM's
 * scsidisk (inquiry.rs, lib.rs) fills in for a Hyper-V virtual disk (reference devices.md B.10):
 * standard INQUIRY data, VPD pages 0x00/0x83/0xB0/0xB1/0xB2/0xCE/0xCF, READ CAPACITY(10)/(16) data,
 * REPORT LUNS data and the MODE SENSE caching page. Encoders write into a caller buffer and return the full
 * length (the caller truncates to the allocation length); decoders are total.
 */
import { ProtocolError } from '../errors.ts';
import * as op from './constants.ts';

/** Standard INQUIRY data length OpenVMM returns (its 96-byte template). */
export const STANDARD_INQUIRY_SIZE = 96;
/** Vendor / product / revision of a Hyper-V virtual disk (space padded, 8/16/4 bytes). */
export const MSFT_VENDOR = 'Msft    ';
export const MSFT_VIRTUAL_DISK_PRODUCT = 'Virtual Disk    ';
export const MSFT_REVISION = '1.0 ';
/** Signature GUID in VPD 0xCF (OpenVMM `VPD_MSFT_VIRTUAL_DEVICE_PROPERTIES` signature), wire bytes. */
export const MSFT_VDP_SIGNATURE = '89a98f15-c928-4d8b-94cd-ef51faa99d33';

function ascii(out: Uint8Array, at: number, text: string, len: number): void {
  for (let i = 0; i < len; i++) out[at + i] = i < text.length ? text.charCodeAt(i) & 0x7f : 0x20;
}

function readAscii(b: Uint8Array, at: number, len: number): string {
  let s = '';
  for (let i = 0; i < len && at + i < b.length; i++) s += String.fromCharCode(b[at + i]!);
  return s;
}

/** Standard INQUIRY data (SPC-4 §6.6.2): peripheral byte, version, flags, vendor/product/revision. */
export interface StandardInquiry {
  /** Peripheral qualifier << 5 | device type (0x00 disk, 0x7F no LUN). */
  peripheral: number;
  removable: boolean;
  /** SPC version byte (5 = SPC-3). */
  version: number;
  vendor: string;
  product: string;
  revision: string;
}

/** Writes standard INQUIRY data (96 bytes); returns 96. */
export function encodeStandardInquiry(out: Uint8Array, d: StandardInquiry): number {
  out.fill(0, 0, STANDARD_INQUIRY_SIZE);
  out[0] = d.peripheral;
  out[1] = d.removable ? 0x80 : 0;
  out[2] = d.version;
  out[3] = 0x02; // response data format 2
  out[4] = STANDARD_INQUIRY_SIZE - 5;
  out[7] = 0x02; // CmdQue
  ascii(out, 8, d.vendor, 8);
  ascii(out, 16, d.product, 16);
  ascii(out, 32, d.revision, 4);
  return STANDARD_INQUIRY_SIZE;
}

/** @throws ProtocolError when shorter than 36 bytes (the mandatory part). */
export function decodeStandardInquiry(b: Uint8Array): StandardInquiry {
  if (b.length < 36)
    throw new ProtocolError(`INQUIRY data of ${b.length} bytes < 36`, {
      offset: 0,
      structure: 'inquiry_data',
    });
  return {
    peripheral: b[0]!,
    removable: (b[1]! & 0x80) !== 0,
    version: b[2]!,
    vendor: readAscii(b, 8, 8),
    product: readAscii(b, 16, 16),
    revision: readAscii(b, 32, 4),
  };
}

/** What a disk's VPD pages describe. */
export interface DiskVpd {
  /** 16-byte disk identifier (VHDX page-83 data / VHD unique id), wire order. */
  diskId: Uint8Array;
  unmap: boolean;
  /** Max transfer, blocks (for max write same length). */
  maxTransferBlocks: number;
  /** Logical blocks per physical block, log2 (0 for 512e=false). */
  optimalUnmapGranularityBlocks: number;
}

/** VPD pages this disk answers, ascending (0x00, 0x83, [0xB0, 0xB1, 0xB2 with unmap], 0xCE, 0xCF). */
export function supportedVpdPages(unmap: boolean): number[] {
  return unmap
    ? [
        op.VPD_SUPPORTED_PAGES,
        op.VPD_DEVICE_IDENTIFIERS,
        op.VPD_BLOCK_LIMITS,
        op.VPD_BLOCK_DEVICE_CHARACTERISTICS,
        op.VPD_LOGICAL_BLOCK_PROVISIONING,
        op.VPD_MSFT_PAGING_EXTENT_PROPERTIES,
        op.VPD_MSFT_VIRTUAL_DEVICE_PROPERTIES,
      ]
    : [
        op.VPD_SUPPORTED_PAGES,
        op.VPD_DEVICE_IDENTIFIERS,
        op.VPD_MSFT_PAGING_EXTENT_PROPERTIES,
        op.VPD_MSFT_VIRTUAL_DEVICE_PROPERTIES,
      ];
}

/**
 * Writes VPD page `page` into `out` (≥ 256 bytes); returns its length, or -1 if the page is not supported
 * (the host then answers ILLEGAL REQUEST / INVALID FIELD IN CDB). Header: peripheral, page code, u16 length.
 */
export function encodeVpdPage(out: Uint8Array, page: number, d: DiskVpd): number {
  const pages = supportedVpdPages(d.unmap);
  if (!pages.includes(page)) return -1;
  out.fill(0, 0, 256);
  out[0] = op.TYPE_DISK;
  out[1] = page;
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let len = 0;
  switch (page) {
    case op.VPD_SUPPORTED_PAGES:
      out.set(pages, 4);
      len = pages.length;
      break;
    case op.VPD_DEVICE_IDENTIFIERS: {
      // T10 vendor id descriptor as OpenVMM builds it: code set 1 (binary), association 0, type 1.
      out[4] = 0x01;
      out[5] = 0x01;
      out[7] = 24;
      ascii(out, 8, MSFT_VENDOR, 8);
      out.set(d.diskId.subarray(0, 16), 16);
      // NAA IEEE Registered Extended (type 3, NAA 6) with Microsoft's OUI 00-22-48 and bits of the disk id.
      out[32] = 0x01;
      out[33] = 0x03;
      out[35] = 16;
      out.set([0x60, 0x02, 0x24, 0x80], 36);
      out.set(d.diskId.subarray(4, 16), 40);
      len = 48;
      break;
    }
    case op.VPD_BLOCK_LIMITS:
      len = 0x3c;
      v.setUint32(8, Math.min(d.maxTransferBlocks, 0xffffffff)); // maximum transfer length
      v.setUint32(20, 0xffffffff); // maximum unmap LBA count
      v.setUint32(24, 4096); // maximum unmap block descriptor count
      v.setUint32(28, Math.max(1, d.optimalUnmapGranularityBlocks)); // optimal unmap granularity
      v.setUint32(32, 0x80000000); // UGAVALID, alignment 0
      v.setUint32(36, 0);
      v.setUint32(40, Math.min(d.maxTransferBlocks, 0xffffffff)); // maximum write same length (low half)
      break;
    case op.VPD_BLOCK_DEVICE_CHARACTERISTICS:
      len = 0x3c;
      v.setUint16(4, 1); // medium rotation rate: non-rotating
      break;
    case op.VPD_LOGICAL_BLOCK_PROVISIONING:
      len = 4;
      out[5] = d.unmap ? 0x80 : 0; // LBPU
      out[6] = 0x02; // provisioning type: thin
      break;
    case op.VPD_MSFT_PAGING_EXTENT_PROPERTIES:
      len = 4;
      out[4] = 1; // version
      out[5] = 1; // mode select extension
      break;
    case op.VPD_MSFT_VIRTUAL_DEVICE_PROPERTIES: {
      len = 24;
      out[4] = 1; // version
      const g = MSFT_VDP_SIGNATURE.replace(/-/g, '');
      const b = (i: number) => Number.parseInt(g.slice(2 * i, 2 * i + 2), 16);
      // GUID in wire (mixed-endian) order.
      out.set([b(3), b(2), b(1), b(0), b(5), b(4), b(7), b(6)], 12);
      for (let i = 8; i < 16; i++) out[12 + i] = b(i);
      break;
    }
  }
  v.setUint16(2, len);
  return 4 + len;
}

/** VPD page header + list of supported pages. @throws ProtocolError when shorter than its header claims. */
export function decodeVpdHeader(b: Uint8Array): { page: number; length: number; body: Uint8Array } {
  if (b.length < 4) throw new ProtocolError('VPD page < 4 bytes', { offset: 0, structure: 'vpd_page' });
  const length = (b[2]! << 8) | b[3]!;
  return { page: b[1]!, length, body: b.subarray(4, Math.min(b.length, 4 + length)) };
}

/** READ CAPACITY(10) data: last LBA (clamped to 0xFFFFFFFF) u32 BE, block length u32 BE. */
export function encodeReadCapacity10(out: Uint8Array, lastLba: number, blockBytes: number): number {
  const v = new DataView(out.buffer, out.byteOffset, 8);
  v.setUint32(0, Math.min(lastLba, 0xffffffff));
  v.setUint32(4, blockBytes);
  return 8;
}

/** READ CAPACITY(16) data (32 bytes): last LBA u64, block length u32, exponent byte 13, LBPME 0x80 @14. */
export interface Capacity16 {
  lastLba: number;
  blockBytes: number;
  /** log2(physical / logical block size). */
  logicalPerPhysicalExponent: number;
  lbpme: boolean;
}

export function encodeReadCapacity16(out: Uint8Array, c: Capacity16): number {
  out.fill(0, 0, 32);
  const v = new DataView(out.buffer, out.byteOffset, 32);
  v.setUint32(0, Math.floor(c.lastLba / 0x100000000));
  v.setUint32(4, c.lastLba >>> 0);
  v.setUint32(8, c.blockBytes);
  out[13] = c.logicalPerPhysicalExponent & 0x0f;
  out[14] = c.lbpme ? 0x80 : 0;
  return 32;
}

/** @throws ProtocolError when shorter than 15 bytes or the LBA is ≥ 2^53. */
export function decodeReadCapacity16(b: Uint8Array): Capacity16 {
  if (b.length < 15)
    throw new ProtocolError(`READ CAPACITY(16) data of ${b.length} bytes < 15`, {
      offset: 0,
      structure: 'read_capacity16_data',
    });
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const hi = v.getUint32(0);
  if (hi >= 0x200000)
    throw new ProtocolError('last LBA >= 2^53', { offset: 0, structure: 'read_capacity16_data' });
  return {
    lastLba: hi * 0x100000000 + v.getUint32(4),
    blockBytes: v.getUint32(8),
    logicalPerPhysicalExponent: b[13]! & 0x0f,
    lbpme: (b[14]! & 0x80) !== 0,
  };
}

/** REPORT LUNS data: list length u32 BE, 4 reserved, then 8-byte entries with the LUN in bytes 0..1 BE. */
export function encodeReportLuns(out: Uint8Array, luns: readonly number[]): number {
  const n = 8 + 8 * luns.length;
  out.fill(0, 0, Math.min(n, out.length));
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  v.setUint32(0, 8 * luns.length);
  luns.forEach((l, i) => {
    if (16 + 8 * i <= out.length) v.setUint16(8 + 8 * i, l & 0x3fff);
  });
  return n;
}

/** LUNs in REPORT LUNS data (peripheral addressing, first level only), capped by the bytes present. */
export function decodeReportLuns(b: Uint8Array): number[] {
  if (b.length < 8)
    throw new ProtocolError('REPORT LUNS data < 8 bytes', { offset: 0, structure: 'report_luns_data' });
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const n = Math.floor(Math.min(v.getUint32(0), b.length - 8) / 8);
  const luns: number[] = [];
  for (let i = 0; i < n; i++) luns.push(v.getUint16(8 + 8 * i) & 0x3fff);
  return luns;
}

/**
 * MODE SENSE(6)/(10) reply with the caching page (0x08, 20 bytes) and no block descriptors. Device-specific
 * parameter: 0x80 write protect, 0x10 DPO/FUA supported. `ten`: 8-byte header of MODE SENSE(10).
 */
export function encodeModeSenseCaching(
  out: Uint8Array,
  ten: boolean,
  writeProtect: boolean,
  writeCache: boolean,
): number {
  const hdr = ten ? 8 : 4;
  const total = hdr + 20;
  out.fill(0, 0, total);
  const dsp = (writeProtect ? 0x80 : 0) | 0x10;
  if (ten) {
    out[0] = 0;
    out[1] = total - 2;
    out[3] = dsp;
  } else {
    out[0] = total - 1;
    out[2] = dsp;
  }
  out[hdr] = op.MODE_PAGE_CACHING;
  out[hdr + 1] = 18;
  out[hdr + 2] = writeCache ? 0x04 : 0; // WCE
  return total;
}
