/**
 * SynIC transports: HvPostMessage statuses (Linux hyperv-tlfs.h HV_STATUS_INVALID_CONNECTION_ID 18,
 * HV_STATUS_INSUFFICIENT_BUFFERS 19), slot-free retry, event-flag coalescing, and the shared transport's
 * doorbell rule (one MessagePort message per idle→busy transition of the receiver).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import {
  HV_STATUS_INSUFFICIENT_BUFFERS,
  HV_STATUS_INVALID_CONNECTION_ID,
  HV_STATUS_SUCCESS,
} from '../../src/protocol/vmbus/constants.ts';
import { DeterministicSynic, type SynicHandler } from '../../src/vmbus/synic.ts';
import { createSharedSynicBuffer, SharedSynicPort } from '../../src/vmbus/synic-shared.ts';
import { counting } from './vmbus-fixtures.ts';

function recorder() {
  const r = { messages: [] as [number, number[]][], events: [] as number[], slotFree: 0 };
  const h: SynicHandler = {
    onMessage: (c, p) => r.messages.push([c, [...p]]),
    onEvent: (i) => r.events.push(i),
    onSlotFree: () => r.slotFree++,
  };
  return { r, h };
}

test('deterministic SynIC: connection ids, queue limit with slot-free, coalesced events, freeze', () => {
  const s = new DeterministicSynic(2);
  const host = recorder();
  const guest = recorder();
  s.host.listen(host.h);
  s.guest.listen(guest.h);
  s.host.setConnectionIds([1, 4]);
  assert.equal(s.guest.postMessage(2, new Uint8Array([1])), HV_STATUS_INVALID_CONNECTION_ID);
  assert.equal(s.guest.postMessage(4, new Uint8Array([1])), HV_STATUS_SUCCESS);
  assert.equal(s.guest.postMessage(1, new Uint8Array([2])), HV_STATUS_SUCCESS);
  assert.equal(s.guest.postMessage(1, new Uint8Array([3])), HV_STATUS_INSUFFICIENT_BUFFERS);
  s.host.signalEvent(5);
  s.host.signalEvent(5);
  s.host.signalEvent(2048 + 7);
  assert.equal(s.run(), 3);
  assert.deepEqual(host.r.messages, [
    [4, [1]],
    [1, [2]],
  ]);
  assert.equal(guest.r.slotFree, 1, 'the refused sender is told once a slot frees');
  assert.deepEqual(guest.r.events, [5, 7], 'bits coalesce; the index is taken modulo 2048');
  s.freeze('host');
  s.guest.postMessage(1, new Uint8Array([9]));
  assert.equal(s.run(), 0);
  s.freeze('host', false);
  assert.equal(s.run(), 1);
});

test('shared SynIC: a burst costs one doorbell, order is kept, full queues retry on slot-free', async () => {
  const sab = createSharedSynicBuffer(4);
  const { port1, port2 } = new MessageChannel();
  const hostBell = counting(port1);
  const guestBell = counting(port2);
  const host = new SharedSynicPort(sab, 'host', hostBell);
  const guest = new SharedSynicPort(sab, 'guest', guestBell);
  const hr = recorder();
  const gr = recorder();
  let delivered = 0;
  let done: () => void = () => {};
  const all = new Promise<void>((r) => {
    done = r;
  });
  host.listen({
    ...hr.h,
    onMessage: (c, p) => {
      hr.h.onMessage(c, p);
      if (++delivered === 10) done();
    },
  });
  host.setConnectionIds([1]);
  const pending = Array.from({ length: 10 }, (_, i) => new Uint8Array([i]));
  const flush = () => {
    while (pending.length > 0 && guest.postMessage(1, pending[0]!) === HV_STATUS_SUCCESS) pending.shift();
  };
  let gotEvent: () => void = () => {};
  const event = new Promise<void>((r) => {
    gotEvent = r;
  });
  guest.listen({
    ...gr.h,
    onSlotFree: flush,
    onEvent: (i) => {
      gr.h.onEvent(i);
      gotEvent();
    },
  });
  assert.equal(guest.postMessage(3, new Uint8Array([0])), HV_STATUS_INVALID_CONNECTION_ID);
  flush();
  assert.equal(pending.length, 6, 'four slots, then HV_STATUS_INSUFFICIENT_BUFFERS');
  assert.equal(guestBell.rings, 1, 'one doorbell for the burst');
  host.signalEvent(3);
  host.signalEvent(3);
  await all;
  assert.deepEqual(
    hr.r.messages.map(([c, p]) => [c, p[0]]),
    Array.from({ length: 10 }, (_, i) => [1, i]),
  );
  await event;
  assert.deepEqual(gr.r.events, [3], 'two signals before the guest ran: one coalesced event');
  host.close();
  guest.close();
  port1.close();
  port2.close();
});
