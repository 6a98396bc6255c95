/**
 * `test-vhd` for VHDX: reports every problem found (headers, region tables, log state, metadata, BAT entries,
 * parent chain) and, with `repair`, fixes what can be fixed: replays the log, rewrites both header copies and
 * both region tables, resets BAT entries that point outside the file or carry illegal states (including the
 * sector-bitmap entries pre-2023 QEMU damaged) to NOT_PRESENT.
 */
import { HvError } from '../../protocol/errors.ts';
import { Guid } from '../../protocol/guid.ts';
import { MiB, selectHeader, VHDX_HEADER_SIZE, VHDX_HEADER1_OFFSET, VHDX_HEADER2_OFFSET } from './format.ts';
import { ImageFile } from './image-file.ts';
import { VhdxDisk, writeHeaderTwice } from './vhdx-disk.ts';

export interface CheckResult {
  /** True when no problem is left (notes do not count). */
  ok: boolean;
  problems: string[];
  repaired: string[];
  /** Informational findings that need no repair (leaked space: optimize-vhd reclaims it). */
  notes: string[];
}

/**
 * Checks a VHDX file without changing it, or repairs it when `repair` is set.
 * Never throws for a damaged file (damage is reported in `problems`); throws HvError `HV_ERR_NOT_FOUND` /
 * `HV_ERR_IO` when the file cannot be read at all.
 */
export async function checkVhdx(path: string, opts: { repair: boolean }): Promise<CheckResult> {
  const problems: string[] = [];
  const repaired: string[] = [];
  const notes: string[] = [];
  let disk: VhdxDisk | null = null;
  try {
    disk = await VhdxDisk.open(path, { readOnly: true, lenient: true });
    problems.push(...disk.problems);
    const leaked = leakedBytes(disk);
    if (leaked > 0)
      notes.push(
        `${leaked} bytes of the file belong to no structure or block (leaked space; optimize-vhd reclaims it)`,
      );
    await disk.close();
    disk = null;
  } catch (e) {
    if (!(e instanceof HvError) || e.code === 'HV_ERR_IO') throw e;
    problems.push(e.message);
    if (e.code === 'HV_ERR_NOT_FOUND' && !(await exists(path))) throw e;
  }
  if (!opts.repair || problems.length === 0) return { ok: problems.length === 0, problems, repaired, notes };
  try {
    await rewriteHeaders(path, repaired);
    disk = await VhdxDisk.open(path, { lenient: true });
    if (disk.problems.some((p) => p.startsWith('the log held'))) repaired.push('replayed the log');
    if (disk.problems.some((p) => p.startsWith('region table'))) {
      await disk.rewriteRegionTables();
      repaired.push('rewrote both region tables from the good copy');
    }
    repaired.push(...(await disk.repairBat()));
    // Double references: the later entry gets its own copy at the end of the file, so both read what they did.
    const shared = doubleReferenced(disk);
    if (shared.length) {
      await disk.relocate(shared.map((index) => ({ index })));
      repaired.push(...shared.map((i) => `BAT entry ${i} shared file space: gave it its own copy`));
    }
    await disk.close();
    disk = null;
    const after = await VhdxDisk.open(path, { readOnly: true, lenient: true });
    const left = after.problems.filter((p) => !p.startsWith('the log held'));
    await after.close();
    return { ok: left.length === 0, problems, repaired, notes };
  } catch (e) {
    await disk?.close().catch(() => {});
    if (!(e instanceof HvError)) throw e;
    return { ok: false, problems: [...problems, `repair failed: ${e.message}`], repaired, notes };
  }
}

/** Bytes of `[0, fileSize)` covered by no structure and no allocated block or bitmap. */
function leakedBytes(disk: VhdxDisk): number {
  const size = disk.fileSize;
  const used = [
    ...disk.reservedRanges(),
    ...disk.allocations().map((a): [number, number] => [a.fileOffset, a.fileOffset + a.length]),
  ].sort((a, b) => a[0] - b[0]);
  let covered = 0;
  let cursor = 0;
  for (const [s, e] of used) {
    const from = Math.max(s, cursor);
    const to = Math.min(e, size);
    if (to > from) covered += to - from;
    cursor = Math.max(cursor, e);
  }
  return size - covered;
}

/** BAT indexes whose file space starts inside an earlier entry's (all but the first of each overlapping group). */
function doubleReferenced(disk: VhdxDisk): number[] {
  const allocs = disk.allocations().sort((a, b) => a.fileOffset - b.fileOffset);
  const out: number[] = [];
  let end = -1;
  for (const a of allocs) {
    if (a.fileOffset < end) out.push(a.index);
    end = Math.max(end, a.fileOffset + a.length);
  }
  return out;
}

async function exists(path: string): Promise<boolean> {
  const { access } = await import('node:fs/promises');
  return access(path).then(
    () => true,
    () => false,
  );
}

/** When one header copy is bad, the update procedure run twice rewrites both from the good one. */
async function rewriteHeaders(path: string, repaired: string[]): Promise<void> {
  const f = await ImageFile.open(path, false);
  try {
    if (f.size < MiB) return;
    const a = new Uint8Array(VHDX_HEADER_SIZE);
    const b = new Uint8Array(VHDX_HEADER_SIZE);
    await f.read(a, VHDX_HEADER1_OFFSET);
    await f.read(b, VHDX_HEADER2_OFFSET);
    const sel = selectHeader(a, b);
    if (sel.problems.length === 0) return;
    await writeHeaderTwice(f, { header: sel.header, slot: sel.slot }, { fileWriteGuid: Guid.random() });
    repaired.push('rewrote both headers from the valid copy');
  } catch {
    // no valid header at all: nothing to rebuild from
  } finally {
    await f.close();
  }
}
