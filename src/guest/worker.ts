/**
 * Entry of a guest worker thread: one VM's guest. `workerData` carries what the host shares with it:
 * `{ vmName, memory: SharedArrayBuffer[] (guest RAM chunks), synic: SharedArrayBuffer (shared SynIC),
 * doorbell: MessagePort (SynIC interrupts), refStartNs: bigint (process.hrtime of the VM's start, the
 * zero of the partition reference counter) }`. Reports go to the host over `parentPort` (see kernel.ts).
 * The worker ends when the guest powers off; an exception ends it with a `fatal` report first.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import { GuestMemory } from '../vmbus/memory.ts';
import { SharedSynicPort } from '../vmbus/synic-shared.ts';
import { GuestKernel, type KernelReport } from './kernel.ts';

interface GuestWorkerData {
  vmName: string;
  memory: SharedArrayBuffer[];
  synic: SharedArrayBuffer;
  doorbell: MessagePort;
  refStartNs: bigint;
}

const data = workerData as GuestWorkerData;
const port = parentPort!;
const report = (r: KernelReport) => port.postMessage(r);
const synic = new SharedSynicPort(data.synic, 'guest', data.doorbell);

const kernel = new GuestKernel({
  synic,
  memory: GuestMemory.fromBuffers(data.memory),
  report,
  referenceTime: () => (process.hrtime.bigint() - data.refStartNs) / 100n,
  halt: () => {
    synic.close();
    data.doorbell.close();
    process.exit(0);
  },
});

kernel.boot().catch((err: unknown) => {
  report({ type: 'fatal', message: `VMBus connect failed: ${(err as Error).message}` });
  process.exit(1);
});
