/**
 * RingChannel busy-polling (src/vmbus/ring-channel.ts), in one thread with the peer flagged as concurrent
 * so each step is deterministic: what the peer sees in interrupt_mask (control page word 2,
 * vmbus-core-ics.md §2.1) and whether its sends raise a signal, per Linux hv_begin_read/hv_end_read.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { IncomingPacket } from '../../src/vmbus/channel-io.ts';
import { initRing } from '../../src/vmbus/ring.ts';
import { BUSY_POLL_MISSES, RingChannel } from '../../src/vmbus/ring-channel.ts';

const MASK = 2;
const READ = 1;
const WRITE = 0;

/** Two channels over two 1-page rings: `a` writes ring `ab` and reads `ba`; `b` the opposite. */
function pair(concurrent: boolean) {
  const ring = () => {
    const mem = new Uint8Array(new SharedArrayBuffer(4096 * 2));
    initRing(mem, true);
    return { mem, ctl: new Int32Array(mem.buffer, 0, 1024) };
  };
  const ab = ring();
  const ba = ring();
  const signals = { toA: 0, toB: 0 };
  const got: { a: number[]; b: number[] } = { a: [], b: [] };
  const a = new RingChannel(
    1,
    ab.mem,
    ba.mem,
    () => signals.toB++,
    () => {},
    concurrent,
  );
  const b = new RingChannel(
    1,
    ba.mem,
    ab.mem,
    () => signals.toA++,
    () => {},
    concurrent,
  );
  let onB: (p: IncomingPacket) => void = () => {};
  a.attach({ onPacket: (p) => got.a.push(p.transId) });
  b.attach({
    onPacket: (p) => {
      got.b.push(p.transId);
      onB(p);
    },
  });
  a.activate();
  b.activate();
  const payload = new Uint8Array(64);
  return {
    a,
    b,
    ab,
    signals,
    got,
    sendToB: (id: number) => assert.equal(a.send(6, 0, id, payload), true),
    onB: (f: (p: IncomingPacket) => void) => {
      onB = f;
    },
  };
}

test('a busy-polling reader keeps interrupt_mask set after a drain and takes the next packet without an interrupt', async () => {
  const p = pair(true);
  p.sendToB(1);
  assert.equal(p.signals.toB, 1, 'the first packet finds the reader idle and signals');
  p.b.busyPoll(50_000); // a window far longer than this test's steps
  p.b.onInterrupt();
  assert.deepEqual(p.got.b, [1]);
  assert.equal(Atomics.load(p.ab.ctl, MASK), 1, 'still polling after the drain');
  p.sendToB(2);
  assert.equal(p.signals.toB, 1, 'no signal while the reader polls');
  await nextTurn();
  assert.deepEqual(p.got.b, [1, 2], 'the poll picked the packet up by itself');
  p.b.busyPoll(0);
  await nextTurn();
  await nextTurn();
  assert.equal(Atomics.load(p.ab.ctl, MASK), 0, 'polling off: interrupts again');
  p.sendToB(3);
  assert.equal(p.signals.toB, 2);
});

test('after an empty window the reader unmasks, so the next packet signals', async () => {
  const p = pair(true);
  p.sendToB(1);
  p.b.busyPoll(1);
  p.b.onInterrupt();
  await nextTurn(); // the 1 µs window passes with nothing
  assert.equal(Atomics.load(p.ab.ctl, MASK), 0);
  p.sendToB(2);
  assert.equal(p.signals.toB, 2);
  p.b.onInterrupt();
  assert.deepEqual(p.got.b, [1, 2]);
});

test('a peer that stays slow makes the reader rest: after the empty windows it unmasks right after each drain', async () => {
  const p = pair(true);
  p.b.busyPoll(1);
  for (let i = 0; i < BUSY_POLL_MISSES; i++) {
    p.sendToB(i);
    p.b.onInterrupt();
    await nextTurn();
  }
  p.sendToB(99);
  p.b.onInterrupt();
  assert.equal(Atomics.load(p.ab.ctl, MASK), 0, 'resting: no poll after this drain');
});

test('busyPoll does nothing when the peer shares the thread', () => {
  const p = pair(false);
  p.b.busyPoll(50_000);
  p.sendToB(1);
  p.b.onInterrupt();
  assert.equal(Atomics.load(p.ab.ctl, MASK), 0);
  p.sendToB(2);
  assert.equal(p.signals.toB, 2);
});

test("while polling, a request's room is freed before the device sees it (its answer may be the next request's trigger)", () => {
  const p = pair(true);
  p.b.busyPoll(50_000);
  const seen: number[] = [];
  p.onB(() => seen.push(Atomics.load(p.ab.ctl, READ) - Atomics.load(p.ab.ctl, WRITE)));
  p.sendToB(1);
  p.sendToB(2);
  p.b.onInterrupt();
  // read_index already past packet 1 while it is handled (not all of the batch), and past both at the end.
  assert.equal(seen.length, 2);
  assert.ok(seen[0]! < 0, 'packet 2 still unread while packet 1 is handled');
  assert.equal(seen[1], 0, 'everything read is published while the last packet is handled');
  p.b.busyPoll(0);
});

test("turning busy-polling on while idle starts polling at once: the peer's next packet needs no signal", async () => {
  const p = pair(true);
  p.b.busyPoll(50_000);
  assert.equal(Atomics.load(p.ab.ctl, MASK), 1);
  p.sendToB(1);
  assert.equal(p.signals.toB, 0);
  await nextTurn();
  assert.deepEqual(p.got.b, [1]);
  p.b.busyPoll(0);
  await nextTurn();
});
