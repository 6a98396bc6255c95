/**
 * A VM's KVP exchange, with the semantics of Hyper-V's `Msvm_KvpExchangeComponent` (WMI; there is no
 * cmdlet): host-to-guest items (pool 0, `AddKvpItems`/`ModifyKvpItems`/`RemoveKvpItems` of
 * Msvm_VirtualSystemManagementService), guest-to-host items (pool 1, `GuestExchangeItems`), the guest's
 * intrinsic items (pool 2, `GuestIntrinsicExchangeItems`: OSName, FullyQualifiedDomainName,
 * NetworkAddressIPv4, ...), host-provided intrinsic items (pool 3: HostName, VirtualMachineName, ...), and
 * IP info by NIC MAC (GET_IP_INFO) / static IP injection (SET_IP_INFO by NIC VMBus instance GUID).
 * Host items are pushed again whenever the guest's KVP service (re)connects, so they survive a guest daemon
 * restart or a reboot; the guest pools are re-read every `refreshMs`.
 */
import { hostname } from 'node:os';
import type { KvpHost, KvpResult } from '../devices/kvp/host.ts';
import { HvError } from '../protocol/errors.ts';
import { HV_E_FAIL, HV_GUID_NOTFOUND, HV_INVALIDARG, HV_S_CONT, HV_S_OK } from '../protocol/ic/icmsg.ts';
import {
  KVP_OP_DELETE,
  KVP_OP_ENUMERATE,
  KVP_OP_GET_IP_INFO,
  KVP_OP_SET,
  KVP_OP_SET_IP_INFO,
  KVP_POOL_AUTO,
  KVP_POOL_AUTO_EXTERNAL,
  KVP_POOL_EXTERNAL,
  KVP_POOL_GUEST,
  type KvpIpInfo,
} from '../protocol/ic/kvp.ts';
import type { Clock } from '../vmbus/channel-io.ts';

/** Which items: guest-written (pool 1), host-written (pool 0), guest intrinsic (pool 2), host intrinsic (pool 3). */
export type KvpSource = 'guest' | 'host' | 'intrinsic' | 'hostintrinsic';

export interface KvpItem {
  Name: string;
  Data: string;
  Source: KvpSource;
}

/** Get-VMNetworkAdapter's guest view of one NIC. */
export interface KvpNicInfo {
  MacAddress: string;
  IPAddresses: string[];
  Subnets: string[];
  DefaultGateways: string[];
  DnsServers: string[];
  DhcpEnabled: boolean;
}

export interface KvpExchangeOptions {
  clock: Clock;
  vmName: string;
  vmId: string;
  /** NIC MACs as `00:15:5D:..` (upper-case, colons) for GET_IP_INFO. */
  macs: string[];
  /** Guest pools re-read period, ms (default 5000). */
  refreshMs?: number;
}

const MAX_ITEMS = 4096;
const hex = (s: number) => `0x${s.toString(16).padStart(8, '0')}`;

const list = (s: string) =>
  s
    .split(';')
    .map((x) => x.trim())
    .filter((x) => x !== '');

export class KvpExchange {
  readonly #o: KvpExchangeOptions;
  #dev: KvpHost | null = null;
  readonly #host = new Map<string, string>();
  readonly #hostIntrinsic = new Map<string, string>();
  #guest: KvpItem[] = [];
  #intrinsic: KvpItem[] = [];
  #nics = new Map<string, KvpNicInfo>();
  /** Last failure talking to the guest's daemon, null when the last exchange worked. */
  #fault: string | null = null;
  #cancel: (() => void) | null = null;
  #refreshing = false;
  /** A refresh was asked for while one ran (e.g. the service reconnected): run another after it. */
  #again = false;
  /** True once every host item reached the guest since its daemon last failed. */
  #pushed = false;

  constructor(o: KvpExchangeOptions) {
    this.#o = o;
    this.#hostIntrinsic.set('HostName', hostname());
    this.#hostIntrinsic.set('PhysicalHostName', hostname());
    this.#hostIntrinsic.set('PhysicalHostNameFullyQualified', hostname());
    this.#hostIntrinsic.set('VirtualMachineName', o.vmName);
    this.#hostIntrinsic.set('VirtualMachineId', o.vmId.toUpperCase());
  }

  /** Binds the device of a newly opened channel (after a guest reboot or re-offer). */
  attach(dev: KvpHost): void {
    this.#dev = dev;
  }

  /** The guest negotiated: push host items, read guest pools, start refreshing. */
  onReady(): void {
    this.#pushed = false;
    void this.refresh();
    this.#schedule();
  }

  stop(): void {
    this.#cancel?.();
    this.#cancel = null;
    this.#dev = null;
  }

  /** Text for SecondaryStatusDescription when the daemon does not answer, null when healthy. */
  get fault(): string | null {
    return this.#fault;
  }

  #schedule(): void {
    this.#cancel?.();
    this.#cancel = this.#o.clock.setTimer(this.#o.refreshMs ?? 5000, () => {
      void this.refresh().finally(() => {
        if (this.#dev) this.#schedule();
      });
    });
  }

  /**
   * One KVP request to the guest's daemon, by the same path as the cmdlets' (diagnostics, bench/kvp).
   * @throws (rejects) as {@link KvpHost.request}; HvError `HV_ERR_INVALID_STATE` when the service is not connected.
   */
  request(r: Parameters<KvpHost['request']>[0]): Promise<KvpResult> {
    return this.#req(r);
  }

  async #req(r: Parameters<KvpHost['request']>[0]): Promise<KvpResult> {
    const dev = this.#dev;
    if (!dev?.ready)
      throw new HvError('HV_ERR_INVALID_STATE', `the KVP service of VM '${this.#o.vmName}' is not connected`);
    try {
      const res = await dev.request(r);
      if (res.status === HV_E_FAIL) {
        this.#fault = 'the guest KVP daemon is not running or failed (HV_E_FAIL)';
        this.#pushed = false;
      } else this.#fault = null;
      return res;
    } catch (e) {
      if (e instanceof HvError && e.code === 'HV_ERR_TIMEOUT')
        this.#fault = 'the guest KVP daemon does not answer';
      throw e;
    }
  }

  async #pushAll(): Promise<void> {
    try {
      for (const [pool, items] of [
        [KVP_POOL_AUTO_EXTERNAL, this.#hostIntrinsic],
        [KVP_POOL_EXTERNAL, this.#host],
      ] as const) {
        for (const [key, value] of items) {
          const r = await this.#req({ operation: KVP_OP_SET, pool, key, value: { type: 'string', value } });
          if (r.status !== HV_S_OK) return;
        }
      }
      this.#pushed = true;
    } catch {
      // The next refresh or reconnect tries again; the status shows the fault.
    }
  }

  async #enumerate(pool: number, source: KvpSource): Promise<KvpItem[]> {
    const out: KvpItem[] = [];
    for (let i = 0; i < MAX_ITEMS; i++) {
      const r = await this.#req({ operation: KVP_OP_ENUMERATE, pool, index: i });
      if (r.status !== HV_S_OK) {
        if (r.status !== HV_S_CONT && i === 0)
          throw new HvError('HV_ERR_IO', `guest KVP enumeration failed (${hex(r.status)})`);
        break;
      }
      out.push({ Name: r.key, Data: r.value, Source: source });
    }
    return out;
  }

  /** Re-reads the guest pools and NIC info now. Failures only set the fault. */
  async refresh(): Promise<void> {
    if (this.#refreshing) {
      this.#again = true;
      return;
    }
    if (!this.#dev?.ready) return;
    this.#refreshing = true;
    this.#again = false;
    try {
      if (!this.#pushed) await this.#pushAll();
      this.#guest = await this.#enumerate(KVP_POOL_GUEST, 'guest');
      this.#intrinsic = await this.#enumerate(KVP_POOL_AUTO, 'intrinsic');
      const nics = new Map<string, KvpNicInfo>();
      for (const mac of this.#o.macs) {
        const before = this.#fault;
        const pushed = this.#pushed;
        const r = await this.#req({
          operation: KVP_OP_GET_IP_INFO,
          pool: KVP_POOL_GUEST,
          ip: {
            adapterId: mac,
            addrFamily: 0,
            dhcpEnabled: false,
            ipAddr: '',
            subNet: '',
            gateWay: '',
            dnsAddr: '',
          },
        });
        // HV_E_FAIL here also means "no interface with that MAC in the guest": not a daemon fault.
        if (r.status === HV_E_FAIL) {
          this.#fault = before;
          this.#pushed = pushed;
        }
        if (r.status === HV_S_OK && r.ip) nics.set(mac, nicInfo(mac, r.ip));
      }
      this.#nics = nics;
    } catch {
      // fault recorded by #req
    } finally {
      this.#refreshing = false;
    }
    // A reconnect during this refresh must still get its push; the running one may have used the old channel.
    if (this.#again) await this.refresh();
  }

  /** Items of one source (host items are what the host set; the others as last read from the guest). */
  items(source?: KvpSource): KvpItem[] {
    const host = (m: Map<string, string>, s: KvpSource) =>
      [...m].map(([Name, Data]) => ({ Name, Data, Source: s }));
    const all: Record<KvpSource, KvpItem[]> = {
      guest: this.#guest,
      intrinsic: this.#intrinsic,
      host: host(this.#host, 'host'),
      hostintrinsic: host(this.#hostIntrinsic, 'hostintrinsic'),
    };
    return source ? all[source] : [...all.intrinsic, ...all.guest, ...all.host, ...all.hostintrinsic];
  }

  /** An intrinsic item's value (OSName, FullyQualifiedDomainName, ...), or null. */
  intrinsic(name: string): string | null {
    return this.#intrinsic.find((i) => i.Name === name)?.Data ?? null;
  }

  /** All guest IPv4 then IPv6 addresses: per NIC when known, else NetworkAddressIPv4/IPv6. */
  ipAddresses(mac?: string): string[] {
    if (mac) return this.#nics.get(mac.toUpperCase())?.IPAddresses ?? [];
    const fromNics = [...this.#nics.values()].flatMap((n) => n.IPAddresses);
    if (fromNics.length) return fromNics;
    return [
      ...list(this.intrinsic('NetworkAddressIPv4') ?? ''),
      ...list(this.intrinsic('NetworkAddressIPv6') ?? ''),
    ];
  }

  nic(mac: string): KvpNicInfo | null {
    return this.#nics.get(mac.toUpperCase()) ?? null;
  }

  /**
   * Add (`mode: 'add'`, fails when it exists), modify (fails when missing) or set a host item, pushed to the
   * guest's pool 0. @throws HvError `HV_ERR_INVALID_ARGUMENT` (size/encoding), `HV_ERR_ALREADY_EXISTS`,
   * `HV_ERR_NOT_FOUND`, `HV_ERR_INVALID_STATE` (service not connected), `HV_ERR_IO` (the guest refused).
   */
  async setHostItem(key: string, value: string, mode: 'add' | 'modify' | 'set'): Promise<void> {
    validateKey(key);
    if (mode === 'add' && this.#host.has(key)) {
      throw new HvError(
        'HV_ERR_ALREADY_EXISTS',
        `the host KVP item '${key}' exists; use set-vmkvp to change it`,
      );
    }
    if (mode === 'modify' && !this.#host.has(key)) {
      throw new HvError('HV_ERR_NOT_FOUND', `no host KVP item '${key}'; use add-vmkvp to create it`);
    }
    const r = await this.#req({
      operation: KVP_OP_SET,
      pool: KVP_POOL_EXTERNAL,
      key,
      value: { type: 'string', value },
    });
    if (r.status !== HV_S_OK)
      throw new HvError('HV_ERR_IO', `the guest refused the KVP item '${key}' (${hex(r.status)})`);
    this.#host.set(key, value);
  }

  /** Removes a host item from the guest's pool 0. @throws HvError `HV_ERR_NOT_FOUND`, `HV_ERR_INVALID_STATE`. */
  async removeHostItem(key: string): Promise<void> {
    validateKey(key);
    if (!this.#host.has(key)) throw new HvError('HV_ERR_NOT_FOUND', `no host KVP item '${key}'`);
    const r = await this.#req({ operation: KVP_OP_DELETE, pool: KVP_POOL_EXTERNAL, key });
    if (r.status !== HV_S_OK && r.status !== HV_S_CONT) {
      throw new HvError('HV_ERR_IO', `the guest failed to remove '${key}' (${hex(r.status)})`);
    }
    this.#host.delete(key);
  }

  /**
   * Injects a static IP configuration into the guest NIC with VMBus instance `adapterGuid`.
   * @throws HvError `HV_ERR_INVALID_ARGUMENT` for an invalid address (checked here and by the guest),
   *   `HV_ERR_NOT_FOUND` when the guest has no such adapter, `HV_ERR_IO` when its script failed.
   */
  async setStaticIp(adapterGuid: string, ip: Omit<KvpIpInfo, 'adapterId'>): Promise<void> {
    const r = await this.#req({
      operation: KVP_OP_SET_IP_INFO,
      pool: KVP_POOL_GUEST,
      ip: { ...ip, adapterId: `{${adapterGuid}}` },
    });
    if (r.status === HV_S_OK) {
      void this.refresh();
      return;
    }
    if (r.status === HV_INVALIDARG)
      throw new HvError('HV_ERR_INVALID_ARGUMENT', 'the guest rejected an address as invalid');
    if (r.status === HV_GUID_NOTFOUND)
      throw new HvError('HV_ERR_NOT_FOUND', `the guest has no network adapter {${adapterGuid}}`);
    throw new HvError('HV_ERR_IO', `the guest could not apply the IP configuration (${hex(r.status)})`);
  }
}

function nicInfo(mac: string, ip: KvpIpInfo): KvpNicInfo {
  return {
    MacAddress: mac,
    IPAddresses: list(ip.ipAddr),
    Subnets: list(ip.subNet),
    DefaultGateways: list(ip.gateWay),
    DnsServers: list(ip.dnsAddr),
    DhcpEnabled: ip.dhcpEnabled,
  };
}

/** @throws HvError `HV_ERR_INVALID_ARGUMENT` for an empty key or one longer than 255 UTF-16 units. */
export function validateKey(key: string): void {
  if (key === '') throw new HvError('HV_ERR_INVALID_ARGUMENT', 'a KVP key cannot be empty');
  if (key.length > 255) {
    throw new HvError(
      'HV_ERR_INVALID_ARGUMENT',
      `KVP key is ${key.length} characters; at most 255 fit in 512 bytes of UTF-16 with its NUL`,
    );
  }
  if (key.includes('\0')) throw new HvError('HV_ERR_INVALID_ARGUMENT', 'a KVP key cannot contain NUL');
}
