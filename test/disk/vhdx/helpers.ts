/**
 * Test-side VHDX byte surgery, written from the spec layout ([MS-VHDX] §2.2–§2.6, VHDX v1.00 §2.3) independently
 * of src/disk/vhdx, so tests can build damaged files and synthetic logs without trusting the code under test.
 */

import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { crc32c } from '@node-rs/crc32';

export const MiB = 1024 * 1024;
export const HEADER1 = 64 * 1024;
export const HEADER2 = 128 * 1024;
export const REGION1 = 192 * 1024;
export const REGION2 = 256 * 1024;
export const BAT_GUID_BYTES = Uint8Array.from([
  0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42, 0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08,
]);
export const META_GUID_BYTES = Uint8Array.from([
  0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b, 0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e,
]);

export function readAt(path: string, off: number, len: number): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    const b = new Uint8Array(len);
    readSync(fd, b, 0, len, off);
    return b;
  } finally {
    closeSync(fd);
  }
}

export function writeAt(path: string, off: number, bytes: Uint8Array): void {
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, off);
  } finally {
    closeSync(fd);
  }
}

export function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Recomputes the CRC-32C at byte 4 of the `len`-byte structure at `off`. */
export function reseal(path: string, off: number, len: number): void {
  const b = readAt(path, off, len);
  dv(b).setUint32(4, 0, true);
  dv(b).setUint32(4, crc32c(b) >>> 0, true);
  writeAt(path, off, b);
}

/** Header fields of slot at `off`: SequenceNumber, FileWriteGuid, DataWriteGuid, LogGuid (hex of wire bytes). */
export function headerFields(
  path: string,
  off: number,
): { seq: bigint; fileWrite: string; dataWrite: string; log: string } {
  const b = readAt(path, off, 4096);
  const hex = (o: number) => Buffer.from(b.subarray(o, o + 16)).toString('hex');
  return { seq: dv(b).getBigUint64(8, true), fileWrite: hex(16), dataWrite: hex(32), log: hex(48) };
}

/** The current header's slot offset (larger SequenceNumber). */
export function currentHeader(path: string): number {
  return headerFields(path, HEADER1).seq > headerFields(path, HEADER2).seq ? HEADER1 : HEADER2;
}

/** Region (offset, length) of the BAT or metadata region from region table 1. */
export function region(path: string, guid: Uint8Array): { offset: number; length: number; entryAt: number } {
  const t = readAt(path, REGION1, 64 * 1024);
  const n = dv(t).getUint32(8, true);
  for (let i = 0; i < n; i++) {
    const o = 16 + i * 32;
    if (Buffer.from(t.subarray(o, o + 16)).equals(Buffer.from(guid))) {
      return {
        offset: Number(dv(t).getBigUint64(o + 16, true)),
        length: dv(t).getUint32(o + 24, true),
        entryAt: o,
      };
    }
  }
  throw new Error('region not found');
}

/** Reads BAT entry `i` as [state, fileOffset in bytes]. */
export function batEntry(path: string, i: number): [number, number] {
  const bat = region(path, BAT_GUID_BYTES).offset;
  const v = dv(readAt(path, bat + i * 8, 8)).getBigUint64(0, true);
  return [Number(v & 7n), Number(v >> 20n) * MiB];
}

export function setBatEntry(path: string, i: number, state: number, fileOffset: number): void {
  const bat = region(path, BAT_GUID_BYTES).offset;
  const b = new Uint8Array(8);
  dv(b).setBigUint64(0, (BigInt(fileOffset / MiB) << 20n) | BigInt(state), true);
  writeAt(path, bat + i * 8, b);
}

/** Sets the current header's LogGuid (both headers, kept valid). */
export function setLogGuid(path: string, guid: Uint8Array): void {
  for (const h of [HEADER1, HEADER2]) {
    writeAt(path, h + 48, guid);
    reseal(path, h, 4096);
  }
}

/** A data sector for a synthetic log entry: 4 KiB written at `fileOffset`. */
export interface SpecSector {
  fileOffset: number;
  data: Uint8Array;
}

/**
 * Builds a log entry exactly per VHDX v1.00 §2.3: header (loge, crc, EntryLength, Tail, Seq, DescCount, LogGuid,
 * FlushedFileOffset, LastFileOffset), zero descriptors then data descriptors, then data sectors.
 */
export function specEntry(o: {
  seq: bigint;
  tail: number;
  logGuid: Uint8Array;
  flushed: number;
  last: number;
  sectors?: SpecSector[];
  zeros?: Array<{ fileOffset: number; length: number }>;
  corruptCrc?: boolean;
  badDataSeq?: boolean;
}): Uint8Array {
  const sectors = o.sectors ?? [];
  const zeros = o.zeros ?? [];
  const count = sectors.length + zeros.length;
  const descSectors = Math.ceil((64 + 32 * count) / 4096);
  const len = (descSectors + sectors.length) * 4096;
  const b = new Uint8Array(len);
  const d = dv(b);
  b.set([0x6c, 0x6f, 0x67, 0x65], 0); // 'loge'
  d.setUint32(8, len, true);
  d.setUint32(12, o.tail, true);
  d.setBigUint64(16, o.seq, true);
  d.setUint32(24, count, true);
  b.set(o.logGuid, 32);
  d.setBigUint64(48, BigInt(o.flushed), true);
  d.setBigUint64(56, BigInt(o.last), true);
  let k = 0;
  for (const z of zeros) {
    const at = 64 + 32 * k++;
    b.set([0x7a, 0x65, 0x72, 0x6f], at); // 'zero'
    d.setBigUint64(at + 8, BigInt(z.length), true);
    d.setBigUint64(at + 16, BigInt(z.fileOffset), true);
    d.setBigUint64(at + 24, o.seq, true);
  }
  sectors.forEach((s, i) => {
    const at = 64 + 32 * k++;
    b.set([0x64, 0x65, 0x73, 0x63], at); // 'desc'
    b.set(s.data.subarray(4092, 4096), at + 4);
    b.set(s.data.subarray(0, 8), at + 8);
    d.setBigUint64(at + 16, BigInt(s.fileOffset), true);
    d.setBigUint64(at + 24, o.seq, true);
    const ds = (descSectors + i) * 4096;
    b.set([0x64, 0x61, 0x74, 0x61], ds); // 'data'
    d.setUint32(ds + 4, Number(o.seq >> 32n), true);
    b.set(s.data.subarray(8, 4092), ds + 8);
    d.setUint32(ds + 4092, Number(o.seq & 0xffffffffn) + (o.badDataSeq ? 1 : 0), true);
  });
  d.setUint32(4, crc32c(b) >>> 0, true);
  if (o.corruptCrc) b[100] = (b[100]! + 1) & 0xff;
  return b;
}

/** Writes `entry` into the log (at `logOffset`, `logLength` bytes) at byte `at`, wrapping around its end. */
export function putEntry(
  path: string,
  logOffset: number,
  logLength: number,
  at: number,
  entry: Uint8Array,
): void {
  const first = Math.min(entry.length, logLength - at);
  writeAt(path, logOffset + at, entry.subarray(0, first));
  if (first < entry.length) writeAt(path, logOffset, entry.subarray(first));
}

export function filled(len: number, byte: number): Uint8Array {
  return new Uint8Array(len).fill(byte);
}
