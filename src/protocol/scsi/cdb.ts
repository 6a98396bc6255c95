/**
 * Command descriptor blocks (SBC-3/SPC-4, big-endian fields) a guest sends and a host decodes: the
 * READ/WRITE/VERIFY families (6/10/12/16), SYNCHRONIZE CACHE 10/16, WRITE SAME 10/16, UNMAP and its
 * parameter list, INQUIRY, READ CAPACITY 10/16, REPORT LUNS, MODE SENSE 6/10. Lengths are in logical
 * blocks unless named `bytes`.
 */
import { ProtocolError } from '../errors.ts';
import * as op from './constants.ts';

/** A block-addressed command: `lba` and `blocks` (≤ 2^53; a 16-byte CDB beyond that is an error). */
export interface BlockRange {
  lba: number;
  blocks: number;
  /** Force unit access (bit 3 of byte 1, not in 6-byte CDBs). */
  fua: boolean;
}

function cdbError(message: string, offset: number): never {
  throw new ProtocolError(message, { offset, structure: 'scsi_cdb' });
}

function be32(c: Uint8Array, o: number): number {
  return ((c[o]! << 24) >>> 0) + (c[o + 1]! << 16) + (c[o + 2]! << 8) + c[o + 3]!;
}

function be64(c: Uint8Array, o: number): number {
  const hi = be32(c, o);
  if (hi >= 0x200000) cdbError('64-bit field >= 2^53', o);
  return hi * 0x100000000 + be32(c, o + 4);
}

/** CDB length implied by an opcode's group code (SPC-4 §4.2.5.1): 6, 10, 12, 16, or 0 if vendor/reserved. */
export function cdbLengthForOpcode(opcode: number): number {
  switch (opcode >> 5) {
    case 0:
      return 6;
    case 1:
    case 2:
      return 10;
    case 4:
      return 16;
    case 5:
      return 12;
    default:
      return 0;
  }
}

/**
 * Decodes the LBA range of READ/WRITE/VERIFY/WRITE AND VERIFY/SYNCHRONIZE CACHE/WRITE SAME CDBs. READ(6)/
 * WRITE(6) transfer length 0 means 256 blocks (SBC-3 §5.15); elsewhere 0 means none. SYNCHRONIZE CACHE with
 * 0 blocks means "to the end of the medium" — returned as 0 for the caller to interpret.
 * @throws ProtocolError when `cdb` is shorter than the opcode's CDB length or the opcode is not block I/O.
 */
export function decodeBlockRange(cdb: Uint8Array, out: BlockRange): BlockRange {
  const code = cdb[0] ?? -1;
  const need = cdbLengthForOpcode(code);
  if (need === 0 || cdb.length < need)
    cdbError(`CDB of ${cdb.length} bytes too short for opcode 0x${code.toString(16)}`, 0);
  out.fua = need > 6 && (cdb[1]! & 0x08) !== 0;
  switch (need) {
    case 6:
      out.lba = ((cdb[1]! & 0x1f) << 16) | (cdb[2]! << 8) | cdb[3]!;
      out.blocks = cdb[4] === 0 ? 256 : cdb[4]!;
      return out;
    case 10:
      out.lba = be32(cdb, 2);
      out.blocks = (cdb[7]! << 8) | cdb[8]!;
      return out;
    case 12:
      out.lba = be32(cdb, 2);
      out.blocks = be32(cdb, 6);
      return out;
    default:
      out.lba = be64(cdb, 2);
      out.blocks = be32(cdb, 10);
      return out;
  }
}

/** Builds READ(16)/WRITE(16) into `cdb` (16 bytes). */
export function encodeReadWrite16(
  cdb: Uint8Array,
  write: boolean,
  lba: number,
  blocks: number,
  fua = false,
): void {
  cdb.fill(0, 0, 16);
  cdb[0] = write ? op.WRITE_16 : op.READ_16;
  cdb[1] = fua ? 0x08 : 0;
  const hi = Math.floor(lba / 0x100000000);
  const lo = lba >>> 0;
  const v = new DataView(cdb.buffer, cdb.byteOffset, 16);
  v.setUint32(2, hi);
  v.setUint32(6, lo);
  v.setUint32(10, blocks >>> 0);
}

/** Builds READ(10)/WRITE(10) into `cdb` (10 bytes). @throws RangeError beyond 32-bit LBA / 16-bit length. */
export function encodeReadWrite10(cdb: Uint8Array, write: boolean, lba: number, blocks: number): void {
  if (lba > 0xffffffff || blocks > 0xffff) throw new RangeError('READ/WRITE(10) range too large');
  cdb.fill(0, 0, 16);
  cdb[0] = write ? op.WRITE_10 : op.READ_10;
  const v = new DataView(cdb.buffer, cdb.byteOffset, 10);
  v.setUint32(2, lba);
  v.setUint16(7, blocks);
}

/** INQUIRY CDB: EVPD bit and page code, allocation length (u16 BE at 3). */
export function encodeInquiry(cdb: Uint8Array, evpd: boolean, page: number, allocationLength: number): void {
  cdb.fill(0, 0, 16);
  cdb[0] = op.INQUIRY;
  cdb[1] = evpd ? 1 : 0;
  cdb[2] = page;
  cdb[3] = (allocationLength >> 8) & 0xff;
  cdb[4] = allocationLength & 0xff;
}

/** INQUIRY fields: EVPD (byte 1 bit 0), CMDDT (bit 1), page code, allocation length. */
export function decodeInquiry(cdb: Uint8Array): {
  evpd: boolean;
  cmddt: boolean;
  page: number;
  allocationLength: number;
} {
  if (cdb.length < 6) cdbError('INQUIRY CDB shorter than 6 bytes', 0);
  return {
    evpd: (cdb[1]! & 1) !== 0,
    cmddt: (cdb[1]! & 2) !== 0,
    page: cdb[2]!,
    allocationLength: (cdb[3]! << 8) | cdb[4]!,
  };
}

/** READ CAPACITY(16): SERVICE ACTION IN(16) / 0x10, allocation length u32 BE at 10. */
export function encodeReadCapacity16(cdb: Uint8Array, allocationLength = 32): void {
  cdb.fill(0, 0, 16);
  cdb[0] = op.SERVICE_ACTION_IN_16;
  cdb[1] = op.SAI_READ_CAPACITY_16;
  new DataView(cdb.buffer, cdb.byteOffset, 16).setUint32(10, allocationLength);
}

/** REPORT LUNS: select report byte 2, allocation length u32 BE at 6. */
export function encodeReportLuns(cdb: Uint8Array, allocationLength: number): void {
  cdb.fill(0, 0, 16);
  cdb[0] = op.REPORT_LUNS;
  new DataView(cdb.buffer, cdb.byteOffset, 12).setUint32(6, allocationLength);
}

/** Allocation length of a CDB whose length field lives at a known place, per opcode (0 if none). */
export function allocationLength(cdb: Uint8Array): number {
  const c = cdb[0];
  const u16 = (o: number) => ((cdb[o] ?? 0) << 8) | (cdb[o + 1] ?? 0);
  const u32 = (o: number) => (cdb.length >= o + 4 ? be32(cdb, o) : 0);
  switch (c) {
    case op.INQUIRY:
      return u16(3);
    case op.MODE_SENSE:
    case op.REQUEST_SENSE:
      return cdb[4] ?? 0;
    case op.MODE_SENSE_10:
      return u16(7);
    case op.REPORT_LUNS:
      return u32(6);
    case op.SERVICE_ACTION_IN_16:
      return u32(10);
    case op.READ_CAPACITY:
      return 8;
    default:
      return 0;
  }
}

/** UNMAP CDB: parameter list length u16 BE at 7. */
export function encodeUnmap(cdb: Uint8Array, parameterListLength: number): void {
  cdb.fill(0, 0, 16);
  cdb[0] = op.UNMAP;
  cdb[7] = (parameterListLength >> 8) & 0xff;
  cdb[8] = parameterListLength & 0xff;
}

/** SYNCHRONIZE CACHE(10) with LBA 0 / 0 blocks = everything. */
export function encodeSynchronizeCache(cdb: Uint8Array): void {
  cdb.fill(0, 0, 16);
  cdb[0] = op.SYNCHRONIZE_CACHE;
}

/** One UNMAP block descriptor: lba u64 BE, blocks u32 BE, 4 reserved (SBC-3 §5.28.2). */
export interface UnmapDescriptor {
  lba: number;
  blocks: number;
}

/**
 * Encodes the UNMAP parameter list: header {data length u16 = n·16 + 6, block descriptor data length u16 =
 * n·16, 4 reserved} then 16-byte descriptors.
 */
export function encodeUnmapParameterList(descs: readonly UnmapDescriptor[]): Uint8Array {
  const out = new Uint8Array(8 + 16 * descs.length);
  const v = new DataView(out.buffer);
  v.setUint16(0, 6 + 16 * descs.length);
  v.setUint16(2, 16 * descs.length);
  descs.forEach((d, i) => {
    v.setUint32(8 + 16 * i, Math.floor(d.lba / 0x100000000));
    v.setUint32(12 + 16 * i, d.lba >>> 0);
    v.setUint32(16 + 16 * i, d.blocks >>> 0);
  });
  return out;
}

/**
 * Decodes an UNMAP parameter list (at most `maxDescriptors`). The block descriptor data length is capped by
 * the bytes present; a length not a multiple of 16 drops the partial descriptor (SBC-3 allows it).
 * @throws ProtocolError when shorter than the 8-byte header, or more than `maxDescriptors` descriptors.
 */
export function decodeUnmapParameterList(bytes: Uint8Array, maxDescriptors = 4096): UnmapDescriptor[] {
  if (bytes.length < 8) cdbError(`UNMAP parameter list of ${bytes.length} bytes < 8`, 0);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const declared = v.getUint16(2);
  const n = Math.floor(Math.min(declared, bytes.length - 8) / 16);
  if (n > maxDescriptors) cdbError(`UNMAP with ${n} descriptors > ${maxDescriptors}`, 2);
  const out: UnmapDescriptor[] = [];
  for (let i = 0; i < n; i++) {
    const o = 8 + 16 * i;
    out.push({ lba: be64(bytes, o), blocks: v.getUint32(o + 8) });
  }
  return out;
}
