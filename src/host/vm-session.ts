/**
 * A running VM (design.md "Memory and signals", "Threads"): guest RAM as SharedArrayBuffers, a shared
 * SynIC between the host's event loop and the guest's worker thread, the {@link VmbusServer} with the host
 * halves of the integration services offered, and the guest worker (`dist/src/guest/worker.js`) that runs
 * the guest kernel.
 *
 * Isolation: the worker has its own heap limit; its crash, out-of-memory, a protocol error on a channel or
 * garbage on the control port end at most this session (the VM is marked by {@link Vm}), never the host.
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import type { VssHost } from '../devices/vss/host.ts';
import { HvError } from '../protocol/errors.ts';
import { Guid } from '../protocol/guid.ts';
import { VMBUS_PIPE_TYPE_MESSAGE } from '../protocol/vmbus/constants.ts';
import {
  HV_FCOPY_GUID,
  HV_HEART_BEAT_GUID,
  HV_KVP_GUID,
  HV_SHUTDOWN_GUID,
  HV_TS_GUID,
  HV_VSS_GUID,
  IC_FCOPY_INSTANCE,
  IC_KVP_INSTANCE,
  IC_SHUTDOWN_INSTANCE,
  IC_TIMESYNC_INSTANCE,
} from '../protocol/vmbus/device-guids.ts';
import { type Clock, systemClock } from '../vmbus/channel-io.ts';
import type { HostProfile } from '../vmbus/host-profiles.ts';
import { GuestMemory } from '../vmbus/memory.ts';
import type { OfferHandle, VmbusServer } from '../vmbus/server.ts';
import { createSharedSynicBuffer, type SharedSynicPort } from '../vmbus/synic-shared.ts';
import { hostSideOfSharedVm } from '../vmbus/vm-link.ts';
import { type CopyVmFileOptions, type CopyVmFileRequest, copyVmFile } from './copy-vmfile.ts';
import { offerFibreChannelHbas } from './fibre-channel.ts';
import { type AgentService, type GuestAgent, type SandboxedAgent, sandboxedAgents } from './guest-agent.ts';
import { parseGuestReport } from './guest-reports.ts';
import { type HostIc, hostIcFactories } from './host-ics.ts';
import type { IntegrationServiceName } from './integration-services.ts';
import { KvpExchange } from './kvp-exchange.ts';
import { VmStorage } from './storage.ts';
import type { VmConfig } from './vm-config.ts';
import type { GuestExit, IcStatus, VmSession, VmSessionFactory } from './vm-session-types.ts';
import type { HeartbeatStatus, LsvmbusEntry } from './vm-view.ts';

export interface VmSessionFactoryOptions {
  profile: HostProfile;
  log: (vm: string, msg: string) => void;
  clock?: Clock;
  /** Guest worker entry, a compiled .js file (default: `../guest/worker.js` beside this module). */
  workerUrl?: URL;
  /** How long the guest may take to connect to VMBus, ms (default 15 000). */
  connectTimeoutMs?: number;
  /**
   * Uapi bridge sockets where outside fcopy / VSS daemons attach (ours standalone, or Debian's through
   * native/hvshim); a service with a socket runs no in-process daemon. Called per VM.
   */
  daemonSockets?: (vmName: string) => { fcopy?: string; vss?: string };
  /**
   * The guest's KVP, fcopy and VSS daemons: ours in the worker (default) or Debian's, sandboxed
   * (`hvis up --guest-agent hyperv-daemons`, src/host/guest-agent.ts).
   */
  guestAgent?: GuestAgent;
  /** Heap limit of each guest worker, MiB (default 256). */
  guestHeapMb?: number;
}

/** The implemented services: channel class and instance (vmbus-core-ics.md §6.10; heartbeat's is ours). */
const OFFERS: Partial<Record<IntegrationServiceName, { type: Guid; instance: Guid }>> = {
  Heartbeat: { type: HV_HEART_BEAT_GUID, instance: Guid.parse('fedf7c2e-7b45-4a11-8f0c-1b6b0a0c9b01') },
  Shutdown: { type: HV_SHUTDOWN_GUID, instance: IC_SHUTDOWN_INSTANCE },
  'Time Synchronization': { type: HV_TS_GUID, instance: IC_TIMESYNC_INSTANCE },
  'Key-Value Pair Exchange': { type: HV_KVP_GUID, instance: IC_KVP_INSTANCE },
  'Guest Service Interface': { type: HV_FCOPY_GUID, instance: IC_FCOPY_INSTANCE },
  // Hyper-V's VSS instance GUID is not in any source we have (reference §6.10): this one is ours.
  VSS: { type: HV_VSS_GUID, instance: Guid.parse('fedf7c2e-7b45-4a11-8f0c-1b6b0a0c9b02') },
};

/** Builds sessions for an online host. */
export function createVmSessionFactory(o: VmSessionFactoryOptions): VmSessionFactory {
  return async (cfg) => new WorkerVmSession(cfg, o);
}

interface OfferedIc {
  handle: OfferHandle;
  device: HostIc | null;
}

class WorkerVmSession implements VmSession {
  readonly ready: Promise<void>;
  readonly exited: Promise<GuestExit>;
  readonly #cfg: VmConfig;
  readonly #o: VmSessionFactoryOptions;
  readonly #clock: Clock;
  readonly #server: VmbusServer;
  readonly #synic: SharedSynicPort;
  readonly #worker: Worker;
  readonly #ics = new Map<IntegrationServiceName, OfferedIc>();
  #devices: LsvmbusEntry[] = [];
  #poweroff: string | null = null;
  #fatal: string | null = null;
  #badReports = 0;
  #alive = true;
  readonly #referenceTime: () => bigint;
  /** The VM's KVP exchange (host items survive channel re-opens). */
  readonly kvp: KvpExchange;
  readonly storage: VmStorage;
  readonly #agents: Record<AgentService, SandboxedAgent> | null;

  constructor(cfg: VmConfig, o: VmSessionFactoryOptions) {
    this.#cfg = cfg;
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.kvp = new KvpExchange({
      clock: this.#clock,
      vmName: cfg.name,
      vmId: cfg.id,
      macs: cfg.networkAdapters.map((n) => n.macAddress.match(/../g)!.join(':')),
    });
    this.#agents =
      o.guestAgent === 'hyperv-daemons' ? sandboxedAgents(cfg.name, (m) => o.log(cfg.name, m)) : null;
    const memory = new GuestMemory(cfg.memoryStartupBytes);
    const refStartNs = process.hrtime.bigint();
    this.#referenceTime = () => (process.hrtime.bigint() - refStartNs) / 100n;
    const sab = createSharedSynicBuffer();
    const doorbell = new MessageChannel();
    const side = hostSideOfSharedVm({
      profile: o.profile,
      memory,
      synicBuffer: sab,
      doorbell: doorbell.port1,
      server: {
        log: (e) =>
          o.log(
            cfg.name,
            `vmbus ${e.level}: ${e.message}${e.relid === undefined ? '' : ` (relid ${e.relid})`}`,
          ),
      },
    });
    this.#synic = side.port;
    this.#server = side.server;
    for (const [name, on] of Object.entries(cfg.integrationServices) as [IntegrationServiceName, boolean][]) {
      if (on) this.setOffered(name, true);
    }
    this.storage = new VmStorage({
      server: this.#server,
      profile: o.profile.name,
      log: (m) => o.log(cfg.name, m),
    });
    for (const d of cfg.hardDrives)
      this.storage.add(d).catch((e: Error) => o.log(cfg.name, `cannot attach ${d.path}: ${e.message}`));
    try {
      offerFibreChannelHbas(this.storage, cfg);
    } catch (e) {
      o.log(cfg.name, (e as Error).message);
    }

    this.#worker = new Worker(o.workerUrl ?? new URL('../guest/worker.js', import.meta.url), {
      workerData: {
        vmName: cfg.name,
        memoryBuffers: memory.buffers,
        synicBuffer: sab,
        doorbell: doorbell.port2,
        refStartNs,
        // A bridge socket makes the guest run no daemon of ours for that service (worker.ts).
        ...(this.#agents
          ? {
              kvpRoot: null,
              kvpBridgeSocket: this.#agents.kvp.socket,
              fcopyBridgeSocket: this.#agents.fcopy.socket,
              vssBridgeSocket: this.#agents.vss.socket,
            }
          : {
              fcopyBridgeSocket: o.daemonSockets?.(cfg.name).fcopy ?? null,
              vssBridgeSocket: o.daemonSockets?.(cfg.name).vss ?? null,
            }),
      },
      transferList: [doorbell.port2],
      resourceLimits: { maxOldGenerationSizeMb: o.guestHeapMb ?? 256 },
      stdout: false,
      stderr: false,
    });

    let connected: () => void = () => {};
    let failed: (e: Error) => void = () => {};
    this.ready = new Promise<void>((res, rej) => {
      connected = res;
      failed = rej;
    });
    const timer = setTimeout(() => {
      failed(
        new HvError(
          'HV_ERR_TIMEOUT',
          `guest of VM '${cfg.name}' did not connect to VMBus within ${o.connectTimeoutMs ?? 15_000} ms`,
        ),
      );
      void this.turnOff();
    }, o.connectTimeoutMs ?? 15_000);

    this.#worker.on('message', (raw: unknown) => {
      const r = parseGuestReport(raw);
      if (r === null) {
        if (this.#badReports++ === 0) o.log(cfg.name, 'ignoring a malformed report from the guest worker');
        return;
      }
      if (r.type === 'connected') {
        clearTimeout(timer);
        connected();
        for (const a of Object.values(this.#agents ?? {})) a.start();
      } else if (r.type === 'devices') this.#devices = r.devices;
      else if (r.type === 'clock')
        this.#ics.get('Time Synchronization')?.device?.noteGuestOffset?.(r.offsetMs);
      else if (r.type === 'poweroff') this.#poweroff = r.reason;
      else if (r.type === 'disks') this.storage.noteGuestDisks(r.disks);
      else this.#fatal = r.message;
    });
    let error: Error | null = null;
    this.#worker.on('error', (e) => {
      error = e;
    });
    this.exited = new Promise<GuestExit>((res) => {
      this.#worker.once('exit', (code) => {
        clearTimeout(timer);
        this.#alive = false;
        const closing = this.#teardown();
        const exit: GuestExit =
          this.#poweroff !== null && code === 0
            ? { clean: true, reason: this.#poweroff }
            : {
                clean: false,
                reason:
                  this.#fatal ??
                  (error
                    ? `${(error as Error).name}: ${(error as Error).message}`
                    : `guest worker exited with code ${code}`),
              };
        failed(
          new HvError(
            'HV_ERR_INVALID_STATE',
            `guest of VM '${cfg.name}' stopped before connecting: ${exit.reason}`,
          ),
        );
        // Exited means the images are closed too: a restore or merge right after may reopen them.
        void closing.then(() => res(exit));
      });
    });
  }

  /** Stops the devices; resolves when every image is flushed and closed (never rejects). */
  #teardown(): Promise<void> {
    for (const ic of this.#ics.values()) ic.device?.stop();
    this.kvp.stop();
    for (const a of Object.values(this.#agents ?? {})) a.stop();
    this.#synic.close();
    return this.storage.close();
  }

  setOffered(name: IntegrationServiceName, offered: boolean): void {
    const existing = this.#ics.get(name);
    if (!offered) {
      if (existing) {
        this.#ics.delete(name);
        existing.device?.stop();
        existing.handle.rescind();
      }
      return;
    }
    const spec = OFFERS[name];
    const make = hostIcFactories[name];
    if (existing || !spec || !make) return;
    const ic: OfferedIc = {
      device: null,
      handle: this.#server.offer(
        { interfaceType: spec.type, instance: spec.instance, pipeMode: VMBUS_PIPE_TYPE_MESSAGE },
        (ch) => {
          ic.device?.stop();
          const dev = make(ch, {
            clock: this.#clock,
            profile: this.#o.profile.name,
            referenceTime: this.#referenceTime,
            kvp: this.kvp,
          });
          ic.device = dev;
          // NEGOTIATE goes out once the open has completed, as the host sends it after OPENCHANNEL_RESULT.
          setImmediate(() => {
            if (ic.device === dev) dev.start();
          });
          return dev.handler;
        },
      ),
    };
    this.#ics.set(name, ic);
  }

  icStatus(name: IntegrationServiceName): IcStatus {
    const dev = this.#ics.get(name)?.device;
    if (!dev) return { primary: 'No Contact', secondary: null, version: null };
    return dev.status();
  }

  heartbeat(): HeartbeatStatus {
    const dev = this.#ics.get('Heartbeat')?.device;
    return dev?.heartbeat?.() ?? 'NoContact';
  }

  sendGuest(command: unknown): void {
    if (this.#alive) this.#worker.postMessage(command);
  }

  lsvmbus(): LsvmbusEntry[] {
    return this.#devices;
  }

  ipAddresses(): string[] {
    return this.kvp.ipAddresses();
  }

  vssDevice(): VssHost | null {
    const dev = this.#ics.get('VSS')?.device?.vss;
    return dev?.status.PrimaryOperationalStatus === 'Ok' ? dev : null;
  }

  copyFile(req: CopyVmFileRequest, opts: CopyVmFileOptions = {}): Promise<number> {
    const dev = this.#ics.get('Guest Service Interface')?.device?.fcopy;
    if (dev?.status.PrimaryOperationalStatus !== 'Ok') {
      return Promise.reject(
        new HvError(
          'HV_ERR_INVALID_STATE',
          `Failed to initiate copying files to the guest: the Guest Service Interface of VM '${this.#cfg.name}' is not connected (no file copy driver in the guest)`,
        ),
      );
    }
    return copyVmFile(dev, req, opts);
  }

  async shutdown(timeoutMs: number): Promise<void> {
    const dev = this.#ics.get('Shutdown')?.device;
    if (!dev?.requestShutdown || dev.status().primary !== 'OK') {
      throw new HvError(
        'HV_ERR_INVALID_STATE',
        `VM '${this.#cfg.name}' cannot be shut down through the guest: its Shutdown service is not connected (use --turn-off or --force)`,
      );
    }
    await dev.requestShutdown();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, rej) => {
      timer = setTimeout(
        () =>
          rej(
            new HvError(
              'HV_ERR_TIMEOUT',
              `VM '${this.#cfg.name}' accepted the shutdown but did not power off within ${timeoutMs / 1000} s`,
            ),
          ),
        timeoutMs,
      );
    });
    try {
      await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async turnOff(): Promise<void> {
    if (this.#alive) await this.#worker.terminate();
    await this.exited;
  }
}
