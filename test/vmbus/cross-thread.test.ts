/**
 * The guest runs in a real worker thread over the shared-memory SynIC (synic-shared.ts): the host's echo
 * peer sends packets through the rings and gets every one back, in order, with both event loops alive
 * (doorbells are MessagePort messages only when the receiver is idle; nobody blocks in Atomics.wait).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { VM_PKT_DATA_INBAND } from '../../src/protocol/vmbus/packet.ts';
import type { ChannelIo } from '../../src/vmbus/channel-io.ts';
import { ECHO_CLASS, ECHO_INSTANCE } from './vmbus-fixtures.ts';
import { workerVm } from './worker-vm.ts';

const PACKETS = 5000;

test('echo across a worker thread: every packet comes back in order', async () => {
  const vm = workerVm();
  const { server } = vm;

  const echoed: number[] = [];
  let io: ChannelIo | null = null;
  let next = 0;
  let finish: () => void = () => {};
  const allBack = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const payload = new Uint8Array(64);
  const pump = () => {
    while (io && next < PACKETS) {
      payload[0] = next & 0xff;
      if (!io.send(VM_PKT_DATA_INBAND, 0, next, payload)) return;
      next++;
    }
  };
  server.offer({ interfaceType: ECHO_CLASS, instance: ECHO_INSTANCE }, (ch) => {
    io = ch;
    queueMicrotask(pump);
    return {
      onPacket(p) {
        assert.equal(p.payload[0], p.transId & 0xff);
        echoed.push(p.transId);
        if (echoed.length === PACKETS) finish();
      },
      onWritable: pump,
    };
  });

  const worker = vm.startGuest(new URL('./echo-guest-worker.js', import.meta.url), (init) => init);
  try {
    const hello = await new Promise<{ connected?: number; error?: string }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    assert.equal(hello.connected, 0x00050003, hello.error);
    await allBack;
    assert.deepEqual(
      echoed,
      Array.from({ length: PACKETS }, (_, i) => i),
    );
    assert.equal(server.stats.protocolErrors, 0);
  } finally {
    worker.postMessage('stop');
    await vm.close();
  }
});
