/**
 * GET_IP_INFO and SET_IP_INFO on the guest, as Linux tools/hv/hv_kvp_daemon.c (6.1, Debian bookworm):
 * adapters are found by MAC (`/sys/class/net/<if>/address`, compared upper-case) for GET and by VMBus
 * instance GUID (`/sys/class/net/<if>/device/device_id`) for SET. SET writes `<root>/ifcfg-<if>` and runs
 * `<scripts>/hv_set_ifconfig <file>`. Host strings are validated address by address and are never given to
 * a shell: scripts run through execFile with an argument vector.
 */
import { execFile } from 'node:child_process';
import { readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { networkInterfaces } from 'node:os';
import { ADDR_FAMILY_IPV4, ADDR_FAMILY_IPV6, type KvpIpInfo } from '../../../protocol/ic/kvp.ts';

export interface IpConfigPaths {
  /** State directory (`/var/lib/hyperv`). */
  root: string;
  /** Directory of hv_get_dns_info, hv_get_dhcp_info, hv_set_ifconfig (`/usr/libexec/hypervkvpd`). */
  scripts: string;
  /** sysfs net class (`/sys/class/net`). */
  sysNet: string;
}

function run(file: string, args: string[]): Promise<{ ok: boolean; out: string }> {
  return new Promise((res) => {
    execFile(file, args, { timeout: 10_000, maxBuffer: 64 * 1024 }, (err, stdout) =>
      res({ ok: !err, out: String(stdout) }),
    );
  });
}

async function readTrim(p: string): Promise<string | null> {
  try {
    return (await readFile(p, 'utf8')).trim();
  } catch {
    return null;
  }
}

async function ifaces(sysNet: string): Promise<string[]> {
  try {
    return (await readdir(sysNet)).filter((n) => /^[A-Za-z0-9_.:@-]{1,15}$/.test(n));
  } catch {
    return [];
  }
}

/** The interface whose MAC (upper-case, `:`-separated) is `mac`, or null. */
export async function ifaceByMac(sysNet: string, mac: string): Promise<string | null> {
  for (const n of await ifaces(sysNet)) {
    const a = await readTrim(`${sysNet}/${n}/address`);
    if (a && a.toUpperCase() === mac.toUpperCase()) return n;
  }
  return null;
}

/** The interface whose netvsc device_id equals the GUID (braces optional, case-insensitive), or null. */
export async function ifaceByGuid(sysNet: string, guid: string): Promise<string | null> {
  const want = guid.replace(/[{}]/g, '').toLowerCase();
  if (!/^[0-9a-f-]{36}$/.test(want)) return null;
  for (const n of await ifaces(sysNet)) {
    const id = await readTrim(`${sysNet}/${n}/device/device_id`);
    if (id && id.replace(/[{}]/g, '').toLowerCase() === want) return n;
  }
  return null;
}

async function defaultGateways(ifname: string): Promise<string[]> {
  const out: string[] = [];
  const v4 = await readTrim('/proc/net/route');
  for (const line of (v4 ?? '').split('\n').slice(1)) {
    const f = line.split(/\s+/);
    if (f[0] === ifname && f[1] === '00000000' && f[7] === '00000000' && f[2]) {
      const g = Number.parseInt(f[2], 16);
      out.push([0, 8, 16, 24].map((s) => (g >>> s) & 255).join('.'));
    }
  }
  const v6 = await readTrim('/proc/net/ipv6_route');
  for (const line of (v6 ?? '').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[0] === '0'.repeat(32) && f[1] === '00' && f[9] === ifname && f[4] && f[4] !== '0'.repeat(32)) {
      const g = f[4].match(/.{4}/g)!.join(':');
      out.push(g.replace(/\b0{1,3}/g, '').replace(/(^|:)(0?:)+/, '::'));
    }
  }
  return out;
}

/** Fills GET_IP_INFO for the adapter with MAC `adapterId`; null when no interface has it (HV_E_FAIL). */
export async function getIpInfo(p: IpConfigPaths, adapterId: string): Promise<KvpIpInfo | null> {
  const ifname = await ifaceByMac(p.sysNet, adapterId);
  if (!ifname) return null;
  const addrs = networkInterfaces()[ifname] ?? [];
  let family = 0;
  const ips: string[] = [];
  const masks: string[] = [];
  for (const a of addrs) {
    if (a.family === 'IPv4') {
      family |= ADDR_FAMILY_IPV4;
      ips.push(a.address);
      masks.push(a.netmask);
    } else {
      family |= ADDR_FAMILY_IPV6;
      ips.push(a.address.replace(/%.*$/, ''));
      masks.push(`/${a.cidr?.split('/')[1] ?? '128'}`);
    }
  }
  const gw = await defaultGateways(ifname);
  const dns = await run(`${p.scripts}/hv_get_dns_info`, [ifname]);
  const dhcp = await run(`${p.scripts}/hv_get_dhcp_info`, [ifname]);
  return {
    adapterId,
    addrFamily: family,
    dhcpEnabled: dhcp.out.startsWith('Enabled'),
    ipAddr: ips.join(';'),
    subNet: masks.join(';'),
    gateWay: gw.map((g) => `${g};`).join(''),
    dnsAddr: dns.out
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l)
      .map((l) => `${l};`)
      .join(''),
  };
}

/** Fully expanded lower-case IPv6 (8 groups of 4 digits), as the C daemon writes IPV6ADDR. */
export function expandIpv6(a: string): string {
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => g.toLowerCase().padStart(4, '0')).join(':');
}

/** Why SET_IP_INFO was refused. */
export type SetIpOutcome = 'ok' | 'invalid' | 'not-found' | 'failed';

const list = (s: string) =>
  s
    .split(';')
    .map((x) => x.trim())
    .filter((x) => x !== '');

/**
 * Builds the ifcfg text (HWADDR, DEVICE, BOOTPROTO, IPADDRn/IPV6ADDR..., NETMASKn/IPV6NETMASK...,
 * GATEWAY.../IPV6_DEFAULTGW..., DNSn). @returns null when any entry is not a valid address / mask.
 */
export function ifcfgText(ifname: string, mac: string, ip: KvpIpInfo): string | null {
  const lines = [`HWADDR=${mac}`, `DEVICE=${ifname}`, `BOOTPROTO=${ip.dhcpEnabled ? 'dhcp' : 'none'}`];
  let v4 = 0;
  let v6 = 0;
  for (const a of list(ip.ipAddr)) {
    if (isIPv4(a)) lines.push(`IPADDR${v4++}=${a}`);
    else if (isIPv6(a)) lines.push(`IPV6ADDR${v6++ ? `_${v6 - 1}` : ''}=${expandIpv6(a)}`);
    else return null;
  }
  v4 = 0;
  v6 = 0;
  for (const m of list(ip.subNet)) {
    if (isIPv4(m)) lines.push(`NETMASK${v4++}=${m}`);
    else if (/^\/?(\d{1,3})$/.test(m) && Number(m.replace('/', '')) <= 128)
      lines.push(`IPV6NETMASK${v6++ ? `_${v6 - 1}` : ''}=${m.replace('/', '')}`);
    else return null;
  }
  v4 = 0;
  v6 = 0;
  for (const g of list(ip.gateWay)) {
    if (isIPv4(g)) lines.push(`GATEWAY${v4++ ? v4 - 1 : ''}=${g}`);
    else if (isIPv6(g)) lines.push(`IPV6_DEFAULTGW${v6++ ? `_${v6 - 1}` : ''}=${g}`);
    else return null;
  }
  let d = 0;
  for (const s of list(ip.dnsAddr)) {
    if (isIPv4(s) || isIPv6(s)) lines.push(`DNS${++d}=${s}`);
    else return null;
  }
  return `${lines.join('\n')}\n`;
}

/** SET_IP_INFO: validate, write `<root>/ifcfg-<if>` atomically, run hv_set_ifconfig with it. */
export async function setIpInfo(p: IpConfigPaths, ip: KvpIpInfo): Promise<SetIpOutcome> {
  const ifname = await ifaceByGuid(p.sysNet, ip.adapterId);
  if (!ifname) return 'not-found';
  const mac = ((await readTrim(`${p.sysNet}/${ifname}/address`)) ?? '').toUpperCase();
  const text = ifcfgText(ifname, mac, ip);
  if (text === null) return 'invalid';
  const file = `${p.root}/ifcfg-${ifname}`;
  await writeFile(`${file}.tmp`, text, { mode: 0o644 });
  await rename(`${file}.tmp`, file);
  const r = await run(`${p.scripts}/hv_set_ifconfig`, [file]);
  return r.ok ? 'ok' : 'failed';
}
