/**
 * Wiring of a VMBus server (host) and client (guest) for one VM over a SynIC transport.
 *
 * Deterministic (one thread, tests): {@link createDeterministicVm} returns both ends and `run()`, which
 * delivers every queued message and interrupt until the VM is quiet.
 *
 * Cross-thread (guest in a worker): the host thread owns guest RAM and the SynIC buffer and keeps its end
 * of a MessageChannel; the worker gets the SABs and the other port:
 *
 *   // host thread
 *   const memory = new GuestMemory(256 * 2 ** 20);
 *   const synicBuffer = createSharedSynicBuffer();
 *   const { port1, port2 } = new MessageChannel();            // dedicated to the SynIC doorbell
 *   const { server } = hostSideOfSharedVm({ profile, memory, synicBuffer, doorbell: port1 });
 *   const init: SharedVmInit = { memoryBuffers: memory.buffers, synicBuffer, doorbell: port2 };
 *   new Worker('dist/.../guest-worker.js', { workerData: init, transferList: [port2] });
 *
 *   // worker (compiled .js)
 *   const { client } = guestSideOfSharedVm(workerData as SharedVmInit, { versions, maxVersion });
 *
 * Register the server's offers before the guest connects (or later: hot-add). Call `close()` on each side's
 * port to drop its doorbell listener, and close the MessagePorts, when the VM stops; the listeners are what
 * keep both event loops alive (no Atomics.wait anywhere, see synic-shared.ts).
 */
import { VmbusClient, type VmbusClientOptions } from './client.ts';
import type { HostProfile } from './host-profiles.ts';
import { GuestMemory } from './memory.ts';
import { VmbusServer, type VmbusServerOptions } from './server.ts';
import { DeterministicSynic } from './synic.ts';
import { type DoorbellPort, SharedSynicPort } from './synic-shared.ts';

type ClientExtras = Omit<VmbusClientOptions, 'synic' | 'memory'>;
type ServerExtras = Omit<VmbusServerOptions, 'synic' | 'memory' | 'profile'>;

export interface DeterministicVm {
  synic: DeterministicSynic;
  memory: GuestMemory;
  server: VmbusServer;
  client: VmbusClient;
  /** Delivers until nothing is queued; returns the deliveries made. */
  run(): number;
}

/** Host and guest of one VM in this thread, driven by `run()`. Guest RAM defaults to 16 MiB. */
export function createDeterministicVm(opts: {
  profile: HostProfile;
  memoryBytes?: number;
  client?: ClientExtras;
  server?: ServerExtras;
  queueSlots?: number;
}): DeterministicVm {
  const synic = new DeterministicSynic(opts.queueSlots);
  const memory = new GuestMemory(opts.memoryBytes ?? 16 * 2 ** 20);
  const server = new VmbusServer({ ...opts.server, synic: synic.host, memory, profile: opts.profile });
  const client = new VmbusClient({ ...opts.client, synic: synic.guest, memory });
  return { synic, memory, server, client, run: () => synic.run() };
}

/** What the guest worker needs: guest RAM chunks, the SynIC buffer and its doorbell port. */
export interface SharedVmInit {
  memoryBuffers: readonly SharedArrayBuffer[];
  synicBuffer: SharedArrayBuffer;
  doorbell: DoorbellPort;
}

/** Host end of a cross-thread VM. `synicBuffer` from createSharedSynicBuffer(). */
export function hostSideOfSharedVm(opts: {
  profile: HostProfile;
  memory: GuestMemory;
  synicBuffer: SharedArrayBuffer;
  doorbell: DoorbellPort;
  server?: ServerExtras;
}): { server: VmbusServer; port: SharedSynicPort } {
  const port = new SharedSynicPort(opts.synicBuffer, 'host', opts.doorbell);
  const server = new VmbusServer({ ...opts.server, synic: port, memory: opts.memory, profile: opts.profile });
  return { server, port };
}

/** Guest end, in the worker. */
export function guestSideOfSharedVm(
  init: SharedVmInit,
  client?: ClientExtras,
): { client: VmbusClient; memory: GuestMemory; port: SharedSynicPort } {
  const memory = GuestMemory.fromBuffers(init.memoryBuffers);
  const port = new SharedSynicPort(init.synicBuffer, 'guest', init.doorbell);
  return { client: new VmbusClient({ ...client, synic: port, memory }), memory, port };
}
