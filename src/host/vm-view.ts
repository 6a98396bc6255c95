/**
 * The PowerShell-shaped objects the API returns and `--json` prints: property names as `Get-VM`,
 * `Get-VMIntegrationService` and `Get-VMNetworkAdapter` objects have them under `ConvertTo-Json`, with
 * enums as their names (PowerShell 7 `-EnumsAsStrings`). `ProtocolVersion` and `Lsvmbus` are ours.
 */

import type { GuestDiskView } from './storage.ts';

/** Hyper-V `VMState` names hvis uses. */
export type VmState = 'Off' | 'Starting' | 'Running' | 'Stopping' | 'Saved';

/** Hyper-V `VMHeartbeatStatus` names hvis reports (null while the VM is off, as Get-VM shows blank). */
export type HeartbeatStatus =
  | 'OkApplicationsHealthy'
  | 'OkApplicationsUnknown'
  | 'OkApplicationsCritical'
  | 'NoContact'
  | 'LostCommunication'
  | 'Disabled'
  | null;

/** One `Get-VMIntegrationService` object. */
export interface IntegrationServiceView {
  VMName: string;
  VMId: string;
  Name: string;
  Enabled: boolean;
  /** "OK", "No Contact", "Lost Communication"; null when the VM is off or the service disabled. */
  PrimaryStatusDescription: string | null;
  /** Extra detail ("Protocol Mismatch", why a service is not offered); null when there is nothing to add. */
  SecondaryStatusDescription: string | null;
  /** Negotiated IC message version `major.minor` (ours; Hyper-V shows no such property), null before. */
  ProtocolVersion: string | null;
}

export interface NetworkAdapterView {
  Name: string;
  SwitchName: string;
  MacAddress: string;
  /** Reported by the guest through KVP; empty until the KVP service exists. */
  IPAddresses: string[];
}

export interface HardDriveView {
  Path: string;
  ControllerType: string;
  ControllerNumber: number;
  ControllerLocation: number;
  /** Ours: the disk as the running guest's storvsc sees it (null when off or not scanned yet). */
  GuestDisk?: GuestDiskView | null;
}

/** One `Get-VM` object. */
export interface VmView {
  Name: string;
  Id: string;
  State: VmState;
  /** Percent; hvis does not meter guest CPU yet, so 0. */
  CPUUsage: number;
  /** Bytes of guest RAM allocated (0 when off). */
  MemoryAssigned: number;
  MemoryStartup: number;
  /** TimeSpan text `[d.]hh:mm:ss` since the VM started (00:00:00 when off). */
  Uptime: string;
  /** Get-VM `Status`: "Operating normally" or what went wrong. */
  Status: string;
  /** VM configuration version of the host profile. */
  Version: string;
  Generation: number;
  ProcessorCount: number;
  Heartbeat: HeartbeatStatus;
  IntegrationServices: IntegrationServiceView[];
  NetworkAdapters: NetworkAdapterView[];
  /** Ours (Hyper-V Manager shows it, Get-VM does not): the guest OS from KVP (`OSName OSVersion`), null before. */
  GuestOperatingSystem: string | null;
  HardDrives: HardDriveView[];
}

/** One line of the guest's view of the bus, as Linux `lsvmbus -v` prints it (tools/hv/lsvmbus). */
export interface LsvmbusEntry {
  /** Channel relid. */
  VMBusId: number;
  /** Class (interface type) GUID. */
  ClassId: string;
  /** Instance GUID (the device_id). */
  DeviceId: string;
  /** lsvmbus's description of the class ("Synthetic network adapter", "[Heartbeat]"...). */
  Description: string;
  /** Name of the guest driver bound to it, or null. */
  Driver: string | null;
}

/** Formats milliseconds as a .NET TimeSpan string `[d.]hh:mm:ss`. */
export function formatTimeSpan(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86400);
  const p = (n: number) => String(n).padStart(2, '0');
  const hms = `${p(Math.floor((s % 86400) / 3600))}:${p(Math.floor((s % 3600) / 60))}:${p(s % 60)}`;
  return d > 0 ? `${d}.${hms}` : hms;
}
