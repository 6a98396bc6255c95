/**
 * KVP and guest network routes (Hyper-V exposes KVP only through WMI's Msvm_KvpExchangeComponent; the
 * network ones mirror Get-/Set-VMNetworkAdapter):
 *
 * | route | meaning |
 * |---|---|
 * | GET /vms/:name/kvp?source=guest/host/intrinsic/hostintrinsic | items |
 * | POST /vms/:name/kvp `{key, value, mode: add/modify/set}` | AddKvpItems / ModifyKvpItems |
 * | POST /vms/:name/kvp/remove `{key}` | RemoveKvpItems |
 * | GET /vms/:name/network-adapters | Get-VMNetworkAdapter, IPAddresses etc. from the guest's KVP |
 * | POST /vms/:name/network-adapters/static-ip `{adapter?, adapterId?, ipAddresses, subnets, gateways, dnsServers}` | SET_IP_INFO |
 */
import type { FastifyInstance } from 'fastify';
import { HvError } from '../../protocol/errors.ts';
import type { Host } from '../host.ts';
import type { KvpSource } from '../kvp-exchange.ts';
import { API_PREFIX } from './routes.ts';

const nameParam = {
  type: 'object',
  properties: { name: { type: 'string', minLength: 1, maxLength: 256 } },
  required: ['name'],
} as const;
const strList = { type: 'array', items: { type: 'string', maxLength: 64 }, maxItems: 32 } as const;

/** A stable VMBus instance GUID for NIC `index` of a VM (hvis does not persist NIC instance ids). */
export function nicInstanceGuid(vmId: string, index: number): string {
  const hex = vmId.replace(/-/g, '').toLowerCase();
  const tail = ((Number.parseInt(hex.slice(20), 16) + index + 1) % 0x1000000000000)
    .toString(16)
    .padStart(12, '0');
  const h = `${hex.slice(0, 20)}${tail}`;
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const colonMac = (m: string) => m.match(/../g)!.join(':');

export function registerKvpRoutes(app: FastifyInstance, host: Host): void {
  app.get<{ Params: { name: string }; Querystring: { source?: KvpSource } }>(
    `${API_PREFIX}/vms/:name/kvp`,
    {
      schema: {
        params: nameParam,
        querystring: {
          type: 'object',
          properties: { source: { type: 'string', enum: ['guest', 'host', 'intrinsic', 'hostintrinsic'] } },
        },
      },
    },
    async (req) => {
      const ex = host.vm(req.params.name).kvpExchange();
      await ex.refresh();
      return ex.items(req.query.source);
    },
  );

  app.post<{
    Params: { name: string };
    Body: { key: string; value: string; mode: 'add' | 'modify' | 'set' };
  }>(
    `${API_PREFIX}/vms/:name/kvp`,
    {
      schema: {
        params: nameParam,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['key', 'value', 'mode'],
          properties: {
            key: { type: 'string', maxLength: 4096 },
            value: { type: 'string', maxLength: 65536 },
            mode: { type: 'string', enum: ['add', 'modify', 'set'] },
          },
        },
      },
    },
    async (req) => {
      const { key, value, mode } = req.body;
      await host.vm(req.params.name).kvpExchange().setHostItem(key, value, mode);
      return { Name: key, Data: value, Source: 'host' };
    },
  );

  app.post<{ Params: { name: string }; Body: { key: string } }>(
    `${API_PREFIX}/vms/:name/kvp/remove`,
    {
      schema: {
        params: nameParam,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['key'],
          properties: { key: { type: 'string', maxLength: 4096 } },
        },
      },
    },
    async (req) => {
      await host.vm(req.params.name).kvpExchange().removeHostItem(req.body.key);
      return { removed: req.body.key };
    },
  );

  app.get<{ Params: { name: string } }>(
    `${API_PREFIX}/vms/:name/network-adapters`,
    { schema: { params: nameParam } },
    async (req) => {
      const vm = host.vm(req.params.name);
      const view = vm.view();
      let ex: ReturnType<typeof vm.kvpExchange> | null = null;
      try {
        ex = vm.kvpExchange();
      } catch {
        ex = null;
      }
      return view.NetworkAdapters.map((n, i) => {
        const nic = ex?.nic(colonMac(n.MacAddress)) ?? null;
        return {
          VMName: view.Name,
          Name: n.Name,
          SwitchName: n.SwitchName,
          MacAddress: n.MacAddress,
          AdapterId: nicInstanceGuid(view.Id, i),
          IPAddresses: nic?.IPAddresses ?? n.IPAddresses,
          Subnets: nic?.Subnets ?? [],
          DefaultGateways: nic?.DefaultGateways ?? [],
          DnsServers: nic?.DnsServers ?? [],
          DhcpEnabled: nic?.DhcpEnabled ?? null,
        };
      });
    },
  );

  app.post<{
    Params: { name: string };
    Body: {
      adapter?: string;
      ipAddresses: string[];
      subnets: string[];
      gateways?: string[];
      dnsServers?: string[];
    };
  }>(
    `${API_PREFIX}/vms/:name/network-adapters/static-ip`,
    {
      schema: {
        params: nameParam,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['ipAddresses', 'subnets'],
          properties: {
            adapter: { type: 'string', maxLength: 256 },
            ipAddresses: strList,
            subnets: strList,
            gateways: strList,
            dnsServers: strList,
          },
        },
      },
    },
    async (req) => {
      const vm = host.vm(req.params.name);
      const view = vm.view();
      const b = req.body;
      const idx = b.adapter === undefined ? 0 : view.NetworkAdapters.findIndex((n) => n.Name === b.adapter);
      if (idx < 0 || !view.NetworkAdapters[idx]) {
        throw new HvError(
          'HV_ERR_NOT_FOUND',
          `VM '${view.Name}' has no network adapter ${b.adapter === undefined ? '' : `'${b.adapter}'`}; see hvis get-vmnetworkadapter ${view.Name}`,
        );
      }
      const info = validateStaticIp(b.ipAddresses, b.subnets, b.gateways ?? [], b.dnsServers ?? []);
      await vm.kvpExchange().setStaticIp(nicInstanceGuid(view.Id, idx), info);
      return { VMName: view.Name, Name: view.NetworkAdapters[idx]!.Name, ...b };
    },
  );
}

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const V6 = /^[0-9A-Fa-f:]{2,39}$/;
const ip = (s: string) => V4.test(s) || (V6.test(s) && s.includes(':') && (s.match(/::/g)?.length ?? 0) <= 1);

/**
 * Checks each entry is a plain IPv4/IPv6 address (subnets: dotted mask or IPv6 prefix length), so nothing
 * else (`;`, spaces, shell metacharacters) ever reaches the guest.
 * @throws HvError `HV_ERR_INVALID_ARGUMENT` naming the first bad entry and what is expected.
 */
export function validateStaticIp(ips: string[], subnets: string[], gateways: string[], dns: string[]) {
  const check = (xs: string[], what: string, ok: (s: string) => boolean, want: string) => {
    for (const x of xs)
      if (!ok(x)) throw new HvError('HV_ERR_INVALID_ARGUMENT', `${what} '${x}' is not ${want}`);
  };
  if (ips.length === 0) throw new HvError('HV_ERR_INVALID_ARGUMENT', 'give at least one --static-ip address');
  check(ips, 'IP address', ip, 'an IPv4 or IPv6 address');
  check(
    subnets,
    'subnet',
    (s) => V4.test(s) || (/^\d{1,3}$/.test(s) && Number(s) <= 128),
    'a dotted IPv4 mask (255.255.255.0) or an IPv6 prefix length (64)',
  );
  check(gateways, 'gateway', ip, 'an IPv4 or IPv6 address');
  check(dns, 'DNS server', ip, 'an IPv4 or IPv6 address');
  const hasV4 = ips.some((x) => V4.test(x));
  const hasV6 = ips.some((x) => !V4.test(x));
  return {
    addrFamily: (hasV4 ? 1 : 0) | (hasV6 ? 2 : 0),
    dhcpEnabled: false,
    ipAddr: ips.join(';'),
    subNet: subnets.join(';'),
    gateWay: gateways.join(';'),
    dnsAddr: dns.join(';'),
  };
}
