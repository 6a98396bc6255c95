/**
 * The guest's intrinsic items (pool 2, KVP_POOL_AUTO), computed from the running system as Linux
 * tools/hv/hv_kvp_daemon.c does (reference/vmbus-core-ics.md §7.3): index → key, index ≥ 10 → end.
 */
import { readFileSync } from 'node:fs';
import { hostname, machine, networkInterfaces, type as osType, release } from 'node:os';

export const AUTO_KEYS = [
  'FullyQualifiedDomainName',
  'IntegrationServicesVersion',
  'NetworkAddressIPv4',
  'NetworkAddressIPv6',
  'OSBuildNumber',
  'OSName',
  'OSMajorVersion',
  'OSMinorVersion',
  'OSVersion',
  'ProcessorArchitecture',
] as const;

function osRelease(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  try {
    for (const line of readFileSync(`${root}etc/os-release`, 'utf8').split('\n')) {
      const m = /^([A-Z_]+)=(.*)$/.exec(line);
      if (m) out[m[1]!] = m[2]!.replace(/^["']|["']$/g, '');
    }
  } catch {
    // no os-release: the daemon falls back to uname
  }
  return out;
}

/**
 * FQDN: the canonical name getaddrinfo(AI_CANONNAME) gives for the host name. With the files backend that is
 * the first name of the /etc/hosts line listing the host name; without one, the host name itself.
 */
function fqdn(root: string): string {
  const h = hostname();
  try {
    for (const line of readFileSync(`${root}etc/hosts`, 'utf8').split('\n')) {
      const names = line.replace(/#.*/, '').trim().split(/\s+/).slice(1);
      if (names.includes(h)) return names[0]!;
    }
  } catch {
    // no hosts file
  }
  return h;
}

/** All addresses of one family on non-loopback interfaces, `;`-separated (getifaddrs order). */
export function addressList(family: 'IPv4' | 'IPv6'): string {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === family && !a.internal) out.push(a.address);
  }
  return out.join(';');
}

/** Values of the auto pool, in index order. `root` lets tests point at a fake `/` (default `/`). */
export function autoPoolValues(registerVersion: string, root = '/'): string[] {
  const os = osRelease(root);
  const rel = release();
  return [
    fqdn(root),
    registerVersion,
    addressList('IPv4'),
    addressList('IPv6'),
    rel,
    os.NAME ?? osType(),
    os.VERSION_ID ?? '',
    '',
    rel.split('-')[0]!,
    machine(),
  ];
}
