/**
 * VHDX Block Allocation Table geometry and entries. Entry = u64: bits 0–2 state, 3–19 reserved, 20–63
 * FileOffsetMB. After every ChunkRatio payload entries comes that chunk's sector-bitmap entry.
 * Source: [MS-VHDX] §2.4 (chunk ratio), §2.5 (BAT, entry counts), §2.5.1 (states); QEMU block/vhdx.h
 * (`VHDX_BAT_STATE_BIT_MASK`, `VHDX_BAT_FILE_OFF_MASK`) and block/vhdx.c (`vhdx_calc_bat_entries`).
 */

/** Logical sectors described by one 1 MiB sector-bitmap block (2^23). */
export const SECTORS_PER_CHUNK = 2 ** 23;

/** Derived BAT sizes for one file. */
export interface BatGeometry {
  blockSize: number;
  logicalSectorSize: number;
  /** Payload blocks per chunk: 2^23 · LogicalSectorSize / BlockSize. */
  chunkRatio: number;
  /** ⌈VirtualDiskSize / BlockSize⌉. */
  payloadBlocks: number;
  /** ⌈PayloadBlocks / ChunkRatio⌉. */
  bitmapBlocks: number;
  /** Entries the BAT must hold (differencing: bitmapBlocks·(chunkRatio+1); else no trailing bitmap entry). */
  totalEntries: number;
}

export function batGeometry(
  size: number,
  blockSize: number,
  logicalSectorSize: number,
  hasParent: boolean,
): BatGeometry {
  const chunkRatio = (SECTORS_PER_CHUNK * logicalSectorSize) / blockSize;
  const payloadBlocks = Math.ceil(size / blockSize);
  const bitmapBlocks = Math.ceil(payloadBlocks / chunkRatio);
  const totalEntries = hasParent
    ? bitmapBlocks * (chunkRatio + 1)
    : payloadBlocks + Math.floor((payloadBlocks - 1) / chunkRatio);
  return { blockSize, logicalSectorSize, chunkRatio, payloadBlocks, bitmapBlocks, totalEntries };
}

/** BAT index of payload block `b`. */
export function payloadIndex(g: BatGeometry, b: number): number {
  return b + Math.floor(b / g.chunkRatio);
}

/** BAT index of the sector-bitmap entry of chunk `c`. */
export function bitmapIndex(g: BatGeometry, c: number): number {
  return c * (g.chunkRatio + 1) + g.chunkRatio;
}

/** State bits (0–7) of entry `i` of a raw BAT image. */
export function entryState(bat: DataView, i: number): number {
  return bat.getUint32(i * 8, true) & 7;
}

/** FileOffsetMB of entry `i` (bits 20–63), in MiB. */
export function entryOffsetMB(bat: DataView, i: number): number {
  return (bat.getUint32(i * 8, true) >>> 20) + bat.getUint32(i * 8 + 4, true) * 4096;
}

/** Reserved bits 3–19 of entry `i`. */
export function entryReserved(bat: DataView, i: number): number {
  return bat.getUint32(i * 8, true) & 0xffff8;
}

/** Sets entry `i` to `state` at `offsetMB` (0 for the non-present states). */
export function setEntry(bat: DataView, i: number, state: number, offsetMB: number): void {
  bat.setUint32(i * 8, ((offsetMB % 4096) << 20) | state, true);
  bat.setUint32(i * 8 + 4, Math.floor(offsetMB / 4096), true);
}
