/**
 * The contract between a {@link Vm} and its running machine (guest memory, guest worker, VMBus server,
 * host integration services). Kept apart so the lifecycle logic does not depend on how a guest runs.
 */
import type { VssHost } from '../devices/vss/host.ts';
import type { CopyVmFileOptions, CopyVmFileRequest } from './copy-vmfile.ts';
import type { IntegrationServiceName } from './integration-services.ts';
import type { KvpExchange } from './kvp-exchange.ts';
import type { VmStorage } from './storage.ts';
import type { VmConfig } from './vm-config.ts';
import type { HeartbeatStatus, LsvmbusEntry } from './vm-view.ts';

/** How a guest ended. `clean`: the guest powered off on its own terms (shutdown IC, orderly exit). */
export interface GuestExit {
  clean: boolean;
  /** What happened, for the VM's Status and the log. */
  reason: string;
}

/** Status of one implemented integration service on a running VM. */
export interface IcStatus {
  primary: 'OK' | 'No Contact' | 'Lost Communication';
  secondary: string | null;
  /** Negotiated message version `major.minor`, null before negotiation. */
  version: string | null;
}

export interface VmSession {
  /** Resolves when the guest kernel has connected to VMBus; rejects if it fails to. */
  readonly ready: Promise<void>;
  /** Resolves (never rejects) when the guest worker has exited and the session is torn down. */
  readonly exited: Promise<GuestExit>;
  /**
   * Asks the guest to power off through the Shutdown IC and waits for its worker to exit.
   * @throws HvError `HV_ERR_INVALID_STATE` when the Shutdown IC is not connected or the guest refused;
   *   `HV_ERR_TIMEOUT` after `timeoutMs` without an exit.
   */
  shutdown(timeoutMs: number): Promise<void>;
  /** Terminates the guest worker at once (power off). Resolves when it is gone. */
  turnOff(): Promise<void>;
  /** Offers (true) or rescinds (false) an implemented service's channel. */
  setOffered(name: IntegrationServiceName, offered: boolean): void;
  icStatus(name: IntegrationServiceName): IcStatus;
  heartbeat(): HeartbeatStatus;
  lsvmbus(): LsvmbusEntry[];
  /**
   * Copy-VMFile into the guest through the Guest Service Interface (see host/copy-vmfile.ts).
   * @throws HvError `HV_ERR_INVALID_STATE` when the service is not connected; as `copyVmFile`.
   */
  copyFile?(req: CopyVmFileRequest, opts?: CopyVmFileOptions): Promise<number>;
  /** The connected VSS device (backup requests, host/vss-requestor.ts), or null when VSS is not connected. */
  vssDevice?(): VssHost | null;
  /** Guest IP addresses (from KVP; empty until KVP is built). */
  ipAddresses(): string[];
  /** The VM's KVP exchange (Msvm_KvpExchangeComponent), when the session has one. */
  readonly kvp?: KvpExchange;
  /** The VM's SCSI controllers and attached images (storvsp), when the session has them. */
  readonly storage?: VmStorage;
  /** Posts a device command to the guest worker (storage NBD exports: see src/guest/storage.ts). */
  sendGuest?(command: unknown): void;
}

export type VmSessionFactory = (cfg: VmConfig) => Promise<VmSession>;
