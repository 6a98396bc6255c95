/**
 * Entry of a guest worker thread: one VM's guest. `workerData` carries what the host shares with it:
 * vm-link.ts `SharedVmInit` (`memoryBuffers`: guest RAM chunks, `synicBuffer`: the shared SynIC,
 * `doorbell`: its MessagePort) plus `vmName` and `refStartNs` (process.hrtime.bigint() at the VM's start,
 * the zero of the partition reference counter, the same clock in every thread). Reports go to the host over `parentPort` (see kernel.ts).
 * The worker ends when the guest powers off; an exception ends it with a `fatal` report first.
 */
import { homedir } from 'node:os';
import type { MessagePort } from 'node:worker_threads';
import { parentPort, workerData } from 'node:worker_threads';
import { guestSideOfSharedVm, type SharedVmInit } from '../vmbus/vm-link.ts';
import { GuestKernel, type KernelReport } from './kernel.ts';

/** The host's half is `hostSideOfSharedVm` (src/vmbus/vm-link.ts) plus these two fields. */
interface GuestWorkerData extends SharedVmInit {
  vmName: string;
  refStartNs: bigint;
  /** Pool directory of our in-process KVP daemon; null runs none (default `$HVIS_HOME/guests/<vm>/hyperv`). */
  kvpRoot?: string | null;
  /** Uapi bridge socket for an outside KVP daemon (`hvis up --guest-agent hyperv-daemons`). */
  kvpBridgeSocket?: string | null;
  /** Uapi bridge sockets for outside fcopy / VSS daemons. */
  fcopyBridgeSocket?: string | null;
  vssBridgeSocket?: string | null;
}

const data = workerData as GuestWorkerData;
const port = parentPort!;
const report = (r: KernelReport) => port.postMessage(r);
const { client, memory, port: synic } = guestSideOfSharedVm(data);

const kernel = new GuestKernel({
  client,
  memory,
  report,
  referenceTime: () => (process.hrtime.bigint() - data.refStartNs) / 100n,
  kvpRoot:
    data.kvpRoot === undefined
      ? `${process.env.HVIS_HOME ?? `${homedir()}/.hvis`}/guests/${data.vmName}/hyperv`
      : data.kvpRoot,
  kvpBridgeSocket: data.kvpBridgeSocket ?? null,
  fcopyBridgeSocket: data.fcopyBridgeSocket ?? null,
  fcopyDaemon: !data.fcopyBridgeSocket,
  vssBridgeSocket: data.vssBridgeSocket ?? null,
  ...(data.vssBridgeSocket ? { vssPolicy: null } : {}),
  halt: () => {
    synic.close();
    (data.doorbell as MessagePort).close();
    process.exit(0);
  },
});

for (const [name, svc] of [
  ['fcopy', kernel.fcopy],
  ['VSS', kernel.vss],
] as const) {
  svc.start().catch((err: unknown) => {
    report({ type: 'fatal', message: `${name} bridge failed: ${(err as Error).message}` });
  });
}
kernel.kvp.start().catch((err: unknown) => {
  report({ type: 'fatal', message: `KVP bridge failed: ${(err as Error).message}` });
});
// Host → guest device commands (storage NBD exports), see GuestStorage.command.
port.on('message', (m: unknown) => kernel.storage?.command(m));
kernel.boot().catch((err: unknown) => {
  report({ type: 'fatal', message: `VMBus connect failed: ${(err as Error).message}` });
  process.exit(1);
});
