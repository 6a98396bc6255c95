/**
 * The host half of a VM whose guest runs in a worker thread over the shared SynIC, as the cross-thread
 * tests build it: 8 MiB of guest memory, a WS2022 host profile, the SynIC doorbell on a MessageChannel.
 * Offer devices on `server`, then `startGuest` a compiled worker file (.js) with the `SharedVmInit` it needs.
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import { hostProfile } from '../../src/vmbus/host-profiles.ts';
import { GuestMemory } from '../../src/vmbus/memory.ts';
import type { VmbusServer } from '../../src/vmbus/server.ts';
import { createSharedSynicBuffer } from '../../src/vmbus/synic-shared.ts';
import { hostSideOfSharedVm, type SharedVmInit } from '../../src/vmbus/vm-link.ts';

export interface WorkerVm {
  memory: GuestMemory;
  server: VmbusServer;
  /** Starts the guest worker with `workerData(init)` (the doorbell port is transferred). */
  startGuest(file: URL, workerData: (init: SharedVmInit) => unknown): Worker;
  /** Terminates the worker and closes the host's ports. */
  close(): Promise<void>;
}

export function workerVm(): WorkerVm {
  const memory = new GuestMemory(8 * 2 ** 20);
  const synicBuffer = createSharedSynicBuffer();
  const { port1, port2 } = new MessageChannel();
  const { server, port } = hostSideOfSharedVm({
    profile: hostProfile('WS2022'),
    memory,
    synicBuffer,
    doorbell: port1,
  });
  let worker: Worker | null = null;
  return {
    memory,
    server,
    startGuest(file, workerData) {
      const init: SharedVmInit = { memoryBuffers: memory.buffers, synicBuffer, doorbell: port2 as never };
      worker = new Worker(file, { workerData: workerData(init), transferList: [port2] });
      return worker;
    },
    async close() {
      await worker?.terminate();
      port.close();
      port1.close();
    },
  };
}
