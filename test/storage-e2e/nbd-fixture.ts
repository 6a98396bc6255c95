/**
 * A guest disk exported over NBD for real clients: image file → storvsp → VMBus → storvsc → NBD server.
 */

import { createStorageLoopback, type StorageLoopback } from '../../bench/storage/loopback.ts';
import { NbdServer } from '../../src/bridges/nbd/server.ts';
import type { BlockDevice } from '../../src/disk/block-device.ts';
import { guestDiskExport } from '../../src/guest/storage.ts';

export interface ExportedDisk {
  lb: StorageLoopback;
  nbd: NbdServer;
  uri: string;
  close(): Promise<void>;
}

/** Exports LUN 0 of a loopback VM backed by `disk` on a Unix socket as export `lun0`. */
export async function exportDisk(
  disk: BlockDevice,
  socketPath: string,
  subChannels = 1,
): Promise<ExportedDisk> {
  const lb = await createStorageLoopback({
    disks: [{ lun: 0, disk }],
    subChannels,
    memoryBytes: 128 * 2 ** 20,
  });
  const g = lb.guest.disks()[0];
  if (!g) throw new Error('guest saw no disk');
  const nbd = new NbdServer([guestDiskExport('lun0', g)]);
  const base = await nbd.listen({ path: socketPath });
  return {
    lb,
    nbd,
    uri: base.replace('nbd+unix:///', 'nbd+unix:///lun0'),
    async close() {
      await nbd.close();
      lb.close();
    },
  };
}
