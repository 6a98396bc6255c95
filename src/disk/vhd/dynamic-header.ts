/**
 * VHD dynamic disk header (1024 bytes, big-endian) with its eight parent locator entries.
 * Counterparts: VHD spec v1.0 "Dynamic Disk Header Format"; QEMU block/vpc.c `VHDDynDiskHeader`;
 * libvhdi `vhdi_dynamic_disk_header_t`. Layout (byte offsets):
 *   0 cookie "cxsparse" · 8 data offset (u64, all ones) · 16 table offset (u64) · 24 header version ·
 *   28 max table entries · 32 block size (bytes) · 36 checksum · 40 parent unique id (16) ·
 *   56 parent time stamp · 60 reserved · 64 parent unicode name (512 bytes UTF-16BE) ·
 *   576 parent locator entries 8 × 24 · 768 reserved (256).
 * Parent locator entry (24 bytes): 0 platform code · 4 platform data space · 8 platform data length ·
 *   12 reserved · 16 platform data offset (u64).
 */
import { HvError } from '../../protocol/errors.ts';
import { readU64, vhdChecksum, writeU64 } from './footer.ts';

export const VHD_DYN_HEADER_SIZE = 1024;
export const VHD_DYN_COOKIE = 'cxsparse';
export const VHD_DYN_HEADER_VERSION = 0x00010000;
export const VHD_BAT_UNUSED = 0xffffffff;
export const VHD_PARENT_NAME_BYTES = 512;
/** Platform codes of parent locators. W2ku/W2ru data is UTF-16LE (VirtualBox VHD.cpp, Xen libvhd.h). */
export const PLAT_CODE = {
  NONE: 0,
  WI2R: 0x57693272, // 'Wi2r' deprecated relative ANSI
  WI2K: 0x5769326b, // 'Wi2k' deprecated absolute ANSI
  W2RU: 0x57327275, // 'W2ru' relative UTF-16
  W2KU: 0x57326b75, // 'W2ku' absolute UTF-16
  MAC: 0x4d616320, // 'Mac '
  MACX: 0x4d616358, // 'MacX' file URL, UTF-8
} as const;

export interface ParentLocator {
  platformCode: number;
  /** As stored: sectors per spec, bytes for Microsoft writers (see {@link locatorSpaceBytes}). */
  platformDataSpace: number;
  platformDataLength: number;
  platformDataOffset: number;
}

export interface VhdDynamicHeader {
  tableOffset: number;
  headerVersion: number;
  maxTableEntries: number;
  blockSize: number;
  checksum: number;
  parentUniqueId: Uint8Array;
  parentTimestamp: number;
  /** Parent Unicode Name decoded from UTF-16BE up to the first NUL. */
  parentName: string;
  locators: ParentLocator[];
}

/**
 * Decodes the 1024-byte header. Checksum validity is checked by {@link dynHeaderChecksumOk}.
 * @throws HvError HV_ERR_CORRUPT on a wrong cookie or a table/locator offset beyond 2^53.
 */
export function decodeDynamicHeader(buf: Uint8Array): VhdDynamicHeader {
  if (buf.length < VHD_DYN_HEADER_SIZE)
    throw new HvError('HV_ERR_CORRUPT', 'VHD dynamic disk header: shorter than 1024 bytes');
  for (let i = 0; i < 8; i++) {
    if (buf[i] !== VHD_DYN_COOKIE.charCodeAt(i))
      throw new HvError('HV_ERR_CORRUPT', "VHD dynamic disk header: missing 'cxsparse' cookie");
  }
  const dv = new DataView(buf.buffer, buf.byteOffset, VHD_DYN_HEADER_SIZE);
  const tableOffset = readU64(dv, 16);
  if (tableOffset === undefined)
    throw new HvError('HV_ERR_CORRUPT', 'VHD dynamic disk header: BAT offset is absurdly large');
  let parentName = '';
  for (let i = 0; i < VHD_PARENT_NAME_BYTES; i += 2) {
    const c = dv.getUint16(64 + i);
    if (c === 0) break;
    parentName += String.fromCharCode(c);
  }
  const locators: ParentLocator[] = [];
  for (let i = 0; i < 8; i++) {
    const o = 576 + i * 24;
    const platformDataOffset = readU64(dv, o + 16);
    if (platformDataOffset === undefined)
      throw new HvError('HV_ERR_CORRUPT', `VHD parent locator ${i}: data offset is absurdly large`);
    locators.push({
      platformCode: dv.getUint32(o),
      platformDataSpace: dv.getUint32(o + 4),
      platformDataLength: dv.getUint32(o + 8),
      platformDataOffset,
    });
  }
  return {
    tableOffset,
    headerVersion: dv.getUint32(24),
    maxTableEntries: dv.getUint32(28),
    blockSize: dv.getUint32(32),
    checksum: dv.getUint32(36),
    parentUniqueId: buf.slice(40, 56),
    parentTimestamp: dv.getUint32(56),
    parentName,
    locators,
  };
}

export function dynHeaderChecksumOk(buf: Uint8Array): boolean {
  return (
    vhdChecksum(buf, VHD_DYN_HEADER_SIZE, 36) === new DataView(buf.buffer, buf.byteOffset, 40).getUint32(36)
  );
}

/** Encodes the header with a fresh checksum. Parent names longer than 256 UTF-16 units are refused. */
export function encodeDynamicHeader(h: VhdDynamicHeader): Uint8Array {
  const b = new Uint8Array(VHD_DYN_HEADER_SIZE);
  const dv = new DataView(b.buffer);
  for (let i = 0; i < 8; i++) b[i] = VHD_DYN_COOKIE.charCodeAt(i);
  dv.setUint32(8, 0xffffffff);
  dv.setUint32(12, 0xffffffff);
  writeU64(dv, 16, h.tableOffset);
  dv.setUint32(24, h.headerVersion);
  dv.setUint32(28, h.maxTableEntries);
  dv.setUint32(32, h.blockSize);
  b.set(h.parentUniqueId.subarray(0, 16), 40);
  dv.setUint32(56, h.parentTimestamp >>> 0);
  if (h.parentName.length > VHD_PARENT_NAME_BYTES / 2) {
    throw new HvError(
      'HV_ERR_INVALID_ARGUMENT',
      `parent name is ${h.parentName.length} UTF-16 units; a VHD holds at most 256`,
    );
  }
  for (let i = 0; i < h.parentName.length; i++) dv.setUint16(64 + i * 2, h.parentName.charCodeAt(i));
  h.locators.slice(0, 8).forEach((l, i) => {
    const o = 576 + i * 24;
    dv.setUint32(o, l.platformCode);
    dv.setUint32(o + 4, l.platformDataSpace);
    dv.setUint32(o + 8, l.platformDataLength);
    writeU64(dv, o + 16, l.platformDataOffset);
  });
  dv.setUint32(36, vhdChecksum(b, VHD_DYN_HEADER_SIZE, 36));
  return b;
}

/**
 * Bytes reserved for a locator's data. The spec counts sectors, Microsoft writers store bytes: values
 * below 512 are sectors, larger ones bytes (Xen blktap's MICROSOFT_COMPAT rule).
 */
export function locatorSpaceBytes(l: ParentLocator): number {
  return l.platformDataSpace < 512 ? l.platformDataSpace * 512 : l.platformDataSpace;
}

/** Decodes UTF-16LE locator data (W2ku/W2ru), stopping at a NUL. */
export function decodeUtf16le(buf: Uint8Array): string {
  let s = '';
  for (let i = 0; i + 1 < buf.length; i += 2) {
    const c = buf[i]! | (buf[i + 1]! << 8);
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

export function encodeUtf16le(s: string): Uint8Array {
  const b = new Uint8Array(s.length * 2);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    b[i * 2] = c & 0xff;
    b[i * 2 + 1] = c >> 8;
  }
  return b;
}

/** Bitmap bytes in front of each data block: one bit per sector, MSB first, padded to 512 bytes. */
export function bitmapBytes(blockSize: number): number {
  return Math.ceil(blockSize / 512 / 8 / 512) * 512;
}
