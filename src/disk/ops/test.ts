/** Test-VHD: checks an image and explains what is wrong; `repair` fixes what can be fixed. */
import type { VhdFormat } from '../block-device.ts';
import { openDisk, probeFormat } from '../open.ts';
import { checkVhd } from '../vhd/check.ts';
import { type DiskProblem, loadVhdx } from '../vhdx-bridge.ts';

/** Result of {@link testDisk}; `Valid` mirrors Test-VHD's boolean. */
export interface DiskTestReport {
  Path: string;
  VhdFormat: VhdFormat;
  /** True when nothing unrepaired remains (leaked space and saved state are notes, not faults). */
  Valid: boolean;
  Problems: DiskProblem[];
}

const NOTES = new Set(['leaked-space', 'saved-state']);

export async function testDisk(path: string, opts: { repair?: boolean } = {}): Promise<DiskTestReport> {
  const repair = opts.repair ?? false;
  const format = await probeFormat(path);
  let problems: DiskProblem[] = [];
  if (format === 'VHD')
    problems = await checkVhd(path, { repair, openChain: (p) => openDisk(p, { readOnly: true }) });
  else if (format === 'VHDX') problems = (await (await loadVhdx()).check(path, { repair })).problems;
  return {
    Path: path,
    VhdFormat: format,
    Valid: problems.every((p) => p.repaired || NOTES.has(p.code)),
    Problems: problems,
  };
}
