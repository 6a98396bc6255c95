/**
 * The guest's storage stack: Linux's `hv_storvsc` driver (classes HV_SCSI_GUID and HV_SYNTHFC_GUID, 128 KiB
 * rings each way as storvsc_ringbuffer_size) for every synthetic SCSI controller offered, its disks kept by controller
 * instance, and a `disks` report to the host after each scan so Get-VM can show the guest's view.
 * Sub-channels of a controller (same instance, sub_channel_index > 0) join its controller.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { type NbdExport, NbdServer } from '../bridges/nbd/server.ts';
import { type GuestDisk, StorvscController } from '../devices/storage/guest.ts';
import { HV_SCSI_GUID, HV_SYNTHFC_GUID } from '../protocol/vmbus/device-guids.ts';
import { STORVSC_RING_BYTES } from '../protocol/vstor/constants.ts';
import type { VmbusClient } from '../vmbus/client.ts';
import type { GuestMemory } from '../vmbus/memory.ts';

/** A guest disk as an NBD export named `name` (its size follows online resizes). */
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

/** One disk as the guest sees it (what the `disks` report carries). */
export interface GuestDiskReport {
  /** Controller instance GUID. */
  controller: string;
  lun: number;
  /** Bytes, from READ CAPACITY(16). */
  size: number;
  blockSize: number;
  vendor: string;
  product: string;
}

export class GuestStorage {
  readonly #controllers = new Map<string, StorvscController>();
  readonly #report: (disks: GuestDiskReport[]) => void;
  readonly #exports = new Map<string, NbdServer>();

  /** Registers hv_storvsc on `client`; `report` gets the full disk list after every scan. */
  constructor(client: VmbusClient, memory: GuestMemory, report: (disks: GuestDiskReport[]) => void) {
    this.#report = report;
    for (const [classId, fc] of [
      [HV_SCSI_GUID, false],
      [HV_SYNTHFC_GUID, true],
    ] as const) {
      client.registerDriver(classId, {
        name: 'hv_storvsc',
        sendRingBytes: STORVSC_RING_BYTES,
        recvRingBytes: STORVSC_RING_BYTES,
        attach: (offer, ch) => {
          const key = offer.ifInstance.toString();
          let c = this.#controllers.get(key);
          if (!c || offer.subChannelIndex === 0) {
            c = new StorvscController({ memory, subChannels: 1, fc, onDisksChanged: () => this.#publish() });
            this.#controllers.set(key, c);
          }
          return c.attachChannel(offer.subChannelIndex, ch);
        },
        detach: (offer) => {
          if (offer.subChannelIndex === 0) {
            this.#controllers.delete(offer.ifInstance.toString());
            this.#publish();
          }
        },
      });
    }
  }

  /** Every disk of every controller. */
  disks(): { controller: string; disk: GuestDisk }[] {
    const out: { controller: string; disk: GuestDisk }[] = [];
    for (const [controller, c] of this.#controllers)
      for (const disk of c.disks()) out.push({ controller, disk });
    return out;
  }

  /**
   * Host commands for storage: `{type: 'nbd-export', controller, lun, socket}` serves that disk over NBD
   * (export name `lun<N>`) on the Unix socket path; `{type: 'nbd-unexport', socket}` stops it. Malformed
   * commands are ignored; a disk that does not exist (yet) produces no socket.
   */
  command(m: unknown): void {
    if (typeof m !== 'object' || m === null) return;
    const c = m as Record<string, unknown>;
    if (c.type === 'nbd-unexport' && typeof c.socket === 'string') {
      const s = this.#exports.get(c.socket);
      this.#exports.delete(c.socket);
      void s?.close();
      return;
    }
    if (
      c.type !== 'nbd-export' ||
      typeof c.socket !== 'string' ||
      typeof c.controller !== 'string' ||
      !Number.isInteger(c.lun)
    )
      return;
    const found = this.disks().find((d) => d.controller === c.controller && d.disk.lun === c.lun);
    if (!found || this.#exports.has(c.socket)) return;
    const d = found.disk;
    const server = new NbdServer([guestDiskExport(`lun${d.lun}`, d)]);
    this.#exports.set(c.socket, server);
    mkdirSync(dirname(c.socket), { recursive: true, mode: 0o700 });
    server.listen({ path: c.socket }).catch(() => this.#exports.delete(c.socket as string));
  }

  #publish(): void {
    this.#report(
      this.disks().map(({ controller, disk }) => ({
        controller,
        lun: disk.lun,
        size: disk.size,
        blockSize: disk.blockSize,
        vendor: disk.vendor,
        product: disk.product,
      })),
    );
  }
}
