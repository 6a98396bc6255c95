/**
 * Guest side of ring-full.test.ts's cross-thread case, run in a worker (compiled to dist/): a
 * {@link FloodGuest} that stalls its reader now and then; reports progress in a shared word and the result
 * when every echo came back.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { guestSideOfSharedVm, type SharedVmInit } from '../../src/vmbus/vm-link.ts';
import { type Backlog, busy, FLOOD_RING_BYTES, FloodGuest, pingGuestHandler } from './flood-fixtures.ts';
import { ECHO_CLASS } from './vmbus-fixtures.ts';

const { init, total, mode } = workerData as { init: SharedVmInit; total: number; mode: 'flood' | 'ping' };
let progress: Int32Array | null = null;
let ping: Backlog | null = null;
const guest = new FloodGuest(total, (i) => {
  if (progress) Atomics.store(progress, 0, i);
  if (i % 47 === 0) busy(300);
  if (i + 1 === total) queueMicrotask(report);
});

function report(): void {
  const b = guest.backlog!;
  parentPort!.postMessage({
    done: true,
    received: guest.received,
    error: guest.error,
    refused: b.refused,
    spurious: b.spurious,
  });
}

parentPort!.on('message', (m: { progress?: SharedArrayBuffer; report?: boolean }) => {
  if (m.report) {
    const b = ping as Backlog | null;
    parentPort!.postMessage({ done: true, refused: b?.refused ?? 0, spurious: b?.spurious ?? 0 });
    return;
  }
  if (!m.progress) return;
  progress = new Int32Array(m.progress);
  const { client } = guestSideOfSharedVm(init);
  client.registerDriver(ECHO_CLASS, {
    name: 'flood',
    sendRingBytes: FLOOD_RING_BYTES,
    recvRingBytes: FLOOD_RING_BYTES,
    attach: (_offer, ch) =>
      mode === 'ping'
        ? pingGuestHandler(ch, (b) => {
            ping = b;
          })
        : guest.attach(ch),
  });
  client
    .connect()
    .catch((e: Error) => parentPort!.postMessage({ done: true, error: e.message, received: 0 }));
});
