/**
 * Guest side of bench/ring: writes `count` inband packets of `size` bytes as fast as the ring allows,
 * in batches, blocking on a full ring with pending_send_sz and its doorbell (as the stress test does).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ringBytesForPacket } from '../../src/protocol/vmbus/packet.ts';
import { RING_WRITE_FULL, RING_WRITE_SIGNAL, RingWriter } from '../../src/vmbus/ring.ts';
import { BELL } from './shared.ts';

const { ring, bells, size, count, batch, spin } = workerData as {
  ring: SharedArrayBuffer;
  bells: SharedArrayBuffer;
  size: number;
  count: number;
  /** Packets per published batch. */
  batch: number;
  /** Polls of the ring before sleeping on the doorbell. */
  spin: number;
};
const bell = new Int32Array(bells);
const w = new RingWriter(new Uint8Array(ring));
const payload = new Uint8Array(size).map((_, i) => i * 13);
const need = ringBytesForPacket(size);
// Hysteresis, as netvsc's queue stop/wake watermarks: sleep until a quarter of the ring is free, not one packet.
const wakeAt = Math.max(need, (w.dataSize / 4) & ~7);
let signals = 0;
let waits = 0;

parentPort!.postMessage('ready');
Atomics.wait(bell, BELL.go, 0);
let seq = 0;
while (seq < count) {
  w.beginBatch();
  let full = false;
  for (let i = 0; i < batch && seq < count; i++) {
    if (w.write(6, 0, seq, payload) === RING_WRITE_FULL) {
      full = true;
      break;
    }
    seq++;
  }
  if (w.endBatch() === RING_WRITE_SIGNAL) {
    signals++;
    Atomics.add(bell, BELL.reader, 1);
    Atomics.notify(bell, BELL.reader);
  }
  if (!full) continue;
  let polls = spin;
  while (polls-- > 0 && w.bytesAvailableToWrite() <= wakeAt);
  if (polls > 0) continue;
  const seen = Atomics.load(bell, BELL.writer);
  w.setPendingSendSize(wakeAt);
  if (w.bytesAvailableToWrite() <= wakeAt) {
    waits++;
    Atomics.wait(bell, BELL.writer, seen, 1000);
  }
  w.clearPendingSend();
}
parentPort!.postMessage({ signals, waits });
