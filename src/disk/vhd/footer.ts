/**
 * VHD hard disk footer (512 bytes, big-endian), its checksum, the CHS geometry algorithm and the rule for
 * which size is the disk. Counterparts: Microsoft "Virtual Hard Disk Image Format Specification" v1.0
 * (Hard Disk Footer Format, Appendix CHS Calculation); QEMU block/vpc.c `VHDFooter`, `calculate_geometry`,
 * `vpc_ignore_current_size`; libvhdi `vhdi_file_footer_t`. Layout (byte offsets):
 *   0 cookie "conectix" · 8 features · 12 format version · 16 data offset (u64) · 24 time stamp
 *   (seconds since 2000-01-01 UTC) · 28 creator application · 32 creator version · 36 creator host OS ·
 *   40 original size (u64) · 48 current size (u64) · 56 cylinders (u16) · 58 heads (u8) ·
 *   59 sectors per track (u8) · 60 disk type · 64 checksum · 68 unique id (16) · 84 saved state · 85 reserved.
 */
import { HvError } from '../../protocol/errors.ts';

export const VHD_FOOTER_SIZE = 512;
export const VHD_SECTOR = 512;
export const VHD_COOKIE = 'conectix';
/** Features bit 1 is reserved and must always be set; bit 0 marks a temporary disk. */
export const VHD_FEATURES_RESERVED = 0x2;
export const VHD_FEATURES_TEMPORARY = 0x1;
export const VHD_FORMAT_VERSION = 0x00010000;
/** Unix time of the VHD epoch 2000-01-01T00:00:00Z. */
export const VHD_EPOCH_UNIX = 946684800;
export const VHD_DISK_TYPE = { NONE: 0, FIXED: 2, DYNAMIC: 3, DIFFERENCING: 4 } as const;
export type VhdDiskType = 2 | 3 | 4;
/** Maximum CHS geometry 65535/16/255 (what QEMU's `force_size` writes). */
export const VHD_CHS_MAX = { cylinders: 65535, heads: 16, sectorsPerTrack: 255 } as const;
export const VHD_MAX_GEOMETRY_SECTORS = 65535 * 16 * 255;
/** 2040 GiB in sectors: the dynamic-disk limit of the spec (QEMU applies it to every type). */
export const VHD_MAX_DYNAMIC_SECTORS = 0xff000000;

export interface ChsGeometry {
  cylinders: number;
  heads: number;
  sectorsPerTrack: number;
}

/** Decoded footer. 64-bit fields are JS numbers (values above 2^53 are rejected as corrupt). */
export interface VhdFooter {
  features: number;
  formatVersion: number;
  /** Offset of the dynamic disk header; `null` when all ones (fixed disks) or 0xFFFFFFFF (spec spelling). */
  dataOffset: number | null;
  /** Seconds since 2000-01-01T00:00:00Z. */
  timestamp: number;
  /** 4 bytes as latin1 text, e.g. `win `, `qemu`, `wa\0\0`. */
  creatorApplication: string;
  creatorVersion: number;
  creatorHostOs: string;
  originalSize: number;
  currentSize: number;
  geometry: ChsGeometry;
  diskType: number;
  checksum: number;
  uniqueId: Uint8Array;
  savedState: number;
}

/** One's complement of the byte sum of `buf[0..len)`, with the 4 bytes at `checksumOffset` counted as zero. */
export function vhdChecksum(buf: Uint8Array, len: number, checksumOffset: number): number {
  let sum = 0;
  for (let i = 0; i < len; i++) if (i < checksumOffset || i >= checksumOffset + 4) sum += buf[i]!;
  return ~sum >>> 0;
}

/** Reads a big-endian u64 as a number; `undefined` when it exceeds 2^53 - 1. */
export function readU64(dv: DataView, off: number): number | undefined {
  const hi = dv.getUint32(off);
  const lo = dv.getUint32(off + 4);
  if (hi > 0x1fffff) return undefined;
  return hi * 0x100000000 + lo;
}

export function writeU64(dv: DataView, off: number, v: number): void {
  dv.setUint32(off, Math.floor(v / 0x100000000));
  dv.setUint32(off + 4, v >>> 0);
}

function latin1(buf: Uint8Array, off: number, len: number): string {
  let s = '';
  for (let i = 0; i < len; i++) s += String.fromCharCode(buf[off + i]!);
  return s;
}

/** True when the first 8 bytes at `off` are the cookie `conectix`. */
export function hasVhdCookie(buf: Uint8Array, off = 0): boolean {
  return buf.length >= off + 8 && latin1(buf, off, 8) === VHD_COOKIE;
}

/**
 * Decodes a footer from the first 512 bytes of `buf` (a 511-byte pre-VPC2004 footer may be passed padded
 * with a zero byte). Checksum validity is reported by {@link footerChecksumOk}, not thrown.
 * @throws HvError HV_ERR_CORRUPT when the cookie is wrong or a 64-bit size does not fit in 2^53.
 */
export function decodeFooter(buf: Uint8Array, where = 'VHD footer'): VhdFooter {
  if (buf.length < VHD_FOOTER_SIZE - 1 || !hasVhdCookie(buf)) {
    throw new HvError('HV_ERR_CORRUPT', `${where}: missing 'conectix' cookie`);
  }
  const b = buf.length >= VHD_FOOTER_SIZE ? buf : padTo512(buf);
  const dv = new DataView(b.buffer, b.byteOffset, VHD_FOOTER_SIZE);
  const hi = dv.getUint32(16);
  const lo = dv.getUint32(20);
  const dataOffset =
    (hi === 0xffffffff && lo === 0xffffffff) || (hi === 0 && lo === 0xffffffff) ? null : readU64(dv, 16);
  const originalSize = readU64(dv, 40);
  const currentSize = readU64(dv, 48);
  if (dataOffset === undefined || originalSize === undefined || currentSize === undefined) {
    throw new HvError(
      'HV_ERR_CORRUPT',
      `${where}: a 64-bit offset or size is absurdly large (over 2^53 bytes)`,
    );
  }
  return {
    features: dv.getUint32(8),
    formatVersion: dv.getUint32(12),
    dataOffset,
    timestamp: dv.getUint32(24),
    creatorApplication: latin1(b, 28, 4),
    creatorVersion: dv.getUint32(32),
    creatorHostOs: latin1(b, 36, 4),
    originalSize,
    currentSize,
    geometry: { cylinders: dv.getUint16(56), heads: b[58]!, sectorsPerTrack: b[59]! },
    diskType: dv.getUint32(60),
    checksum: dv.getUint32(64),
    uniqueId: b.slice(68, 84),
    savedState: b[84]!,
  };
}

function padTo512(buf: Uint8Array): Uint8Array {
  const p = new Uint8Array(VHD_FOOTER_SIZE);
  p.set(buf.subarray(0, VHD_FOOTER_SIZE));
  return p;
}

/** True when the stored checksum matches the bytes (the 511-byte form sums 511 bytes). */
export function footerChecksumOk(buf: Uint8Array, len = VHD_FOOTER_SIZE): boolean {
  const dv = new DataView(buf.buffer, buf.byteOffset, 68);
  return vhdChecksum(buf, len, 64) === dv.getUint32(64);
}

/** Encodes a footer into 512 bytes with a fresh checksum (the `checksum` field is ignored). */
export function encodeFooter(f: VhdFooter): Uint8Array {
  const b = new Uint8Array(VHD_FOOTER_SIZE);
  const dv = new DataView(b.buffer);
  for (let i = 0; i < 8; i++) b[i] = VHD_COOKIE.charCodeAt(i);
  dv.setUint32(8, f.features);
  dv.setUint32(12, f.formatVersion);
  if (f.dataOffset === null) {
    dv.setUint32(16, 0xffffffff);
    dv.setUint32(20, 0xffffffff);
  } else writeU64(dv, 16, f.dataOffset);
  dv.setUint32(24, f.timestamp >>> 0);
  for (let i = 0; i < 4; i++) b[28 + i] = f.creatorApplication.charCodeAt(i) & 0xff;
  dv.setUint32(32, f.creatorVersion);
  for (let i = 0; i < 4; i++) b[36 + i] = f.creatorHostOs.charCodeAt(i) & 0xff;
  writeU64(dv, 40, f.originalSize);
  writeU64(dv, 48, f.currentSize);
  dv.setUint16(56, f.geometry.cylinders);
  b[58] = f.geometry.heads;
  b[59] = f.geometry.sectorsPerTrack;
  dv.setUint32(60, f.diskType);
  b.set(f.uniqueId.subarray(0, 16), 68);
  b[84] = f.savedState;
  dv.setUint32(64, vhdChecksum(b, VHD_FOOTER_SIZE, 64));
  return b;
}

/**
 * The spec's CHS algorithm (Appendix: CHS Calculation), rounding down: C·H·S ≤ totalSectors, clamped to
 * 65535/16/255. Same result as QEMU's `calculate_geometry`.
 */
export function chsGeometry(totalSectors: number): ChsGeometry {
  const t = Math.min(totalSectors, VHD_MAX_GEOMETRY_SECTORS);
  let s: number;
  let h: number;
  let ch: number;
  if (t >= 65535 * 16 * 63) {
    s = 255;
    h = 16;
    ch = Math.floor(t / s);
  } else {
    s = 17;
    ch = Math.floor(t / s);
    h = Math.max(4, Math.ceil(ch / 1024));
    if (ch >= h * 1024 || h > 16) {
      s = 31;
      h = 16;
      ch = Math.floor(t / s);
    }
    if (ch >= h * 1024) {
      s = 63;
      h = 16;
      ch = Math.floor(t / s);
    }
  }
  return { cylinders: Math.floor(ch / h), heads: h, sectorsPerTrack: s };
}

export function chsSectors(g: ChsGeometry): number {
  return g.cylinders * g.heads * g.sectorsPerTrack;
}

/** How a new VHD's size and geometry are chosen. */
export type VhdSizeRule =
  /** Hyper-V: CurrentSize = the requested size exactly; geometry from the spec algorithm (rounded down). */
  | 'exact'
  /** Virtual PC / QEMU default: round the size up until C·H·S·512 equals it (max geometry keeps the size). */
  | 'chs'
  /** QEMU `force_size=on`: exact size, geometry 65535/16/255. */
  | 'max-geometry';

/**
 * Size (bytes) and geometry a new image gets for `requested` bytes (a multiple of 512) under `rule`.
 * `chs` follows QEMU's `calculate_rounded_image_size` search (T, T+1, ... until C·H·S ≥ T).
 */
export function sizeForCreate(requested: number, rule: VhdSizeRule): { size: number; geometry: ChsGeometry } {
  const t = Math.floor(requested / VHD_SECTOR);
  if (rule === 'max-geometry') return { size: requested, geometry: { ...VHD_CHS_MAX } };
  if (rule === 'exact') return { size: requested, geometry: chsGeometry(t) };
  const capped = Math.min(t, VHD_MAX_GEOMETRY_SECTORS);
  let g: ChsGeometry = { cylinders: 0, heads: 0, sectorsPerTrack: 0 };
  for (let i = 0; capped > chsSectors(g); i++) g = chsGeometry(capped + i);
  if (chsSectors(g) === VHD_MAX_GEOMETRY_SECTORS) return { size: requested, geometry: g };
  return { size: chsSectors(g) * VHD_SECTOR, geometry: g };
}

/** Which size field the disk's visible size comes from; `auto` is the creator table below. */
export type VhdSizeCalc = 'auto' | 'chs' | 'current-size';

/**
 * The disk's visible size in bytes. `auto`: CHS for creators `vpc ` (Virtual PC) and `qemu` (QEMU's
 * default writer, whose CurrentSize equals the CHS size anyway), CurrentSize for everyone else (Hyper-V
 * `win `, Disk2vhd `d2v`, `qem2`, XenServer `tap\0`, `CTXS`, Azure `wa\0\0`, mkimg `*img`) — the 2025
 * QEMU rule. Maximum geometry always means CurrentSize.
 */
export function visibleSize(f: VhdFooter, calc: VhdSizeCalc = 'auto'): number {
  const chs = chsSectors(f.geometry);
  if (calc === 'current-size' || chs === VHD_MAX_GEOMETRY_SECTORS) return f.currentSize;
  const useChs = calc === 'chs' || f.creatorApplication === 'vpc ' || f.creatorApplication === 'qemu';
  return useChs ? chs * VHD_SECTOR : f.currentSize;
}

/** VHD timestamp (seconds since 2000) for a JS time in ms. */
export function vhdTimestamp(ms: number = Date.now()): number {
  return Math.max(0, Math.floor(ms / 1000) - VHD_EPOCH_UNIX) >>> 0;
}

/** Formats a unique id as an RFC 4122 UUID string, bytes in stored (big-endian) order, as libvhdi does. */
export function uuidString(id: Uint8Array): string {
  const h = Array.from(id.subarray(0, 16), (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A random version-4 UUID as 16 bytes. */
export function randomUniqueId(): Uint8Array {
  const hex = crypto.randomUUID().replace(/-/g, '');
  const b = new Uint8Array(16);
  for (let i = 0; i < 16; i++) b[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return b;
}
