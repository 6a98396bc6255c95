/**
 * Full rings on both ends (vmbus-core-ics.md §2.3–2.4, Linux hv_pkt_iter_close / OpenVMM outgoing ring):
 * a sender the ring refuses sets pending_send_sz, the reader signals when free space crosses it, and the
 * sender's `onWritable` fires — once there is room for the refused packet, never before, and never lost.
 * Thousands of packets of 4000..11992 bytes through 12288-byte rings, echoed by the host, with each side
 * stalling for a while (deterministic mode: frozen deliveries; cross-thread: a busy reader).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RING_WORD } from '../../src/protocol/vmbus/ring-control.ts';
import { hostProfile } from '../../src/vmbus/host-profiles.ts';
import type { GuestMemory } from '../../src/vmbus/memory.ts';
import { createDeterministicVm } from '../../src/vmbus/vm-link.ts';
import {
  type Backlog,
  busy,
  FLOOD_RING_BYTES,
  FloodGuest,
  floodEchoDevice,
  pingHostDevice,
} from './flood-fixtures.ts';
import { ECHO_CLASS, ECHO_INSTANCE } from './vmbus-fixtures.ts';
import { workerVm } from './worker-vm.ts';

/** pending_send_sz of both rings of the only open channel (guest→host, host→guest). */
function pendingSendSizes(memory: GuestMemory, ringPfn: number): [number, number] {
  const view = memory.pageView(ringPfn, (2 * FLOOD_RING_BYTES) / 4096)!;
  const dv = new DataView(view.buffer, view.byteOffset, view.length);
  return [
    dv.getUint32(RING_WORD.pending_send_sz * 4, true),
    dv.getUint32(FLOOD_RING_BYTES + RING_WORD.pending_send_sz * 4, true),
  ];
}

test('deterministic: 3000 near-ring-size packets echoed while each side is frozen in turns; onWritable only when the refused packet fits', async () => {
  const vm = createDeterministicVm({ profile: hostProfile('WS2022') });
  let host: Backlog | null = null;
  vm.server.offer(
    { interfaceType: ECHO_CLASS, instance: ECHO_INSTANCE },
    floodEchoDevice((b) => {
      host = b;
    }),
  );
  const guest = new FloodGuest(3000);
  vm.client.registerDriver(ECHO_CLASS, {
    name: 'flood',
    sendRingBytes: FLOOD_RING_BYTES,
    recvRingBytes: FLOOD_RING_BYTES,
    attach: (_offer, ch) => guest.attach(ch),
  });
  // connect() takes the 3 monitor pages from the lowest free page, the channel's rings follow them.
  const probe = vm.memory.allocPages(1);
  vm.memory.freePages(probe, 1);
  const connected = vm.client.connect();
  let seed = 1;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  // Alternate: a few deliveries with one side frozen (its ring fills), then both running.
  for (let round = 0; guest.received < guest.total && round < 200_000; round++) {
    const frozen = rand(3); // 0 host, 1 guest, 2 none
    vm.synic.freeze('host', frozen === 0);
    vm.synic.freeze('guest', frozen === 1);
    const steps = 1 + rand(6);
    let moved = 0;
    for (let s = 0; s < steps && vm.synic.step(); s++) moved++;
    if (moved === 0 && frozen === 2) break; // nothing deliverable with both running: stalled
  }
  vm.synic.freeze('host', false);
  vm.synic.freeze('guest', false);
  vm.run();
  assert.equal(await connected, 0x00050003);
  assert.equal(guest.error, null);
  assert.equal(
    guest.received,
    guest.total,
    `stalled: ${guest.received}/${guest.total} echoed, guest backlog ${guest.backlog?.length}, host backlog ${host!.length}`,
  );
  const h = host! as Backlog;
  const g = guest.backlog!;
  assert.ok(
    h.refused > 100 && g.refused > 100,
    `both rings filled (host ${h.refused}, guest ${g.refused} refusals)`,
  );
  assert.equal(h.spurious, 0, `host onWritable without room ${h.spurious} of ${h.writable} times`);
  assert.equal(g.spurious, 0, `guest onWritable without room ${g.spurious} of ${g.writable} times`);
  // Nobody waits any more: both writers cleared pending_send_sz.
  assert.deepEqual(pendingSendSizes(vm.memory, probe + 3), [0, 0]);
  assert.equal(vm.server.stats.protocolErrors + vm.client.stats.protocolErrors, 0);
});

test('cross-thread: 20000 near-ring-size packets echoed between a busy worker guest and a busy host, no stall', async () => {
  const vm = workerVm();
  const { server } = vm;
  let host: Backlog | null = null;
  server.offer(
    { interfaceType: ECHO_CLASS, instance: ECHO_INSTANCE },
    floodEchoDevice(
      (b) => {
        host = b;
      },
      (i) => {
        if (i % 61 === 0) busy(300);
      },
    ),
  );
  const worker = vm.startGuest(new URL('./ring-full-guest-worker.js', import.meta.url), (init) => ({
    init,
    total: 20000,
    mode: 'flood',
  }));
  const progress = new Int32Array(new SharedArrayBuffer(4));
  worker.postMessage({ progress: progress.buffer });
  try {
    const result = await new Promise<{
      received: number;
      error: string | null;
      refused: number;
      spurious: number;
      stalled?: boolean;
    }>((resolve, reject) => {
      worker.on('message', (m: { done?: boolean }) => {
        if (m.done) resolve(m as never);
      });
      worker.once('error', reject);
      // Watchdog: a stall is no progress for 10 s (a full run takes a second or two).
      let last = -1;
      const t = setInterval(() => {
        const now = Atomics.load(progress, 0);
        if (now === last) {
          clearInterval(t);
          resolve({ received: now, error: null, refused: 0, spurious: 0, stalled: true });
        }
        last = now;
      }, 10_000);
      worker.once('exit', () => clearInterval(t));
      worker.on('message', (m: { done?: boolean }) => {
        if (m.done) clearInterval(t);
      });
    });
    const h = host! as Backlog;
    assert.equal(
      result.stalled,
      undefined,
      `stalled at ${result.received}/20000 echoed (host backlog ${h.length}, host refusals ${h.refused}, onWritable ${h.writable})`,
    );
    assert.equal(result.error, null);
    assert.equal(result.received, 20000);
    assert.ok(
      h.refused > 100 && result.refused > 100,
      `both rings filled (host ${h.refused}, guest ${result.refused})`,
    );
    assert.equal(h.spurious, 0, `host onWritable without room ${h.spurious} of ${h.writable} times`);
    assert.equal(result.spurious, 0, 'guest onWritable without room');
    assert.equal(server.stats.protocolErrors, 0);
  } finally {
    await vm.close();
  }
});

test('cross-thread: 20000 round trips with one request outstanding (file copy pattern) between a worker guest and the host, no stall', async () => {
  const vm = workerVm();
  const { server } = vm;
  const total = 20000;
  const state = { replies: 0, error: null as string | null, backlog: null as Backlog | null };
  server.offer({ interfaceType: ECHO_CLASS, instance: ECHO_INSTANCE }, pingHostDevice(total, state));
  const worker = vm.startGuest(new URL('./ring-full-guest-worker.js', import.meta.url), (init) => ({
    init,
    total,
    mode: 'ping',
  }));
  worker.postMessage({ progress: new SharedArrayBuffer(4) });
  try {
    // Done, or stalled: no reply for 5 s (a full run takes about a second).
    let last = -1;
    while (state.replies < total && state.replies !== last && state.error === null) {
      last = state.replies;
      for (let t = 0; t < 50 && state.replies < total; t++) await new Promise((r) => setTimeout(r, 100));
    }
    const h = state.backlog!;
    assert.equal(state.error, null);
    assert.equal(
      state.replies,
      total,
      `stalled after ${state.replies} replies (host refusals ${h.refused}, host backlog ${h.length})`,
    );
    const g = await new Promise<{ refused: number; spurious: number }>((resolve) => {
      worker.on('message', (m: { done?: boolean }) => m.done && resolve(m as never));
      worker.postMessage({ report: true });
    });
    assert.ok(h.refused > 100 && g.refused > 100, `rings filled (host ${h.refused}, guest ${g.refused})`);
    assert.equal(h.spurious + g.spurious, 0, 'onWritable without room');
    assert.equal(server.stats.protocolErrors, 0);
  } finally {
    await vm.close();
  }
});
