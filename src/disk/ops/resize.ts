/** Resize-VHD: grow, shrink, or shrink to MinimumSize. */
import { HvError } from '../../protocol/errors.ts';
import type { VhdInfo } from '../block-device.ts';
import { openDisk } from '../open.ts';

export interface ResizeOptions {
  /** New virtual size in bytes. */
  sizeBytes?: number;
  /** Shrink to the smallest size holding all data (rounded up to the logical sector size). */
  toMinimumSize?: boolean;
}

/**
 * Resizes the image at `path` in place.
 * @throws HvError HV_ERR_INVALID_ARGUMENT (no or both size options, shrink below data),
 *   HV_ERR_INVALID_STATE (saved state), and open errors.
 */
export async function resizeDisk(path: string, opts: ResizeOptions): Promise<VhdInfo> {
  if ((opts.sizeBytes === undefined) === !opts.toMinimumSize) {
    throw new HvError('HV_ERR_INVALID_ARGUMENT', 'give exactly one of --size-bytes or --to-minimum-size');
  }
  const dev = await openDisk(path);
  try {
    let size = opts.sizeBytes ?? 0;
    if (opts.toMinimumSize) {
      const min = (await dev.info()).MinimumSize ?? dev.size;
      size = Math.max(dev.logicalSectorSize, Math.ceil(min / dev.logicalSectorSize) * dev.logicalSectorSize);
    }
    if (!Number.isSafeInteger(size) || size <= 0 || size % dev.logicalSectorSize !== 0) {
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `size ${size} must be a positive multiple of the ${dev.logicalSectorSize}-byte logical sector`,
      );
    }
    await dev.resize(size);
    await dev.flush();
    return await dev.info();
  } finally {
    await dev.close();
  }
}
