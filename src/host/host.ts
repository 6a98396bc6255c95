/**
 * The emulated Hyper-V host: its VMs (one {@link Vm} per configuration file under `$HVIS_HOME/vms/`),
 * the host version profile that decides which protocol versions are offered, and orderly shutdown.
 *
 * An *online* host (the `hvis up` process) runs VMs. An *offline* host reads and edits configurations
 * only (the CLI when no host is running): starting a VM there fails with a message saying to run
 * `hvis up`.
 */
import { join } from 'node:path';
import { HvError } from '../protocol/errors.ts';
import { ConfigStore } from './config-store.ts';
import { type HomePaths, homePaths } from './home.ts';
import { createHardDrives } from './system-disk.ts';
import { Vm, type VmHost } from './vm.ts';
import {
  DEFAULT_SWITCH_NAME,
  DEFAULT_VHD_SIZE_BYTES,
  type NewVmOptions,
  newVmConfig,
  type VmConfig,
} from './vm-config.ts';
import type { VmSessionFactory } from './vm-session-types.ts';
import { hasWildcard, wildcardRegExp } from './wildcard.ts';

/** Name of the VM `hvis up` creates and starts when given no name. */
export const DEFAULT_VM_NAME = 'vm1';

export interface HostOptions {
  /** State directory (default `$HVIS_HOME` or `~/.hvis`). */
  home?: string;
  /** Builds running machines; omit for an offline host. */
  createSession?: VmSessionFactory;
  /** Get-VM `Version` shown for VMs (the profile's configuration version). */
  configVersion?: string;
  /** Where host events go (default: nowhere). */
  log?: (vm: string, msg: string) => void;
}

const NO_HOST = "no hvis host is running: start one with 'hvis up'";

export class Host {
  readonly paths: HomePaths;
  readonly store: ConfigStore;
  readonly online: boolean;
  /** Configuration files that failed to load (reported by `get-vm`, never fatal). */
  readonly problems: HvError[] = [];
  #vms = new Map<string, Vm>();
  #vmHost: VmHost;

  private constructor(o: HostOptions) {
    this.paths = homePaths(o.home);
    this.store = new ConfigStore(this.paths.vms);
    this.online = o.createSession !== undefined;
    const log = o.log ?? (() => {});
    this.#vmHost = {
      save: (cfg) => this.store.save(cfg),
      createSession:
        o.createSession ??
        (() => Promise.reject(new HvError('HV_ERR_INVALID_STATE', NO_HOST, { reason: 'no-host' }))),
      configVersion: o.configVersion ?? '12.0',
      log,
    };
  }

  /** Opens the host over its state directory and loads every VM configuration (all Off). */
  static async open(o: HostOptions = {}): Promise<Host> {
    const h = new Host(o);
    const { configs, problems } = await h.store.list();
    h.problems.push(...problems);
    for (const cfg of configs) h.#vms.set(cfg.name.toLowerCase(), new Vm(cfg, h.#vmHost));
    return h;
  }

  /**
   * VMs matching the names (PowerShell wildcards allowed); all VMs when `names` is empty.
   * @throws HvError `HV_ERR_NOT_FOUND` for a name without wildcards that matches no VM (as Get-VM).
   */
  find(names: readonly string[] = []): Vm[] {
    const all = [...this.#vms.values()].sort((a, b) => a.name.localeCompare(b.name));
    if (names.length === 0) return all;
    const out = new Set<Vm>();
    for (const n of names) {
      if (!hasWildcard(n)) {
        out.add(this.vm(n));
        continue;
      }
      const re = wildcardRegExp(n);
      for (const vm of all) if (re.test(vm.name)) out.add(vm);
    }
    return [...out];
  }

  /** @throws HvError `HV_ERR_NOT_FOUND` when no VM has that name (case-insensitive, as Hyper-V). */
  vm(name: string): Vm {
    const vm = this.#vms.get(name.toLowerCase());
    if (!vm) {
      const broken = this.problems.find((p) => p.details?.name === name.toLowerCase());
      if (broken) throw broken;
      const names =
        [...this.#vms.values()].map((v) => `'${v.name}'`).join(', ') || 'none (create one with hvis new-vm)';
      throw new HvError('HV_ERR_NOT_FOUND', `no VM named '${name}'; VMs on this host: ${names}`, { name });
    }
    return vm;
  }

  /**
   * New-VM: creates and stores a configuration.
   * @throws HvError `HV_ERR_ALREADY_EXISTS` when the name is taken; `HV_ERR_INVALID_ARGUMENT` for bad options.
   */
  async newVm(o: NewVmOptions): Promise<Vm> {
    const cfg = newVmConfig(o);
    if (this.#vms.has(cfg.name.toLowerCase()) || (await this.store.has(cfg.name))) {
      throw new HvError('HV_ERR_ALREADY_EXISTS', `a VM named '${cfg.name}' already exists`, {
        name: cfg.name,
      });
    }
    await createHardDrives(cfg.hardDrives);
    return this.#add(cfg);
  }

  async #add(cfg: VmConfig): Promise<Vm> {
    await this.store.save(cfg);
    const vm = new Vm(cfg, this.#vmHost);
    this.#vms.set(cfg.name.toLowerCase(), vm);
    return vm;
  }

  /**
   * Remove-VM: deletes the configuration (disks are kept, as Hyper-V keeps VHDs).
   * @throws HvError `HV_ERR_INVALID_STATE` when the VM is not Off and `force` is false.
   */
  async removeVm(name: string, force: boolean): Promise<void> {
    const vm = this.vm(name);
    if (vm.state !== 'Off') {
      if (!force) {
        throw new HvError(
          'HV_ERR_INVALID_STATE',
          `VM '${vm.name}' is ${vm.state}: stop it first, or pass --force to turn it off and remove it`,
        );
      }
      await vm.stop({ mode: 'turnOff' });
    }
    await this.store.remove(vm.name);
    this.#vms.delete(vm.name.toLowerCase());
  }

  /**
   * The VM `hvis up` runs when given no name: `vm1` with a dynamic 127 GiB VHDX system disk
   * (`$HVIS_HOME/disks/vm1.vhdx`) and one NIC on "Default Switch"; created when absent.
   */
  async defaultVm(): Promise<Vm> {
    const existing = this.#vms.get(DEFAULT_VM_NAME);
    if (existing) return existing;
    return this.newVm({
      name: DEFAULT_VM_NAME,
      switchName: DEFAULT_SWITCH_NAME,
      newVhd: { path: join(this.paths.disks, `${DEFAULT_VM_NAME}.vhdx`), sizeBytes: DEFAULT_VHD_SIZE_BYTES },
    });
  }

  /**
   * Stops every running VM: gracefully through the Shutdown IC, then power off after `timeoutMs`.
   * Never throws; failures are logged.
   */
  async close(timeoutMs = 30_000): Promise<void> {
    await Promise.all(
      [...this.#vms.values()].map(async (vm) => {
        try {
          await vm.stop({ mode: 'force', timeoutMs });
        } catch (err) {
          this.#vmHost.log(vm.name, `stop at host shutdown failed: ${(err as Error).message}`);
        }
      }),
    );
  }
}
