/**
 * One VM's storage path in this process, for tests and the benchmark: host VMBus server + storvsp over a
 * cross-thread SynIC (both ends in this thread, doorbells over a MessageChannel) to a guest VMBus client +
 * storvsc. Guest disks are what the guest sees; everything crosses the real rings and GPA-direct packets.
 */
import { MessageChannel } from 'node:worker_threads';
import { StorvscController } from '../../src/devices/storage/guest.ts';
import { StorvspController } from '../../src/devices/storage/host.ts';
import type { BlockDevice } from '../../src/disk/block-device.ts';
import { Guid } from '../../src/protocol/guid.ts';
import { HV_SCSI_GUID, HV_SYNTHFC_GUID } from '../../src/protocol/vmbus/device-guids.ts';
import { STORVSC_RING_BYTES } from '../../src/protocol/vstor/constants.ts';
import { VmbusClient } from '../../src/vmbus/client.ts';
import { type HostProfileName, hostProfile } from '../../src/vmbus/host-profiles.ts';
import { GuestMemory } from '../../src/vmbus/memory.ts';
import { VmbusServer } from '../../src/vmbus/server.ts';
import { createSharedSynicBuffer, SharedSynicPort } from '../../src/vmbus/synic-shared.ts';

export interface StorageLoopback {
  host: StorvspController;
  guest: StorvscController;
  server: VmbusServer;
  client: VmbusClient;
  memory: GuestMemory;
  close(): void;
}

export async function createStorageLoopback(o: {
  disks: { lun: number; disk: BlockDevice }[];
  profile?: HostProfileName;
  subChannels?: number;
  memoryBytes?: number;
  versions?: readonly number[];
  /** Virtual Fibre Channel HBA with these WWNs instead of a SCSI controller. */
  fc?: { portWwn: Uint8Array; nodeWwn: Uint8Array };
}): Promise<StorageLoopback> {
  const profile = hostProfile(o.profile ?? 'WS2022');
  const memory = new GuestMemory(o.memoryBytes ?? 64 * 2 ** 20);
  const sab = createSharedSynicBuffer();
  const { port1, port2 } = new MessageChannel();
  const hostPort = new SharedSynicPort(sab, 'host', port1);
  const guestPort = new SharedSynicPort(sab, 'guest', port2);
  const server = new VmbusServer({ synic: hostPort, memory, profile });
  const host = new StorvspController({
    server,
    instance: Guid.parse('f8b3781b-1e82-4818-a1c3-63d806ec15bb'),
    profile: profile.name,
    maxSubChannels: o.subChannels ?? 1,
    ...(o.fc ? { fc: o.fc } : {}),
  });
  for (const d of o.disks) host.attach(d.lun, d.disk, diskIdFor(d.lun));
  host.offer();
  const client = new VmbusClient({ synic: guestPort, memory });
  const guest = new StorvscController({
    ...(o.fc ? { fc: true } : {}),
    memory,
    subChannels: o.subChannels ?? 1,
    ...(o.versions ? { versions: o.versions } : {}),
  });
  client.registerDriver(o.fc ? HV_SYNTHFC_GUID : HV_SCSI_GUID, {
    name: 'hv_storvsc',
    sendRingBytes: STORVSC_RING_BYTES,
    recvRingBytes: STORVSC_RING_BYTES,
    attach: (offer, ch) => guest.attachChannel(offer.subChannelIndex, ch),
  });
  const close = () => {
    hostPort.close();
    guestPort.close();
    port1.close();
    port2.close();
  };
  try {
    await client.connect();
    await guest.ready;
  } catch (e) {
    close();
    throw e;
  }
  return {
    host,
    guest,
    server,
    client,
    memory,
    close,
  };
}

/** A stable 16-byte disk id per LUN (tests). */
export function diskIdFor(lun: number): Uint8Array {
  const id = new Uint8Array(16);
  id[0] = 0x68;
  id[15] = lun;
  return id;
}
