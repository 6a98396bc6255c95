/** Optimize-VHD: compacts a dynamic or differencing image in place (VHD: vhd/compact.ts; VHDX: vhdx/compact.ts). */
import { HvError } from '../../protocol/errors.ts';
import type { VhdInfo } from '../block-device.ts';
import { openDisk, probeFormat } from '../open.ts';
import { compactVhd } from '../vhd/compact.ts';
import { compactVhdx } from '../vhdx/compact.ts';
import type { Progress } from './progress.ts';

/**
 * Compacts `path`. Returns the image's info afterwards.
 * @throws HvError HV_ERR_INVALID_ARGUMENT (fixed or raw image), HV_ERR_INVALID_STATE (saved VHD state),
 *   HV_ERR_CORRUPT (damaged image: test-vhd --repair first).
 */
export async function optimizeDisk(path: string, progress?: Progress): Promise<VhdInfo> {
  const format = await probeFormat(path);
  if (format === 'Raw')
    throw new HvError(
      'HV_ERR_INVALID_ARGUMENT',
      `${path} is a raw image; only dynamic and differencing disks can be compacted`,
    );
  if (format === 'VHDX') await compactVhdx(path, progress);
  else await compactVhd(path, progress);
  const dev = await openDisk(path, { readOnly: true });
  try {
    return await dev.info();
  } finally {
    await dev.close();
  }
}
