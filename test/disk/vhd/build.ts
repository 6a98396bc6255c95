/**
 * Test-side VHD builder written from the spec layout (Microsoft "Virtual Hard Disk Image Format Specification"
 * v1.0: Hard Disk Footer, Dynamic Disk Header, BAT, data blocks), independently of src/disk/vhd, so tests can
 * make foreign images — unusual offsets, out-of-order blocks, odd creators, 511-byte footers — without
 * trusting the code under test. All fields big-endian.
 */
import * as fs from 'node:fs';

export const SECTOR = 512;

/** One's complement of the byte sum with the 4 checksum bytes at `at` counted as zero (spec "Checksum"). */
function seal(b: Uint8Array, at: number): void {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  dv.setUint32(at, 0);
  let sum = 0;
  for (const x of b) sum += x;
  dv.setUint32(at, ~sum >>> 0);
}

function ascii(b: Uint8Array, at: number, s: string): void {
  for (let i = 0; i < s.length; i++) b[at + i] = s.charCodeAt(i);
}

export interface FooterSpec {
  /** 2 fixed, 3 dynamic, 4 differencing. */
  diskType: number;
  currentSize: number;
  originalSize?: number;
  /** Cylinders / heads / sectors per track. */
  chs: [number, number, number];
  /** 4 characters, e.g. `win `, `wa\0\0`, `*img`. */
  creator?: string;
  creatorVersion?: number;
  /** Offset of the dynamic header; fixed disks get all ones. */
  dataOffset?: number;
  savedState?: number;
  uniqueId?: Uint8Array;
}

/** 512-byte hard disk footer: cookie@0, features@8 (=2), version@12 (=0x10000), data offset@16, time@24,
 * creator@28, creator version@32, host OS@36, original size@40, current size@48, CHS@56/58/59, type@60,
 * checksum@64, unique id@68, saved state@84. */
export function footer(f: FooterSpec): Uint8Array {
  const b = new Uint8Array(SECTOR);
  const dv = new DataView(b.buffer);
  ascii(b, 0, 'conectix');
  dv.setUint32(8, 2);
  dv.setUint32(12, 0x00010000);
  if (f.dataOffset === undefined) {
    dv.setUint32(16, 0xffffffff);
    dv.setUint32(20, 0xffffffff);
  } else dv.setBigUint64(16, BigInt(f.dataOffset));
  dv.setUint32(24, 0x2eb1b6e6);
  ascii(b, 28, f.creator ?? 'win ');
  dv.setUint32(32, f.creatorVersion ?? 0x000a0000);
  ascii(b, 36, 'Wi2k');
  dv.setBigUint64(40, BigInt(f.originalSize ?? f.currentSize));
  dv.setBigUint64(48, BigInt(f.currentSize));
  dv.setUint16(56, f.chs[0]);
  b[58] = f.chs[1];
  b[59] = f.chs[2];
  dv.setUint32(60, f.diskType);
  b.set(f.uniqueId ?? Uint8Array.from({ length: 16 }, (_, i) => 0x10 + i), 68);
  b[84] = f.savedState ?? 0;
  seal(b, 64);
  return b;
}

/** 1024-byte dynamic disk header: cookie `cxsparse`@0, data offset@8 (all ones), table offset@16, version@24,
 * max table entries@28, block size@32, checksum@36. */
export function dynamicHeader(tableOffset: number, maxTableEntries: number, blockSize: number): Uint8Array {
  const b = new Uint8Array(1024);
  const dv = new DataView(b.buffer);
  ascii(b, 0, 'cxsparse');
  dv.setUint32(8, 0xffffffff);
  dv.setUint32(12, 0xffffffff);
  dv.setBigUint64(16, BigInt(tableOffset));
  dv.setUint32(24, 0x00010000);
  dv.setUint32(28, maxTableEntries);
  dv.setUint32(32, blockSize);
  seal(b, 36);
  return b;
}

/** Sector bitmap bytes of a block: ceil(sectors / 8) rounded up to a whole sector (spec "Data blocks"). */
export function bitmapSize(blockSize: number): number {
  return Math.ceil(blockSize / SECTOR / 8 / SECTOR) * SECTOR;
}

export interface DynamicSpec {
  size: number;
  blockSize: number;
  /** Footer DataOffset = where the dynamic header goes (spec: usually 512). */
  headerOffset?: number;
  tableOffset?: number;
  /** BAT entries; default ceil(size / blockSize). */
  maxTableEntries?: number;
  creator?: string;
  chs?: [number, number, number];
  /** Allocated blocks: virtual block index, byte offset in the file (sector multiple), contents. */
  blocks: { index: number; at: number; data: Uint8Array; bitmap?: Uint8Array }[];
  /** Where the trailing footer goes; default right after the last structure. */
  footerAt?: number;
  /** Write only the first 511 bytes of the trailing footer (pre-Virtual PC 2004). */
  footer511?: boolean;
}

/** Writes a dynamic VHD laid out exactly as `s` says. Unwritten gaps are holes (zeros). Returns the file size. */
export function writeDynamic(path: string, s: DynamicSpec): number {
  const headerOffset = s.headerOffset ?? SECTOR;
  const tableOffset = s.tableOffset ?? headerOffset + 1024;
  const entries = s.maxTableEntries ?? Math.ceil(s.size / s.blockSize);
  const bm = bitmapSize(s.blockSize);
  const f = footer({
    diskType: 3,
    currentSize: s.size,
    chs: s.chs ?? [65535, 16, 255],
    creator: s.creator ?? 'win ',
    dataOffset: headerOffset,
  });
  const bat = new Uint8Array(Math.ceil((entries * 4) / SECTOR) * SECTOR).fill(0xff);
  const bdv = new DataView(bat.buffer);
  let end = Math.max(tableOffset + bat.length, headerOffset + 1024);
  const fd = fs.openSync(path, 'w');
  try {
    fs.writeSync(fd, f, 0, SECTOR, 0);
    fs.writeSync(fd, dynamicHeader(tableOffset, entries, s.blockSize), 0, 1024, headerOffset);
    for (const b of s.blocks) {
      bdv.setUint32(b.index * 4, b.at / SECTOR);
      const bitmap = b.bitmap ?? new Uint8Array(bm).fill(0xff);
      fs.writeSync(fd, bitmap, 0, bitmap.length, b.at);
      fs.writeSync(fd, b.data, 0, b.data.length, b.at + bm);
      end = Math.max(end, b.at + bm + s.blockSize);
    }
    fs.writeSync(fd, bat, 0, bat.length, tableOffset);
    const at = s.footerAt ?? end;
    fs.writeSync(fd, f, 0, s.footer511 ? SECTOR - 1 : SECTOR, at);
    fs.ftruncateSync(fd, at + (s.footer511 ? SECTOR - 1 : SECTOR));
    return at + SECTOR;
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes a fixed VHD: `data` (or a hole) for `size` bytes, then the footer (511 or 512 bytes). */
export function writeFixed(
  path: string,
  f: Omit<FooterSpec, 'diskType'>,
  data: { at: number; bytes: Uint8Array }[],
  footer511 = false,
): void {
  const fd = fs.openSync(path, 'w');
  try {
    for (const d of data) fs.writeSync(fd, d.bytes, 0, d.bytes.length, d.at);
    const fb = footer({ ...f, diskType: 2 });
    fs.writeSync(fd, fb, 0, footer511 ? SECTOR - 1 : SECTOR, f.currentSize);
    fs.ftruncateSync(fd, f.currentSize + (footer511 ? SECTOR - 1 : SECTOR));
  } finally {
    fs.closeSync(fd);
  }
}

/** Deterministic non-zero pattern: byte i of `n` is derived from `seed` and i, never 0. */
export function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = ((i * 31 + seed * 17) % 255) + 1;
  return b;
}
