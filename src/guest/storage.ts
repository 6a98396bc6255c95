/**
 * The guest's storage stack: Linux's `hv_storvsc` driver (class HV_SCSI_GUID, 128 KiB rings each way as
 * storvsc_ringbuffer_size) for every synthetic SCSI controller offered, its disks kept by controller
 * instance, and a `disks` report to the host after each scan so Get-VM can show the guest's view.
 * Sub-channels of a controller (same instance, sub_channel_index > 0) join its controller.
 */
import { type GuestDisk, StorvscController } from '../devices/storage/guest.ts';
import { STORVSC_RING_BYTES } from '../protocol/vstor/constants.ts';
import { HV_SCSI_GUID } from '../protocol/vmbus/device-guids.ts';
import type { VmbusClient } from '../vmbus/client.ts';
import type { GuestMemory } from '../vmbus/memory.ts';

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

  /** Registers hv_storvsc on `client`; `report` gets the full disk list after every scan. */
  constructor(client: VmbusClient, memory: GuestMemory, report: (disks: GuestDiskReport[]) => void) {
    this.#report = report;
    client.registerDriver(HV_SCSI_GUID, {
      name: 'hv_storvsc',
      sendRingBytes: STORVSC_RING_BYTES,
      recvRingBytes: STORVSC_RING_BYTES,
      attach: (offer, ch) => {
        const key = offer.ifInstance.toString();
        let c = this.#controllers.get(key);
        if (!c || offer.subChannelIndex === 0) {
          c = new StorvscController({ memory, subChannels: 1, onDisksChanged: () => this.#publish() });
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

  /** Every disk of every controller. */
  disks(): { controller: string; disk: GuestDisk }[] {
    const out: { controller: string; disk: GuestDisk }[] = [];
    for (const [controller, c] of this.#controllers)
      for (const disk of c.disks()) out.push({ controller, disk });
    return out;
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
