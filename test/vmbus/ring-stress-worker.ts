/**
 * Writer thread of test/vmbus/ring-stress.test.ts: sends STRESS_PACKETS packets in random batches, blocking
 * on a full ring with pending_send_sz and waiting on its doorbell for the reader's signal.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ringBytesForPacket } from '../../src/protocol/vmbus/packet.ts';
import { RING_WRITE_FULL, RING_WRITE_SIGNAL, RingWriter } from '../../src/vmbus/ring.ts';
import { BELL, makePool, payloadLength, poolOffset, STATUS } from './ring-stress-shape.ts';

const { ring, bells, packets } = workerData as {
  ring: SharedArrayBuffer;
  bells: SharedArrayBuffer;
  packets: number;
};
const bell = new Int32Array(bells);
const stats = { signals: 0, fullEvents: 0, waits: 0, lostWakeups: 0 };
try {
  const w = new RingWriter(new Uint8Array(ring));
  const pool = makePool();
  let seq = 0;
  while (seq < packets) {
    const batch = 1 + (seq % 7) * (seq % 5); // 1..25, varying
    w.beginBatch();
    let blockedOn = -1;
    for (let i = 0; i < batch && seq < packets; i++) {
      const len = payloadLength(seq);
      const off = poolOffset(seq);
      if (w.write(6, 0, seq, pool.subarray(off, off + len)) === RING_WRITE_FULL) {
        blockedOn = ringBytesForPacket(len);
        break;
      }
      seq++;
    }
    if (w.endBatch() === RING_WRITE_SIGNAL) {
      stats.signals++;
      Atomics.add(bell, BELL.reader, 1);
      Atomics.notify(bell, BELL.reader);
    }
    if (blockedOn < 0) continue;
    stats.fullEvents++;
    const seen = Atomics.load(bell, BELL.writer);
    w.setPendingSendSize(blockedOn);
    // Re-check after announcing: the reader may have freed space before it saw pending_send_sz.
    if (w.bytesAvailableToWrite() <= blockedOn) {
      stats.waits++;
      // The timeout is a backstop only: waking by timeout with space available means a lost wakeup.
      if (
        Atomics.wait(bell, BELL.writer, seen, 5000) === 'timed-out' &&
        w.bytesAvailableToWrite() > blockedOn
      ) {
        stats.lostWakeups++;
      }
    }
    w.clearPendingSend();
  }
  Atomics.store(bell, BELL.status, STATUS.done);
  parentPort!.postMessage({ ok: true, stats });
} catch (e) {
  Atomics.store(bell, BELL.status, STATUS.failed);
  parentPort!.postMessage({ ok: false, error: String((e as Error).stack ?? e) });
} finally {
  Atomics.add(bell, BELL.reader, 1);
  Atomics.notify(bell, BELL.reader);
}
