/**
 * VHDX on-disk constants and the fixed-size structures of the header section: file type identifier, the two
 * headers and the two region tables. All integers little-endian, GUIDs in Windows mixed-endian form.
 * Source: [MS-VHDX] §2.2 (header section), §2.2.2 (headers), §2.2.3 (region table); QEMU block/vhdx.h
 * (`VHDXFileIdentifier`, `VHDXHeader`, `VHDXRegionTableHeader`, `VHDXRegionTableEntry`).
 * Decoders are total: any bytes give a value or `HvError('HV_ERR_CORRUPT')`.
 */
import { crc32c } from '@node-rs/crc32';
import { HvError } from '../../protocol/errors.ts';
import { Guid } from '../../protocol/guid.ts';

export const KiB = 1024;
export const MiB = 1024 * 1024;
/** Largest virtual disk size, 64 TiB [MS-VHDX] §1.5. */
export const VHDX_MAX_DISK_SIZE = 64 * 1024 * 1024 * MiB;
export const VHDX_MIN_BLOCK_SIZE = MiB;
export const VHDX_MAX_BLOCK_SIZE = 256 * MiB;

/** Byte offsets of the header-section items (each 64 KiB) [MS-VHDX] §2.2. */
export const VHDX_FILE_ID_OFFSET = 0;
export const VHDX_HEADER1_OFFSET = 64 * KiB;
export const VHDX_HEADER2_OFFSET = 128 * KiB;
export const VHDX_REGION_TABLE1_OFFSET = 192 * KiB;
export const VHDX_REGION_TABLE2_OFFSET = 256 * KiB;
export const VHDX_HEADER_SECTION_SIZE = MiB;
/** The header structure is 4 KiB; its CRC covers all of it. */
export const VHDX_HEADER_SIZE = 4 * KiB;
/** A region table is 64 KiB; its CRC covers all of it. */
export const VHDX_REGION_TABLE_SIZE = 64 * KiB;
export const VHDX_REGION_ENTRY_MAX = 2047;

/** Signatures as the little-endian u32/u64 reading of their ASCII bytes. */
export const VHDX_FILE_SIGNATURE = 'vhdxfile';
export const VHDX_HEADER_SIGNATURE = 0x64616568; // 'head'
export const VHDX_REGION_SIGNATURE = 0x69676572; // 'regi'

export const VHDX_BAT_REGION_GUID = Guid.parse('2DC27766-F623-4200-9D64-115E9BFD4A08');
export const VHDX_METADATA_REGION_GUID = Guid.parse('8B7CA206-4790-4B9A-B8FE-575F050F886E');

/** Payload block states, BAT entry bits 0–2 [MS-VHDX] §2.5.1.1; value 5 is the 0.95 draft's UNMAPPED. */
export const PAYLOAD_BLOCK_NOT_PRESENT = 0;
export const PAYLOAD_BLOCK_UNDEFINED = 1;
export const PAYLOAD_BLOCK_ZERO = 2;
export const PAYLOAD_BLOCK_UNMAPPED = 3;
export const PAYLOAD_BLOCK_UNMAPPED_V095 = 5;
export const PAYLOAD_BLOCK_FULLY_PRESENT = 6;
export const PAYLOAD_BLOCK_PARTIALLY_PRESENT = 7;
/** Sector-bitmap block states [MS-VHDX] §2.5.1.2. */
export const SB_BLOCK_NOT_PRESENT = 0;
export const SB_BLOCK_PRESENT = 6;

/** Throws the format's corruption error. */
export function corrupt(message: string, details?: Record<string, unknown>): never {
  throw new HvError('HV_ERR_CORRUPT', message, details);
}

/** CRC-32C of `buf` computed as if bytes [at, at+4) were zero (the VHDX checksum rule). */
export function crcWithHole(buf: Uint8Array, at: number): number {
  const saved = buf.slice(at, at + 4);
  buf.fill(0, at, at + 4);
  const c = crc32c(buf) >>> 0;
  buf.set(saved, at);
  return c;
}

/** Stores the CRC-32C of `buf` (field zeroed) at `at`, little-endian. */
export function sealCrc(buf: Uint8Array, at: number): void {
  const c = crcWithHole(buf, at);
  new DataView(buf.buffer, buf.byteOffset, buf.byteLength).setUint32(at, c, true);
}

function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Reads a u64 that must stay below 2^53 (file offsets, sizes). */
export function readU64(dv: DataView, off: number, what: string): number {
  const lo = dv.getUint32(off, true);
  const hi = dv.getUint32(off + 4, true);
  if (hi >= 0x200000) corrupt(`${what} is too large (${hi} * 2^32 + ${lo})`);
  return hi * 0x100000000 + lo;
}

export function writeU64(dv: DataView, off: number, v: number): void {
  dv.setUint32(off, v >>> 0, true);
  dv.setUint32(off + 4, Math.floor(v / 0x100000000), true);
}

/**
 * One VHDX header (`VHDXHeader`, QEMU block/vhdx.h; [MS-VHDX] §2.2.2), 4 KiB:
 * 0 Signature 'head' · 4 Checksum · 8 SequenceNumber u64 · 16 FileWriteGuid · 32 DataWriteGuid · 48 LogGuid ·
 * 64 LogVersion u16 (0) · 66 Version u16 (1) · 68 LogLength u32 · 72 LogOffset u64 · 80 reserved (4016).
 */
export interface VhdxHeader {
  sequenceNumber: bigint;
  fileWriteGuid: Guid;
  dataWriteGuid: Guid;
  logGuid: Guid;
  logVersion: number;
  version: number;
  /** Bytes, multiple of 1 MiB. */
  logLength: number;
  /** Byte offset in the file, multiple of 1 MiB, >= 1 MiB. */
  logOffset: number;
}

/**
 * Decodes and validates a header from a 4 KiB buffer.
 * @throws HvError `HV_ERR_CORRUPT` on a wrong signature, CRC, version or log placement.
 */
export function decodeHeader(buf: Uint8Array): VhdxHeader {
  if (buf.length < VHDX_HEADER_SIZE) corrupt('VHDX header is truncated');
  const b = buf.subarray(0, VHDX_HEADER_SIZE);
  const dv = view(b);
  if (dv.getUint32(0, true) !== VHDX_HEADER_SIGNATURE) corrupt("VHDX header signature is not 'head'");
  const stored = dv.getUint32(4, true);
  const actual = crcWithHole(b, 4);
  if (stored !== actual)
    corrupt(`VHDX header checksum mismatch (stored 0x${hex(stored)}, computed 0x${hex(actual)})`);
  const h: VhdxHeader = {
    sequenceNumber: dv.getBigUint64(8, true),
    fileWriteGuid: Guid.read(b, 16),
    dataWriteGuid: Guid.read(b, 32),
    logGuid: Guid.read(b, 48),
    logVersion: dv.getUint16(64, true),
    version: dv.getUint16(66, true),
    logLength: dv.getUint32(68, true),
    logOffset: readU64(dv, 72, 'VHDX header LogOffset'),
  };
  if (h.version !== 1) corrupt(`VHDX header Version is ${h.version}, expected 1`);
  if (h.logVersion !== 0) corrupt(`VHDX header LogVersion is ${h.logVersion}, expected 0`);
  if (h.logLength % MiB !== 0) corrupt(`VHDX LogLength ${h.logLength} is not a multiple of 1 MiB`);
  if (h.logOffset % MiB !== 0 || h.logOffset < MiB)
    corrupt(`VHDX LogOffset ${h.logOffset} is not a 1 MiB multiple >= 1 MiB`);
  return h;
}

/** Encodes a header into a fresh 4 KiB buffer with its CRC. */
export function encodeHeader(h: VhdxHeader): Uint8Array {
  const b = new Uint8Array(VHDX_HEADER_SIZE);
  const dv = view(b);
  dv.setUint32(0, VHDX_HEADER_SIGNATURE, true);
  dv.setBigUint64(8, h.sequenceNumber, true);
  h.fileWriteGuid.write(b, 16);
  h.dataWriteGuid.write(b, 32);
  h.logGuid.write(b, 48);
  dv.setUint16(64, h.logVersion, true);
  dv.setUint16(66, h.version, true);
  dv.setUint32(68, h.logLength, true);
  writeU64(dv, 72, h.logOffset);
  sealCrc(b, 4);
  return b;
}

/**
 * Picks the current header from the two slots [MS-VHDX] §2.2.2: the only valid one, or the valid one with the
 * larger SequenceNumber; equal numbers are accepted only when both headers are byte-identical (as QEMU).
 * @returns the header and its slot (0 = 64 KiB, 1 = 128 KiB), plus the per-slot problems found.
 * @throws HvError `HV_ERR_CORRUPT` when no header is usable.
 */
export function selectHeader(
  slot1: Uint8Array,
  slot2: Uint8Array,
): { header: VhdxHeader; slot: 0 | 1; problems: string[] } {
  const problems: string[] = [];
  const parse = (b: Uint8Array, n: number): VhdxHeader | null => {
    try {
      return decodeHeader(b);
    } catch (e) {
      problems.push(`header ${n}: ${(e as Error).message}`);
      return null;
    }
  };
  const h1 = parse(slot1, 1);
  const h2 = parse(slot2, 2);
  if (h1 && h2) {
    if (h1.sequenceNumber === h2.sequenceNumber) {
      if (!equalBytes(slot1.subarray(0, VHDX_HEADER_SIZE), slot2.subarray(0, VHDX_HEADER_SIZE))) {
        corrupt('both VHDX headers carry the same SequenceNumber but differ');
      }
      return { header: h1, slot: 0, problems };
    }
    return h1.sequenceNumber > h2.sequenceNumber
      ? { header: h1, slot: 0, problems }
      : { header: h2, slot: 1, problems };
  }
  if (h1) return { header: h1, slot: 0, problems };
  if (h2) return { header: h2, slot: 1, problems };
  corrupt(`no valid VHDX header (${problems.join('; ')})`);
}

/**
 * Region table entry (`VHDXRegionTableEntry`, QEMU block/vhdx.h; [MS-VHDX] §2.2.3.2), 32 bytes:
 * 0 Guid · 16 FileOffset u64 · 24 Length u32 · 28 Required (bit 0).
 */
export interface VhdxRegion {
  guid: Guid;
  fileOffset: number;
  length: number;
  required: boolean;
}

/**
 * Decodes a 64 KiB region table (16-byte header 'regi' · Checksum · EntryCount · reserved, then entries).
 * Checks placement (1 MiB multiples, >= 1 MiB), duplicate GUIDs, overlaps, and refuses unknown required regions.
 * @throws HvError `HV_ERR_CORRUPT` naming the first violated rule.
 */
export function decodeRegionTable(buf: Uint8Array): VhdxRegion[] {
  if (buf.length < VHDX_REGION_TABLE_SIZE) corrupt('VHDX region table is truncated');
  const b = buf.subarray(0, VHDX_REGION_TABLE_SIZE);
  const dv = view(b);
  if (dv.getUint32(0, true) !== VHDX_REGION_SIGNATURE) corrupt("VHDX region table signature is not 'regi'");
  const stored = dv.getUint32(4, true);
  const actual = crcWithHole(b, 4);
  if (stored !== actual)
    corrupt(`VHDX region table checksum mismatch (stored 0x${hex(stored)}, computed 0x${hex(actual)})`);
  const count = dv.getUint32(8, true);
  if (count > VHDX_REGION_ENTRY_MAX)
    corrupt(`VHDX region table EntryCount ${count} exceeds ${VHDX_REGION_ENTRY_MAX}`);
  const regions: VhdxRegion[] = [];
  for (let i = 0; i < count; i++) {
    const o = 16 + i * 32;
    const r: VhdxRegion = {
      guid: Guid.read(b, o),
      fileOffset: readU64(dv, o + 16, 'VHDX region FileOffset'),
      length: dv.getUint32(o + 24, true),
      required: (dv.getUint32(o + 28, true) & 1) === 1,
    };
    if (r.fileOffset % MiB !== 0 || r.fileOffset < MiB)
      corrupt(`VHDX region ${r.guid} FileOffset ${r.fileOffset} is not a 1 MiB multiple >= 1 MiB`);
    if (r.length % MiB !== 0) corrupt(`VHDX region ${r.guid} Length ${r.length} is not a multiple of 1 MiB`);
    const known = r.guid.equals(VHDX_BAT_REGION_GUID) || r.guid.equals(VHDX_METADATA_REGION_GUID);
    if (!known && r.required) corrupt(`VHDX region ${r.guid} is required but unknown to this implementation`);
    for (const p of regions) {
      if (p.guid.equals(r.guid)) corrupt(`VHDX region ${r.guid} appears twice`);
      if (r.fileOffset < p.fileOffset + p.length && p.fileOffset < r.fileOffset + r.length) {
        corrupt(`VHDX regions ${p.guid} and ${r.guid} overlap`);
      }
    }
    regions.push(r);
  }
  return regions;
}

/** Encodes a region table into a fresh 64 KiB buffer with its CRC. */
export function encodeRegionTable(regions: readonly VhdxRegion[]): Uint8Array {
  const b = new Uint8Array(VHDX_REGION_TABLE_SIZE);
  const dv = view(b);
  dv.setUint32(0, VHDX_REGION_SIGNATURE, true);
  dv.setUint32(8, regions.length, true);
  regions.forEach((r, i) => {
    const o = 16 + i * 32;
    r.guid.write(b, o);
    writeU64(dv, o + 16, r.fileOffset);
    dv.setUint32(o + 24, r.length, true);
    dv.setUint32(o + 28, r.required ? 1 : 0, true);
  });
  sealCrc(b, 4);
  return b;
}

/** Encodes the 64 KiB file type identifier: 'vhdxfile' then a UTF-16LE creator string (<= 256 chars). */
export function encodeFileIdentifier(creator: string): Uint8Array {
  const b = new Uint8Array(64 * KiB);
  for (let i = 0; i < 8; i++) b[i] = VHDX_FILE_SIGNATURE.charCodeAt(i);
  const dv = view(b);
  const s = creator.slice(0, 255);
  for (let i = 0; i < s.length; i++) dv.setUint16(8 + i * 2, s.charCodeAt(i), true);
  return b;
}

/** True when `buf` starts with the 'vhdxfile' signature. */
export function hasFileSignature(buf: Uint8Array): boolean {
  if (buf.length < 8) return false;
  for (let i = 0; i < 8; i++) if (buf[i] !== VHDX_FILE_SIGNATURE.charCodeAt(i)) return false;
  return true;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function hex(n: number): string {
  return n.toString(16).padStart(8, '0');
}
