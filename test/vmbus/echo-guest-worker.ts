/**
 * Guest side of the cross-thread echo test, run in a worker (compiled to dist/, spawned by
 * cross-thread.test.ts): a VMBus client whose driver for the echo class sends every packet back.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ChannelIo } from '../../src/vmbus/channel-io.ts';
import { guestSideOfSharedVm, type SharedVmInit } from '../../src/vmbus/vm-link.ts';
import { ECHO_CLASS } from './vmbus-fixtures.ts';

const init = workerData as SharedVmInit;
const { client, port } = guestSideOfSharedVm(init);
const backlog: { type: number; transId: number; payload: Uint8Array }[] = [];
let io: ChannelIo | null = null;

function flush(): void {
  while (io && backlog.length > 0) {
    const p = backlog[0]!;
    if (!io.send(p.type, 0, p.transId, p.payload)) return;
    backlog.shift();
  }
}

client.registerDriver(ECHO_CLASS, {
  name: 'echo',
  sendRingBytes: 16384,
  recvRingBytes: 16384,
  attach(_offer, ch) {
    io = ch;
    return {
      onPacket(p) {
        backlog.push({ type: p.type, transId: p.transId, payload: p.payload.slice() });
        flush();
      },
      onWritable: flush,
    };
  },
});

client.connect().then(
  (version) => parentPort!.postMessage({ connected: version }),
  (e: Error) => parentPort!.postMessage({ error: e.message }),
);
parentPort!.on('message', (m) => {
  if (m === 'stop') {
    port.close();
    (init.doorbell as unknown as { close(): void }).close();
    parentPort!.close();
  }
});
