/**
 * Human renderings of the host's objects, as PowerShell's default formats show them: Get-VM's table
 * (`Name State CPUUsage(%) MemoryAssigned(M) Uptime Status Version`), Get-VMIntegrationService's table
 * (plus our `ProtocolVersion`), and `lsvmbus`'s lines (Linux tools/hv/lsvmbus).
 */
import type { IntegrationServiceView, LsvmbusEntry, VmView } from '../host/vm-view.ts';
import { formatTable } from './output.ts';

export const VM_COLUMNS = [
  'Name',
  'State',
  'CPUUsage(%)',
  'MemoryAssigned(M)',
  'Uptime',
  'Status',
  'Version',
] as const;

export function formatVmTable(vms: readonly VmView[]): string {
  return formatTable(
    vms.map((v) => ({
      Name: v.Name,
      State: v.State,
      'CPUUsage(%)': v.CPUUsage,
      'MemoryAssigned(M)': Math.round(v.MemoryAssigned / 1024 ** 2),
      Uptime: v.Uptime,
      Status: v.Status,
      Version: v.Version,
    })),
    VM_COLUMNS,
  );
}

export const IC_COLUMNS = [
  'VMName',
  'Name',
  'Enabled',
  'PrimaryStatusDescription',
  'SecondaryStatusDescription',
  'ProtocolVersion',
] as const;

export function formatIcTable(ics: readonly IntegrationServiceView[]): string {
  return formatTable(ics as unknown as Record<string, unknown>[], IC_COLUMNS);
}

/**
 * lsvmbus output: `VMBUS ID %2s: %s`; with verbosity 1 the class id (`Class_ID = {...} - desc`), with 2
 * also the device id, as tools/hv/lsvmbus prints them (no sysfs path or VP mapping here).
 */
export function formatLsvmbus(entries: readonly LsvmbusEntry[], verbose: number): string {
  const id = (n: number) => String(n).padStart(2);
  const lines = [...entries]
    .sort((a, b) => a.VMBusId - b.VMBusId)
    .map((e) => {
      if (verbose <= 0) return `VMBUS ID ${id(e.VMBusId)}: ${e.Description}`;
      const head = `VMBUS ID ${id(e.VMBusId)}: Class_ID = {${e.ClassId}} - ${e.Description}`;
      return verbose === 1 ? head : `${head}\n\tDevice_ID = {${e.DeviceId}}`;
    });
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

/** The live view of `hvis up`: the VM table, then per VM its heartbeat, memory, addresses and services. */
export function formatLiveView(vms: readonly VmView[]): string {
  let out = formatVmTable(vms);
  for (const v of vms) {
    const ips = v.NetworkAdapters.flatMap((n) => n.IPAddresses);
    out += `\n${v.Name}: Heartbeat ${v.Heartbeat ?? '-'}   Memory ${Math.round(v.MemoryAssigned / 1024 ** 2)} MB   `;
    out += `IP addresses ${ips.length > 0 ? ips.join(', ') : '(none reported: needs Key-Value Pair Exchange)'}\n`;
    if (v.GuestOperatingSystem) out += `${v.Name}: Guest OS ${v.GuestOperatingSystem}\n`;
    out += formatTable(
      v.IntegrationServices.map((s) => ({
        Name: s.Name,
        Enabled: s.Enabled,
        Status: s.PrimaryStatusDescription ?? '',
        Version: s.ProtocolVersion ?? '',
        Detail: s.SecondaryStatusDescription ?? '',
      })),
      ['Name', 'Enabled', 'Status', 'Version', 'Detail'],
    );
  }
  return out;
}
