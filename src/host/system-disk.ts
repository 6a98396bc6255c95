/**
 * Creates the virtual hard disks a new VM's configuration names (New-VM -NewVHDPath): a dynamic image in
 * the format its extension says (`.vhdx` → VHDX), through the disk library. An existing file is an error,
 * as New-VM refuses to overwrite a VHD.
 */
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createDisk } from '../disk/open.ts';
import type { HardDriveConfig } from './vm-config.ts';

/**
 * Creates each image file.
 * @throws HvError `HV_ERR_ALREADY_EXISTS` when a file is already there, `HV_ERR_INVALID_ARGUMENT` for a
 *   size or extension the format does not accept.
 */
export async function createHardDrives(drives: readonly HardDriveConfig[]): Promise<void> {
  for (const d of drives) {
    await mkdir(dirname(d.path), { recursive: true });
    const dev = await createDisk(d.path, {
      size: d.sizeBytes,
      type: d.vhdType === 'Fixed' ? 'fixed' : 'dynamic',
    });
    await dev.close();
  }
}
