/**
 * The shared SynIC's nap (`napMicros`): after a burst of work a receiver holds idle = 0 until its event
 * loop has run the burst's follow-ups (microtasks), so a reply sent then costs no doorbell message; the
 * nap itself is bounded (here the peer shares the thread, so every nap runs out) and nothing is lost.
 * Without a nap the same exchange rings the doorbell again (the module comment's rule).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import { createSharedSynicBuffer, SharedSynicPort } from '../../src/vmbus/synic-shared.ts';
import { counting } from './vmbus-fixtures.ts';

/** Guest signals event 1; the host's handler answers in a microtask with event 2, which the guest counts. */
async function exchange(napMicros: number, rounds: number) {
  const sab = createSharedSynicBuffer(4);
  const { port1, port2 } = new MessageChannel();
  const hostBell = counting(port1);
  const guestBell = counting(port2);
  const host = new SharedSynicPort(sab, 'host', hostBell, { napMicros });
  const guest = new SharedSynicPort(sab, 'guest', guestBell, { napMicros });
  const seen: number[] = [];
  let done: () => void = () => {};
  const all = new Promise<void>((r) => {
    done = r;
  });
  host.listen({
    onMessage: () => {},
    onEvent: (i) => {
      seen.push(i);
      queueMicrotask(() => host.signalEvent(2));
    },
  });
  let n = 0;
  guest.listen({
    onMessage: () => {},
    onEvent: (i) => {
      seen.push(i);
      if (++n === rounds) done();
      // Sent from the guest's handler while the host holds its nap: no doorbell when napping.
      else queueMicrotask(() => guest.signalEvent(1));
    },
  });
  guest.signalEvent(1);
  await all;
  host.close();
  guest.close();
  port1.close();
  return { seen, hostRings: hostBell.rings, guestRings: guestBell.rings };
}

test('shared SynIC nap: replies sent in the follow-up microtasks cost no doorbell, none is lost', async () => {
  const rounds = 50;
  const napping = await exchange(20, rounds);
  assert.deepEqual(
    napping.seen,
    Array.from({ length: 2 * rounds }, (_, i) => (i % 2 === 0 ? 1 : 2)),
  );
  const plain = await exchange(0, rounds);
  assert.deepEqual(plain.seen, napping.seen);
  // Without a nap every hand-off finds its receiver idle: one doorbell per event.
  assert.equal(plain.hostRings + plain.guestRings, 2 * rounds);
  // With it, only the first wake-up of each side rings; later ones find the receiver holding its nap.
  assert.deepEqual([napping.hostRings, napping.guestRings], [1, 1]);
});
