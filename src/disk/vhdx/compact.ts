/**
 * Optimize-VHD for dynamic and differencing VHDX, in place and crash-safe:
 * 1. deallocate blocks whose removal leaves what the chain reads unchanged — dynamic: FULLY_PRESENT blocks
 *    holding only zeros become PAYLOAD_BLOCK_ZERO; differencing: blocks whose contents equal what the parent
 *    chain reads there become NOT_PRESENT (a zero block hiding parent data is kept); non-present entries with
 *    a stale FileOffsetMB get 0. One log commit.
 * 2. move the highest live blocks and sector bitmaps down into free space: copy, fsync, then the BAT update
 *    through the log (VhdxDisk.relocate); a batch's targets are only space that was free before it started.
 * 3. empty the log and truncate the file to the end of the last structure or block (1 MiB aligned).
 * The DataWriteGuid is kept (no user-visible change), so differencing children stay linked.
 * Fixed files (LeaveBlockAllocated = 1) are refused: their blocks must stay allocated (disk-formats.md case 31).
 * Sources: [MS-VHDX] §2.5 (BAT, states), §2.2.2 (GUIDs); disk-formats.md §2.10.
 */
import { HvError } from '../../protocol/errors.ts';
import { isZero } from '../file-io.ts';
import type { Progress } from '../ops/progress.ts';
import {
  MiB,
  PAYLOAD_BLOCK_FULLY_PRESENT,
  PAYLOAD_BLOCK_NOT_PRESENT,
  PAYLOAD_BLOCK_PARTIALLY_PRESENT,
  PAYLOAD_BLOCK_UNMAPPED,
  PAYLOAD_BLOCK_UNMAPPED_V095,
  PAYLOAD_BLOCK_ZERO,
} from './format.ts';
import { type FileAllocation, VhdxDisk } from './vhdx-disk.ts';

/** Data copied per relocation batch (one fsync and one log commit each), in bytes. */
const BATCH_BYTES = 256 * MiB;

/** What {@link compactVhdx} did. File sizes are apparent sizes in bytes. */
export interface VhdxCompactResult {
  fileSizeBefore: number;
  fileSizeAfter: number;
  /** Payload blocks deallocated (or whose stale FileOffsetMB was cleared). */
  deallocated: number;
  /** Blocks and sector bitmaps moved down. */
  moved: number;
}

/**
 * Compacts the VHDX at `path` in place (see the file comment for the steps). `progress` gets bytes scanned out
 * of bytes allocated.
 * @throws HvError `HV_ERR_INVALID_ARGUMENT` (a fixed VHDX), `HV_ERR_CORRUPT` (a damaged file: run test-vhd
 * --repair first), `HV_ERR_NOT_FOUND`, `HV_ERR_IO`.
 */
export async function compactVhdx(path: string, progress?: Progress): Promise<VhdxCompactResult> {
  const disk = await VhdxDisk.open(path);
  try {
    if (disk.type === 'Fixed') {
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `${path} is a fixed VHDX; only dynamic and differencing disks can be compacted`,
      );
    }
    const fileSizeBefore = disk.fileSize;
    const drops = await findRemovable(disk, progress);
    if (drops.length) await disk.deallocate(drops);
    let moved = 0;
    for (;;) {
      const moves = planMoves(disk.allocations(), disk.reservedRanges(), BATCH_BYTES);
      if (moves.length === 0) break;
      await disk.relocate(moves);
      moved += moves.length;
    }
    const fileSizeAfter = await disk.truncateUnused();
    return { fileSizeBefore, fileSizeAfter, deallocated: drops.length, moved };
  } finally {
    await disk.close();
  }
}

/** Payload blocks that can go without changing what the chain reads, with the state each gets. */
async function findRemovable(
  disk: VhdxDisk,
  progress?: Progress,
): Promise<Array<{ block: number; state: number }>> {
  const g = disk.geometry;
  const parent = disk.parent;
  const chunk = Math.min(g.blockSize, 4 * MiB);
  const mine = new Uint8Array(chunk);
  const theirs = new Uint8Array(chunk);
  const total = disk.allocations().reduce((n, a) => n + (a.kind === 'payload' ? a.length : 0), 0);
  let scanned = 0;
  const out: Array<{ block: number; state: number }> = [];
  for (let b = 0; b < g.payloadBlocks; b++) {
    const { state, fileOffset } = disk.blockEntry(b);
    if (state !== PAYLOAD_BLOCK_FULLY_PRESENT && state !== PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
      // Space no entry owns any more; the state (and so what is read) stays.
      if (fileOffset !== 0)
        out.push({ block: b, state: state === PAYLOAD_BLOCK_UNMAPPED_V095 ? PAYLOAD_BLOCK_UNMAPPED : state });
      continue;
    }
    const start = b * g.blockSize;
    const len = Math.min(g.blockSize, disk.size - start);
    let same = true;
    for (let o = 0; o < len && same; o += chunk) {
      const n = Math.min(chunk, len - o);
      const a = mine.subarray(0, n);
      await disk.read(a, start + o);
      if (!parent) {
        same = isZero(a);
        continue;
      }
      const p = theirs.subarray(0, n);
      const inside = Math.max(0, Math.min(n, parent.size - start - o));
      if (inside > 0) await parent.read(p.subarray(0, inside), start + o);
      p.fill(0, inside);
      same = Buffer.from(a.buffer, a.byteOffset, n).equals(Buffer.from(p.buffer, p.byteOffset, n));
    }
    if (same) out.push({ block: b, state: parent ? PAYLOAD_BLOCK_NOT_PRESENT : PAYLOAD_BLOCK_ZERO });
    scanned += g.blockSize;
    progress?.(scanned, total);
  }
  return out;
}

/**
 * Plans one batch of moves that lowers the end of the used file space: the highest allocation first goes to
 * the lowest free 1 MiB-aligned gap below it that fits, until one does not fit or `maxBytes` would be passed.
 * Only space free before the batch is used, so the sources of a batch are never its targets. Pure.
 * @param reserved `[start, end)` byte ranges of the header section, log and regions.
 */
export function planMoves(
  allocs: readonly FileAllocation[],
  reserved: ReadonlyArray<readonly [number, number]>,
  maxBytes: number,
): Array<{ index: number; to: number }> {
  const used = [
    ...reserved.map(([s, e]) => [s, e] as const),
    ...allocs.map((a) => [a.fileOffset, a.fileOffset + a.length] as const),
  ].sort((x, y) => x[0] - y[0]);
  const holes: Array<{ start: number; end: number }> = [];
  let cursor = 0;
  for (const [s, e] of used) {
    const hs = Math.ceil(cursor / MiB) * MiB;
    const he = Math.floor(s / MiB) * MiB;
    if (he > hs) holes.push({ start: hs, end: he });
    cursor = Math.max(cursor, e);
  }
  const moves: Array<{ index: number; to: number }> = [];
  let bytes = 0;
  for (const a of [...allocs].sort((x, y) => y.fileOffset - x.fileOffset)) {
    if (moves.length > 0 && bytes + a.length > maxBytes) break;
    const h = holes.find((h) => h.end - h.start >= a.length && h.start + a.length <= a.fileOffset);
    if (!h) break;
    moves.push({ index: a.index, to: h.start });
    h.start += a.length;
    bytes += a.length;
  }
  return moves;
}
