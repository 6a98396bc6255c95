import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { ringBytesForPacket } from '../../src/protocol/vmbus/packet.ts';
import { initRing, PacketView, RingReader } from '../../src/vmbus/ring.ts';
import {
  BELL,
  makePool,
  payloadLength,
  poolOffset,
  STATUS,
  STRESS_PACKETS,
  STRESS_RING_DATA_BYTES,
} from './ring-stress-shape.ts';

interface WriterResult {
  ok: boolean;
  error?: string;
  stats?: { signals: number; fullEvents: number; waits: number; lostWakeups: number };
}

test(`two threads pass ${STRESS_PACKETS} packets of 8 B..8 KiB through a 16 KiB ring intact and in order`, async (t) => {
  const ring = new SharedArrayBuffer(4096 + STRESS_RING_DATA_BYTES);
  const bells = new SharedArrayBuffer(16);
  const bell = new Int32Array(bells);
  initRing(new Uint8Array(ring), true);
  const reader = new RingReader(new Uint8Array(ring));
  // Spawned from the compiled sibling (dist/test/vmbus/ring-stress-worker.js).
  const worker = new Worker(new URL('./ring-stress-worker.js', import.meta.url), {
    workerData: { ring, bells, packets: STRESS_PACKETS },
  });
  const result = new Promise<WriterResult>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  const pool = makePool();
  const out = new PacketView();
  const size = STRESS_RING_DATA_BYTES;
  let seq = 0;
  let pos = 0; // where packet `seq` must start in the data area
  let wraps = 0;
  let emptyEvents = 0;
  let signals = 0;
  let lostWakeups = 0;
  try {
    reader.beginPolling();
    while (seq < STRESS_PACKETS) {
      let got = 0;
      while (reader.read(out)) {
        if (out.transId !== seq || out.type !== 6 || out.flags !== 0) {
          assert.fail(`packet ${seq}: got trans_id ${out.transId} type ${out.type} flags ${out.flags}`);
        }
        const len = payloadLength(seq);
        const off = poolOffset(seq);
        const p = out.payloadOffset;
        if (out.payloadLength !== ((len + 7) & ~7))
          assert.fail(`packet ${seq}: payload ${out.payloadLength} for ${len} bytes`);
        if (Buffer.compare(out.buffer.subarray(p, p + len), pool.subarray(off, off + len)) !== 0) {
          assert.fail(`packet ${seq}: payload bytes differ`);
        }
        for (let i = p + len; i < p + out.payloadLength; i++)
          if (out.buffer[i] !== 0) assert.fail(`packet ${seq}: padding`);
        const total = ringBytesForPacket(len);
        if (pos + total > size) wraps++;
        pos = (pos + total) % size;
        seq++;
        // Free space early so the blocked writer can go on while we verify.
        if (++got % 8 === 0 && reader.commit()) signals += signalWriter(bell);
      }
      if (reader.commit()) signals += signalWriter(bell);
      if (seq >= STRESS_PACKETS) break;
      if (Atomics.load(bell, BELL.status) === STATUS.failed) break;
      emptyEvents++;
      const seen = Atomics.load(bell, BELL.reader);
      if (reader.endPolling() === 0) {
        if (
          Atomics.wait(bell, BELL.reader, seen, 5000) === 'timed-out' &&
          reader.bytesAvailableToRead() > 0
        ) {
          lostWakeups++;
        }
      }
      reader.beginPolling();
    }
  } finally {
    if (seq < STRESS_PACKETS) await worker.terminate();
  }
  const w = await result;
  assert.ok(w.ok, w.error);
  await worker.terminate();
  const ws = w.stats!;
  t.diagnostic(JSON.stringify({ writer: ws, reader: { wraps, emptyEvents, signals } }));
  assert.equal(seq, STRESS_PACKETS);
  assert.equal(lostWakeups, 0, 'reader woke by timeout with data waiting');
  assert.equal(ws.lostWakeups, 0, 'writer woke by timeout with space available');
  // The edges were really exercised, many times.
  assert.ok(wraps > 10_000, `wrapped ${wraps} times`);
  assert.ok(ws.fullEvents > 10_000, `ring full ${ws.fullEvents} times`);
  assert.ok(emptyEvents > 1_000, `ring empty ${emptyEvents} times`);
  assert.ok(ws.waits > 0 && signals > 0, 'the writer blocked and was woken by the reader');
  // Signals are suppressed under load: far fewer than one per packet in each direction.
  assert.ok(
    ws.signals < STRESS_PACKETS / 4 && signals < STRESS_PACKETS / 4,
    `${ws.signals} / ${signals} signals`,
  );
});

/** The reader's "interrupt" to the writer. */
function signalWriter(bell: Int32Array): number {
  Atomics.add(bell, BELL.writer, 1);
  Atomics.notify(bell, BELL.writer);
  return 1;
}
