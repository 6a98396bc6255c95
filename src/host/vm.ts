/**
 * One virtual machine on the host: its configuration and its lifecycle, as Hyper-V's `VMState` names it
 * (Off → Starting → Running → Stopping → Off). The running machine (guest memory, guest worker thread,
 * VMBus server and the host halves of the integration services) is a {@link VmSession}; this class only
 * sequences operations, records what went wrong and builds the `Get-VM` view.
 *
 * Isolation: a guest worker that crashes, hangs or misbehaves ends only its own session; the VM is marked
 * Off with a Status naming the failure, and the host keeps running.
 */

import type { VssHost } from '../devices/vss/host.ts';
import { HvError } from '../protocol/errors.ts';
import type { CopyVmFileOptions, CopyVmFileRequest } from './copy-vmfile.ts';
import {
  findIntegrationService,
  INTEGRATION_SERVICES,
  integrationServiceNames,
} from './integration-services.ts';
import type { KvpExchange } from './kvp-exchange.ts';
import type { VmConfig } from './vm-config.ts';
import type { IcStatus, VmSession, VmSessionFactory } from './vm-session-types.ts';
import {
  formatTimeSpan,
  type HeartbeatStatus,
  type IntegrationServiceView,
  type LsvmbusEntry,
  type VmState,
  type VmView,
} from './vm-view.ts';
import { backup, vssFreeze, vssThaw } from './vss-requestor.ts';

/** How Stop-VM ends the guest. */
export type StopMode =
  /** Through the guest OS (Shutdown IC); fails when that service cannot be used. */
  | 'shutdown'
  /** Power off: the guest worker is terminated at once (Stop-VM -TurnOff). */
  | 'turnOff'
  /** Shutdown, then power off if the guest has not stopped within the timeout (Stop-VM -Force). */
  | 'force';

export interface StopOptions {
  mode: StopMode;
  /** How long the guest may take to stop after being asked, in ms. Default 300 000 (Hyper-V's five minutes). */
  timeoutMs?: number;
}

export const NORMAL_STATUS = 'Operating normally';
const DEFAULT_STOP_TIMEOUT_MS = 300_000;

/** What a Vm needs from its host. */
export interface VmHost {
  /** Persists a changed configuration. */
  save(cfg: VmConfig): Promise<void>;
  /** Builds the running machine; throws HvError when the host cannot run VMs (offline CLI). */
  createSession: VmSessionFactory;
  /** The VM configuration version of the host's profile (Get-VM `Version`). */
  configVersion: string;
  log(vm: string, msg: string): void;
}

export class Vm {
  #config: VmConfig;
  #host: VmHost;
  #state: VmState = 'Off';
  #status = NORMAL_STATUS;
  #startedAt = 0;
  #session: VmSession | undefined;
  /** Serializes lifecycle operations: each waits for the previous one. */
  #queue: Promise<unknown> = Promise.resolve();
  /** True while we are ending the session on purpose, so its exit is not reported as a crash. */
  #stopping = false;

  constructor(config: VmConfig, host: VmHost) {
    this.#config = config;
    this.#host = host;
  }

  get name(): string {
    return this.#config.name;
  }

  get config(): VmConfig {
    return this.#config;
  }

  /** The running machine, or undefined while the VM is off (device operations such as hot add use it). */
  get session(): VmSession | undefined {
    return this.#state === 'Running' ? this.#session : undefined;
  }

  /**
   * Persists a configuration change made to a running or stopped VM in the VM's operation queue; `change`
   * applies it to the running session first (e.g. hot add) and returns the new configuration.
   */
  updateConfig(
    change: (cfg: VmConfig, session: VmSession | undefined) => Promise<VmConfig>,
  ): Promise<VmConfig> {
    return this.#enqueue(async () => {
      const cfg = await change(this.#config, this.session);
      await this.#host.save(cfg);
      this.#config = cfg;
      return cfg;
    });
  }

  /** Writes a line to the host's log under this VM's name. */
  log(msg: string): void {
    this.#host.log(this.name, msg);
  }

  get state(): VmState {
    return this.#state;
  }

  /** Get-VM `Status`. */
  get status(): string {
    return this.#status;
  }

  #enqueue<T>(op: () => Promise<T>): Promise<T> {
    const p = this.#queue.then(op);
    this.#queue = p.catch(() => undefined);
    return p;
  }

  /**
   * Starts the VM: builds its session and waits until the guest kernel has connected to VMBus.
   * Starting a running VM does nothing.
   * @throws HvError when the session cannot be built or the guest fails to connect (the VM stays Off).
   */
  start(): Promise<void> {
    return this.#enqueue(async () => {
      if (this.#state === 'Running') return;
      this.#state = 'Starting';
      this.#status = NORMAL_STATUS;
      this.#stopping = false;
      let session: VmSession | undefined;
      try {
        session = await this.#host.createSession(this.#config);
        this.#session = session;
        this.#watch(session);
        await session.ready;
      } catch (err) {
        this.#stopping = true;
        await session?.turnOff();
        this.#session = undefined;
        this.#state = 'Off';
        this.#status = `Start failed: ${(err as Error).message}`;
        throw err instanceof HvError
          ? err
          : new HvError('HV_ERR_INTERNAL', `VM '${this.name}' failed to start: ${(err as Error).message}`);
      }
      this.#startedAt = Date.now();
      this.#state = 'Running';
    });
  }

  /** Marks the VM Off when its session ends, whether we ended it or it crashed. */
  #watch(session: VmSession): void {
    void session.exited.then((exit) => {
      if (this.#session !== session) return;
      this.#session = undefined;
      this.#state = 'Off';
      if (!this.#stopping && !exit.clean) {
        this.#status = `Guest stopped unexpectedly: ${exit.reason}`;
        this.#host.log(this.name, this.#status);
      } else if (!this.#stopping) {
        // The guest powered itself off (it accepted a shutdown, or chose to): a normal Off. A guest that
        // rebooted (shutdown IC restart flag) comes back, as a VM does after its OS restarts.
        this.#host.log(this.name, `guest powered off: ${exit.reason}`);
        if (exit.reason === 'reboot') {
          this.start().catch((err: unknown) =>
            this.#host.log(this.name, `restart after reboot failed: ${(err as Error).message}`),
          );
        }
      }
    });
  }

  /**
   * Stops the VM (Stop-VM). Stopping an Off VM does nothing.
   * @throws HvError `HV_ERR_INVALID_STATE` for mode 'shutdown' when the Shutdown service is disabled or
   *   not connected, or the guest refused; `HV_ERR_TIMEOUT` when the guest did not stop in time (mode
   *   'shutdown'; the VM keeps running).
   */
  stop(o: StopOptions): Promise<void> {
    return this.#enqueue(async () => {
      const s = this.#session;
      if (this.#state === 'Off' || s === undefined) return;
      const timeoutMs = o.timeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
      const previous = this.#state;
      this.#state = 'Stopping';
      this.#stopping = true;
      try {
        if (o.mode === 'turnOff') {
          await s.turnOff();
        } else {
          try {
            if (!this.#config.integrationServices.Shutdown) {
              throw new HvError(
                'HV_ERR_INVALID_STATE',
                `VM '${this.name}' cannot be shut down through the guest: the Shutdown integration service is disabled (enable it, or use --turn-off)`,
              );
            }
            await s.shutdown(timeoutMs);
          } catch (err) {
            if (o.mode !== 'force') throw err;
            this.#host.log(this.name, `graceful shutdown failed (${(err as Error).message}); turning off`);
            await s.turnOff();
          }
        }
      } catch (err) {
        this.#stopping = false;
        if (this.#session === s) this.#state = previous;
        throw err;
      }
      await s.exited;
      this.#session = undefined;
      this.#state = 'Off';
      this.#status = NORMAL_STATUS;
    });
  }

  /**
   * Restart-VM: a hard restart, "like powering the computer down, then back up again" (the cmdlet's
   * documentation); the guest is not asked.
   * @throws HvError `HV_ERR_INVALID_STATE` when the VM is not Running; as {@link Vm.start}.
   */
  async restart(): Promise<void> {
    if (this.#state !== 'Running') {
      throw new HvError(
        'HV_ERR_INVALID_STATE',
        `VM '${this.name}' is ${this.#state}: only a running VM can be restarted`,
      );
    }
    await this.stop({ mode: 'turnOff' });
    await this.start();
  }

  /**
   * Enable-/Disable-VMIntegrationService: persists the flag and, on a running VM, offers or rescinds
   * the service's channel at once.
   * @throws HvError `HV_ERR_NOT_FOUND` for an unknown service name.
   */
  setIntegrationService(name: string, enabled: boolean): Promise<IntegrationServiceView> {
    return this.#enqueue(async () => {
      const spec = findIntegrationService(name);
      if (!spec) {
        throw new HvError(
          'HV_ERR_NOT_FOUND',
          `VM '${this.name}' has no integration service named '${name}'; the services are ${integrationServiceNames()}`,
        );
      }
      if (this.#config.integrationServices[spec.name] !== enabled) {
        const cfg = {
          ...this.#config,
          integrationServices: { ...this.#config.integrationServices, [spec.name]: enabled },
        };
        await this.#host.save(cfg);
        this.#config = cfg;
        if (spec.implemented) this.#session?.setOffered(spec.name, enabled);
      }
      return this.integrationServices().find((v) => v.Name === spec.name)!;
    });
  }

  /** Replaces the stored configuration (the VM must be Off). */
  async reconfigure(cfg: VmConfig): Promise<void> {
    if (this.#state !== 'Off') {
      throw new HvError('HV_ERR_INVALID_STATE', `VM '${this.name}' is ${this.#state}; stop it first`);
    }
    await this.#host.save(cfg);
    this.#config = cfg;
  }

  /** Get-VMIntegrationService objects. */
  integrationServices(): IntegrationServiceView[] {
    return INTEGRATION_SERVICES.map((spec) => {
      const enabled = this.#config.integrationServices[spec.name];
      const base = { VMName: this.name, VMId: this.#config.id, Name: spec.name, Enabled: enabled };
      if (this.#state !== 'Running' || !enabled) {
        return {
          ...base,
          PrimaryStatusDescription: null,
          SecondaryStatusDescription: null,
          ProtocolVersion: null,
        };
      }
      if (!spec.implemented) {
        return {
          ...base,
          PrimaryStatusDescription: 'No Contact',
          SecondaryStatusDescription: `Not offered: hvis does not implement ${spec.name} yet`,
          ProtocolVersion: null,
        };
      }
      const st: IcStatus = this.#session?.icStatus(spec.name) ?? {
        primary: 'No Contact',
        secondary: null,
        version: null,
      };
      return {
        ...base,
        PrimaryStatusDescription: st.primary,
        SecondaryStatusDescription: st.secondary,
        ProtocolVersion: st.version,
      };
    });
  }

  #heartbeat(): HeartbeatStatus {
    if (this.#state !== 'Running') return null;
    if (!this.#config.integrationServices.Heartbeat) return 'Disabled';
    return this.#session?.heartbeat() ?? 'NoContact';
  }

  /**
   * Copy-VMFile: streams a host file into the running guest through the Guest Service Interface.
   * @throws (rejects) HvError `HV_ERR_INVALID_STATE` when the VM is not running or the service is disabled
   *   (Hyper-V's default); otherwise as `copyVmFile` (host/copy-vmfile.ts).
   */
  copyFile(req: Omit<CopyVmFileRequest, 'vmName'>, opts: CopyVmFileOptions = {}): Promise<number> {
    const s = this.#session;
    if (this.#state !== 'Running' || !s?.copyFile) {
      return Promise.reject(
        new HvError(
          'HV_ERR_INVALID_STATE',
          `VM '${this.name}' is ${this.#state}: start it to copy files into it`,
        ),
      );
    }
    if (!this.#config.integrationServices['Guest Service Interface']) {
      return Promise.reject(
        new HvError(
          'HV_ERR_INVALID_STATE',
          `Failed to initiate copying files to the guest: the 'Guest Service Interface' integration service of VM '${this.name}' is disabled; enable it with: hvis enable-vmintegrationservice -VMName ${this.name} -Name 'Guest Service Interface'`,
        ),
      );
    }
    return s.copyFile({ ...req, vmName: this.name }, opts);
  }

  /**
   * Backup with the guest's help (production checkpoints): VSS HOT_BACKUP + FREEZE, `fn`, then THAW — the
   * thaw always comes (host/vss-requestor.ts).
   * @throws (rejects) HvError `HV_ERR_INVALID_STATE` when the VM is not running or its VSS service is not
   *   connected; otherwise as `backup` there.
   */
  async backup<T>(fn: () => Promise<T>): Promise<T> {
    return backup(this.#vssDevice(), this.name, fn);
  }

  /** VSS FREEZE alone (pair it with {@link vssThaw}; prefer {@link backup}). */
  vssFreeze(): Promise<void> {
    return Promise.resolve().then(() => vssFreeze(this.#vssDevice(), this.name));
  }

  /** VSS THAW. */
  vssThaw(): Promise<void> {
    return Promise.resolve().then(() => vssThaw(this.#vssDevice(), this.name));
  }

  #vssDevice(): VssHost {
    const dev = this.#state === 'Running' ? this.#session?.vssDevice?.() : null;
    if (!dev) {
      throw new HvError(
        'HV_ERR_INVALID_STATE',
        `VM '${this.name}' cannot be backed up with the guest's help: it is ${this.#state} or its VSS integration service is not connected`,
      );
    }
    return dev;
  }

  /** The guest's view of its bus (lsvmbus). @throws HvError `HV_ERR_INVALID_STATE` when not running. */
  lsvmbus(): LsvmbusEntry[] {
    if (this.#state !== 'Running' || !this.#session) {
      throw new HvError(
        'HV_ERR_INVALID_STATE',
        `VM '${this.name}' is ${this.#state}: start it to list its VMBus devices`,
      );
    }
    return this.#session.lsvmbus();
  }

  /**
   * The running VM's KVP exchange.
   * @throws HvError `HV_ERR_INVALID_STATE` when the VM is not running or its Key-Value Pair Exchange service is disabled.
   */
  kvpExchange(): KvpExchange {
    const ex = this.#state === 'Running' ? this.#session?.kvp : undefined;
    if (!ex || !this.#config.integrationServices['Key-Value Pair Exchange']) {
      throw new HvError(
        'HV_ERR_INVALID_STATE',
        `VM '${this.name}' has no KVP exchange: it must be running with the 'Key-Value Pair Exchange' integration service enabled`,
      );
    }
    return ex;
  }

  /** The Get-VM object. */
  view(): VmView {
    const c = this.#config;
    const running = this.#state === 'Running';
    const ips = this.#session?.ipAddresses() ?? [];
    return {
      Name: c.name,
      Id: c.id,
      State: this.#state,
      CPUUsage: 0,
      MemoryAssigned: this.#state === 'Off' ? 0 : c.memoryStartupBytes,
      MemoryStartup: c.memoryStartupBytes,
      Uptime: formatTimeSpan(running ? Date.now() - this.#startedAt : 0),
      Status: this.#status,
      Version: this.#host.configVersion,
      Generation: c.generation,
      ProcessorCount: c.processorCount,
      Heartbeat: this.#heartbeat(),
      IntegrationServices: this.integrationServices(),
      GuestOperatingSystem: running ? guestOs(this.#session?.kvp) : null,
      NetworkAdapters: c.networkAdapters.map((n) => ({
        Name: n.name,
        SwitchName: n.switchName,
        MacAddress: n.macAddress,
        IPAddresses: running ? ips : [],
      })),
      HardDrives: c.hardDrives.map((d) => ({
        Path: d.path,
        ControllerType: d.controllerType,
        ControllerNumber: d.controllerNumber,
        ControllerLocation: d.controllerLocation,
        GuestDisk: running ? (this.#session?.storage?.guestDisk(d) ?? null) : null,
      })),
    };
  }
}

/** `OSName OSVersion` from the guest's intrinsic KVP items, null until reported. */
function guestOs(kvp: KvpExchange | undefined): string | null {
  const name = kvp?.intrinsic('OSName');
  if (!name) return null;
  const ver = kvp?.intrinsic('OSMajorVersion') || kvp?.intrinsic('OSVersion');
  return ver ? `${name} ${ver}` : name;
}
