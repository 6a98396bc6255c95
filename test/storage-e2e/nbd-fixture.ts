/**
 * A guest disk exported over NBD for real clients: image file → storvsp → VMBus → storvsc → NBD server.
 */
import type { BlockDevice } from '../../src/disk/block-device.ts';
import type { GuestDisk } from '../../src/devices/storage/guest.ts';
import { type NbdExport, NbdServer } from '../../src/bridges/nbd/server.ts';
import { createStorageLoopback, type StorageLoopback } from '../../bench/storage/loopback.ts';

/** NbdExport view of a guest disk (size follows online resizes). */
export function guestDiskExport(name: string, d: GuestDisk): NbdExport {
  return {
    name,
    description: `${d.vendor} ${d.product} LUN ${d.lun}`,
    get size() {
      return d.size;
    },
    get blockSize() {
      return d.blockSize;
    },
    read: (b, o) => d.read(b, o),
    write: (b, o) => d.write(b, o),
    flush: () => d.flush(),
    trim: (o, l) => d.trim(o, l),
  };
}

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
