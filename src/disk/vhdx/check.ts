/**
 * `test-vhd` for VHDX: reports every problem found (headers, region tables, log state, metadata, BAT entries,
 * parent chain) and, with `repair`, fixes what can be fixed: replays the log, rewrites both header copies and
 * both region tables, resets BAT entries that point outside the file or carry illegal states (including the
 * sector-bitmap entries pre-2023 QEMU damaged) to NOT_PRESENT.
 */
import { HvError } from '../../protocol/errors.ts';
import { Guid } from '../../protocol/guid.ts';
import { MiB, VHDX_HEADER1_OFFSET, VHDX_HEADER2_OFFSET, VHDX_HEADER_SIZE, selectHeader } from './format.ts';
import { ImageFile } from './image-file.ts';
import { VhdxDisk, writeHeaderTwice } from './vhdx-disk.ts';

export interface CheckResult {
  ok: boolean;
  problems: string[];
  repaired: string[];
}

/**
 * Checks a VHDX file without changing it, or repairs it when `repair` is set.
 * Never throws for a damaged file (damage is reported in `problems`); throws HvError `HV_ERR_NOT_FOUND` /
 * `HV_ERR_IO` when the file cannot be read at all.
 */
export async function checkVhdx(path: string, opts: { repair: boolean }): Promise<CheckResult> {
  const problems: string[] = [];
  const repaired: string[] = [];
  let disk: VhdxDisk | null = null;
  try {
    disk = await VhdxDisk.open(path, { readOnly: true, lenient: true });
    problems.push(...disk.problems);
    await disk.close();
    disk = null;
  } catch (e) {
    if (!(e instanceof HvError) || e.code === 'HV_ERR_IO') throw e;
    problems.push(e.message);
    if (e.code === 'HV_ERR_NOT_FOUND' && !(await exists(path))) throw e;
  }
  if (!opts.repair || problems.length === 0) return { ok: problems.length === 0, problems, repaired };
  try {
    await rewriteHeaders(path, repaired);
    disk = await VhdxDisk.open(path, { lenient: true });
    if (disk.problems.some((p) => p.startsWith('the log held'))) repaired.push('replayed the log');
    if (disk.problems.some((p) => p.startsWith('region table'))) {
      await disk.rewriteRegionTables();
      repaired.push('rewrote both region tables from the good copy');
    }
    repaired.push(...(await disk.repairBat()));
    await disk.close();
    disk = null;
    const after = await VhdxDisk.open(path, { readOnly: true, lenient: true });
    const left = after.problems.filter((p) => !p.startsWith('the log held'));
    await after.close();
    return { ok: left.length === 0, problems, repaired };
  } catch (e) {
    await disk?.close().catch(() => {});
    if (!(e instanceof HvError)) throw e;
    return { ok: false, problems: [...problems, `repair failed: ${e.message}`], repaired };
  }
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
