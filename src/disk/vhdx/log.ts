/**
 * The VHDX metadata log: entry codec, the search for the active sequence, and the list of writes a replay makes.
 * The log is a circular buffer of 4 KiB sectors; an entry (which may wrap the end of the buffer) is a 64-byte
 * header plus 32-byte descriptors (126 in the first sector, 128 in each further one), then one data sector per
 * data descriptor.
 * Sources: VHDX Format Specification v1.00 §2.3 (log); QEMU block/vhdx.h (`VHDXLogEntryHeader`,
 * `VHDXLogZeroDescriptor`, `VHDXLogDataDescriptor`, `VHDXLogDataSector`) and block/vhdx-log.c (search/replay);
 * disk-formats.md §2.5.
 */
import { crc32c } from '@node-rs/crc32';
import type { Guid } from '../../protocol/guid.ts';
import { corrupt, KiB, MiB, readU64, VHDX_MAX_DISK_SIZE, writeU64 } from './format.ts';

export const LOG_SECTOR = 4 * KiB;
export const LOG_ENTRY_SIGNATURE = 0x65676f6c; // 'loge'
export const LOG_ZERO_SIGNATURE = 0x6f72657a; // 'zero'
export const LOG_DESC_SIGNATURE = 0x63736564; // 'desc'
export const LOG_DATA_SIGNATURE = 0x61746164; // 'data'
/** Entry header size in bytes. */
export const LOG_ENTRY_HEADER_SIZE = 64;
/** Descriptor size in bytes. */
export const LOG_DESCRIPTOR_SIZE = 32;
/** Upper bound on the zeros one entry may ask for (a sanity bound, not spec text). */
const MAX_ZERO_BYTES_PER_ENTRY = 1024 * MiB;

/** One write a replay performs: 4 KiB of `data`, or `length` zero bytes when `data` is null. */
export interface LogWrite {
  fileOffset: number;
  data: Uint8Array | null;
  length: number;
}

/**
 * A decoded, validated entry. Header layout (64 bytes): 0 'loge' · 4 Checksum (CRC-32C over EntryLength bytes)
 * · 8 EntryLength u32 · 12 Tail u32 · 16 SequenceNumber u64 · 24 DescriptorCount u32 · 28 reserved ·
 * 32 LogGuid · 48 FlushedFileOffset u64 · 56 LastFileOffset u64.
 */
export interface LogEntry {
  /** Byte offset of the entry inside the log buffer. */
  offset: number;
  entryLength: number;
  tail: number;
  sequenceNumber: bigint;
  flushedFileOffset: number;
  lastFileOffset: number;
  writes: LogWrite[];
}

function dvOf(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Copies `length` bytes starting at `offset` of the circular `log`, wrapping at its end. */
function circular(log: Uint8Array, offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  const first = Math.min(length, log.length - offset);
  out.set(log.subarray(offset, offset + first), 0);
  if (first < length) out.set(log.subarray(0, length - first), first);
  return out;
}

/** Number of sectors the header plus `count` descriptors take. */
export function descriptorSectors(count: number): number {
  return Math.ceil((LOG_ENTRY_HEADER_SIZE + count * LOG_DESCRIPTOR_SIZE) / LOG_SECTOR);
}

/**
 * Decodes the entry at `offset` (a 4 KiB multiple) of the whole log buffer `log`, checking everything the
 * v1.00 spec lists: signature, LogGuid, EntryLength, Tail, SequenceNumber > 0, descriptor signatures,
 * alignment and sequence numbers, data-sector signatures and split sequence numbers, the whole-entry CRC.
 * @throws HvError `HV_ERR_CORRUPT` naming the failed check (the caller treats that as "not an entry").
 */
export function decodeLogEntry(log: Uint8Array, offset: number, logGuid: Guid): LogEntry {
  if (offset % LOG_SECTOR !== 0 || offset >= log.length || log.length % LOG_SECTOR !== 0) {
    corrupt('VHDX log entry offset is not a sector inside the log');
  }
  const head = dvOf(log.subarray(offset, offset + LOG_SECTOR));
  if (head.getUint32(0, true) !== LOG_ENTRY_SIGNATURE) corrupt("VHDX log entry signature is not 'loge'");
  const entryLength = head.getUint32(8, true);
  const tail = head.getUint32(12, true);
  const sequenceNumber = head.getBigUint64(16, true);
  const count = head.getUint32(24, true);
  if (entryLength === 0 || entryLength % LOG_SECTOR !== 0 || entryLength > log.length) {
    corrupt(`VHDX log EntryLength ${entryLength} is not a sector multiple within the log`);
  }
  if (tail % LOG_SECTOR !== 0 || tail >= log.length)
    corrupt(`VHDX log Tail ${tail} is not a sector inside the log`);
  if (sequenceNumber === 0n) corrupt('VHDX log entry SequenceNumber is 0');
  if (!logGuid.matches(log, offset + 32)) corrupt('VHDX log entry carries a foreign LogGuid');
  const sectors = entryLength / LOG_SECTOR;
  if (count > sectors * 128)
    corrupt(`VHDX log DescriptorCount ${count} cannot fit EntryLength ${entryLength}`);
  const descSectors = descriptorSectors(count);
  if (descSectors > sectors)
    corrupt(`VHDX log DescriptorCount ${count} cannot fit EntryLength ${entryLength}`);
  const entry = circular(log, offset, entryLength);
  const dv = dvOf(entry);
  const flushedFileOffset = readU64(dv, 48, 'VHDX log FlushedFileOffset');
  const lastFileOffset = readU64(dv, 56, 'VHDX log LastFileOffset');
  if (lastFileOffset > 2 * VHDX_MAX_DISK_SIZE) corrupt(`VHDX log LastFileOffset ${lastFileOffset} is absurd`);
  const stored = dv.getUint32(4, true);
  dv.setUint32(4, 0, true);
  const actual = crc32c(entry) >>> 0;
  if (stored !== actual) corrupt('VHDX log entry checksum mismatch');
  const writes: LogWrite[] = [];
  let dataSector = descSectors;
  let zeroBytes = 0;
  for (let i = 0; i < count; i++) {
    const o = LOG_ENTRY_HEADER_SIZE + i * LOG_DESCRIPTOR_SIZE;
    const sig = dv.getUint32(o, true);
    const fileOffset = readU64(dv, o + 16, 'VHDX log descriptor FileOffset');
    if (fileOffset % LOG_SECTOR !== 0) corrupt('VHDX log descriptor FileOffset is not 4 KiB aligned');
    if (dv.getBigUint64(o + 24, true) !== sequenceNumber)
      corrupt('VHDX log descriptor SequenceNumber differs from its entry');
    if (sig === LOG_ZERO_SIGNATURE) {
      const length = readU64(dv, o + 8, 'VHDX log ZeroLength');
      if (length % LOG_SECTOR !== 0) corrupt('VHDX log ZeroLength is not a multiple of 4 KiB');
      zeroBytes += length;
      if (zeroBytes > MAX_ZERO_BYTES_PER_ENTRY) corrupt('VHDX log entry zeroes more than 1 GiB');
      writes.push({ fileOffset, data: null, length });
    } else if (sig === LOG_DESC_SIGNATURE) {
      if (dataSector >= sectors) corrupt('VHDX log entry has more data descriptors than data sectors');
      const s = dataSector * LOG_SECTOR;
      const sdv = dvOf(entry.subarray(s, s + LOG_SECTOR));
      if (sdv.getUint32(0, true) !== LOG_DATA_SIGNATURE)
        corrupt("VHDX log data sector signature is not 'data'");
      const seq = (BigInt(sdv.getUint32(4, true)) << 32n) | BigInt(sdv.getUint32(4092, true));
      if (seq !== sequenceNumber) corrupt('VHDX log data sector sequence high/low differs from its entry');
      const data = new Uint8Array(LOG_SECTOR);
      data.set(entry.subarray(o + 8, o + 16), 0);
      data.set(entry.subarray(s + 8, s + 4092), 8);
      data.set(entry.subarray(o + 4, o + 8), 4092);
      writes.push({ fileOffset, data, length: LOG_SECTOR });
      dataSector++;
    } else {
      corrupt(`VHDX log descriptor ${i} has an unknown signature 0x${sig.toString(16)}`);
    }
  }
  return { offset, entryLength, tail, sequenceNumber, flushedFileOffset, lastFileOffset, writes };
}

/**
 * Finds the active sequence: among valid entries, the one with the highest SequenceNumber whose sequence is
 * complete (walking from its Tail entry forward, every entry valid, physically adjacent, numbers +1, reaching it).
 * @returns the entries tail→head, or null when the log holds no complete sequence.
 */
export function findActiveSequence(log: Uint8Array, logGuid: Guid): LogEntry[] | null {
  const valid = new Map<number, LogEntry>();
  for (let off = 0; off < log.length; off += LOG_SECTOR) {
    try {
      valid.set(off, decodeLogEntry(log, off, logGuid));
    } catch {
      // not an entry (or a torn one): skip this sector
    }
  }
  const heads = [...valid.values()].sort((a, b) => (a.sequenceNumber < b.sequenceNumber ? 1 : -1));
  for (const head of heads) {
    const seq: LogEntry[] = [];
    let e = valid.get(head.tail);
    let steps = 0;
    while (e && steps++ <= valid.size) {
      if (seq.length && e.sequenceNumber !== seq[seq.length - 1]!.sequenceNumber + 1n) break;
      seq.push(e);
      if (e === head) return seq;
      e = valid.get((e.offset + e.entryLength) % log.length);
    }
  }
  return null;
}

/** What {@link encodeLogEntry} needs. Data sectors are whole 4 KiB target sectors. */
export interface NewLogEntry {
  sequenceNumber: bigint;
  /** Offset in the log of the oldest entry still needed (this entry's own offset when all before are applied). */
  tail: number;
  logGuid: Guid;
  flushedFileOffset: number;
  lastFileOffset: number;
  sectors: ReadonlyArray<{ fileOffset: number; data: Uint8Array }>;
  zeros?: ReadonlyArray<{ fileOffset: number; length: number }>;
}

/** Builds an entry (header, descriptors, data sectors) with its CRC. Its length is a multiple of 4 KiB. */
export function encodeLogEntry(e: NewLogEntry): Uint8Array {
  const zeros = e.zeros ?? [];
  const count = zeros.length + e.sectors.length;
  const descSectors = descriptorSectors(count);
  const length = (descSectors + e.sectors.length) * LOG_SECTOR;
  const b = new Uint8Array(length);
  const dv = dvOf(b);
  dv.setUint32(0, LOG_ENTRY_SIGNATURE, true);
  dv.setUint32(8, length, true);
  dv.setUint32(12, e.tail, true);
  dv.setBigUint64(16, e.sequenceNumber, true);
  dv.setUint32(24, count, true);
  e.logGuid.write(b, 32);
  writeU64(dv, 48, e.flushedFileOffset);
  writeU64(dv, 56, e.lastFileOffset);
  let d = 0;
  for (const z of zeros) {
    const o = LOG_ENTRY_HEADER_SIZE + d++ * LOG_DESCRIPTOR_SIZE;
    dv.setUint32(o, LOG_ZERO_SIGNATURE, true);
    writeU64(dv, o + 8, z.length);
    writeU64(dv, o + 16, z.fileOffset);
    dv.setBigUint64(o + 24, e.sequenceNumber, true);
  }
  const hi = Number(e.sequenceNumber >> 32n);
  const lo = Number(e.sequenceNumber & 0xffffffffn);
  e.sectors.forEach((s, i) => {
    const o = LOG_ENTRY_HEADER_SIZE + d++ * LOG_DESCRIPTOR_SIZE;
    dv.setUint32(o, LOG_DESC_SIGNATURE, true);
    b.set(s.data.subarray(4092, 4096), o + 4);
    b.set(s.data.subarray(0, 8), o + 8);
    writeU64(dv, o + 16, s.fileOffset);
    dv.setBigUint64(o + 24, e.sequenceNumber, true);
    const at = (descSectors + i) * LOG_SECTOR;
    dv.setUint32(at, LOG_DATA_SIGNATURE, true);
    dv.setUint32(at + 4, hi, true);
    b.set(s.data.subarray(8, 4092), at + 8);
    dv.setUint32(at + 4092, lo, true);
  });
  dv.setUint32(4, crc32c(b) >>> 0, true);
  return b;
}
