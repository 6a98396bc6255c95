/**
 * The guest "kernel" of one VM (design.md "Guest OS model"): a VMBus client with a driver registry keyed
 * by class GUID, like Linux's `vmbus_driver` id tables. The utility drivers are Linux's `hv_utils` (rings
 * of 16 KiB each way, `HV_UTIL_RING_SEND_SIZE`/`_RECV_SIZE` = VMBUS_RING_SIZE(3 * 4096), drivers/hv/hv_util.c):
 * heartbeat, shutdown (whose OS hook really powers this guest off: reply, close channels with UNLOAD,
 * leave) and time sync (which keeps the guest's clock as an offset from the host's, never touching the
 * host's own clock).
 *
 * The kernel reports to its host over a callback (the worker's port): `connected`, the `devices` list
 * (lsvmbus) after each change, `clock` offsets, and `poweroff` before it stops.
 */
import { FcopyGuest } from '../devices/fcopy/guest.ts';
import { HeartbeatGuest } from '../devices/heartbeat/guest.ts';
import type { IcGuestFlavor } from '../devices/ic/guest.ts';
import { ShutdownGuest, type ShutdownKind } from '../devices/shutdown/guest.ts';
import { TimesyncGuest } from '../devices/timesync/guest.ts';
import { VssGuest } from '../devices/vss/guest.ts';
import {
  HV_FCOPY_GUID,
  HV_HEART_BEAT_GUID,
  HV_KVP_GUID,
  HV_SHUTDOWN_GUID,
  HV_TS_GUID,
  HV_VSS_GUID,
} from '../protocol/vmbus/device-guids.ts';
import type { Clock } from '../vmbus/channel-io.ts';
import type { VmbusClient, VmbusDriver } from '../vmbus/client.ts';
import type { GuestMemory } from '../vmbus/memory.ts';
import { serveFcopy } from './daemons/fcopy/in-process.ts';
import { emergencyThaw, serveVss, VssDaemon, type VssPolicy } from './daemons/vss/daemon.ts';
import { GuestKvpService } from './kvp-service.ts';
import { type GuestDiskReport, GuestStorage } from './storage.ts';
import { GuestUapiService } from './uapi-service.ts';

/** Linux HV_UTIL_RING_SEND_SIZE / HV_UTIL_RING_RECV_SIZE: VMBUS_RING_SIZE(3 * 4096) = 16 KiB. */
const HV_UTIL_RING_BYTES = 4 * 4096;

/** One row of the guest's bus listing (the host validates and shows it as lsvmbus). */
export interface GuestDeviceEntry {
  VMBusId: number;
  ClassId: string;
  DeviceId: string;
  Description: string;
  Driver: string | null;
}

/** What the kernel tells its host. */
export type KernelReport =
  | { type: 'connected'; version: number }
  | { type: 'devices'; devices: GuestDeviceEntry[] }
  | { type: 'clock'; offsetMs: number }
  | { type: 'poweroff'; reason: string }
  | { type: 'fatal'; message: string }
  | { type: 'disks'; disks: GuestDiskReport[] };

export interface GuestKernelOptions {
  /** The VMBus client over this VM's SynIC and RAM (vm-link.ts `guestSideOfSharedVm`). */
  client: VmbusClient;
  /** Guest RAM; when given, the storage driver (hv_storvsc) is registered (src/guest/storage.ts). */
  memory?: GuestMemory;
  report(r: KernelReport): void;
  /** The partition reference counter now, 100-ns ticks since the VM started (shared with the host). */
  referenceTime(): bigint;
  /** Called once the kernel has shut down (UNLOAD done or given up); the worker then exits. */
  halt(): void;
  /** Negotiation rules of the IC drivers (default linux). */
  flavor?: IcGuestFlavor;
  /** The host clock the guest clock is an offset of (default Date.now, unref'd timers). */
  hostClock?: Clock;
  /** Run our hv_fcopy_daemon in-process on the fcopy node (default true; false leaves the node free). */
  fcopyDaemon?: boolean;
  /** Unix socket where outside fcopy daemons attach (uapi bridge), e.g. Debian's via native/hvshim. */
  fcopyBridgeSocket?: string | null;
  /**
   * Policy of our in-process hv_vss_daemon (default: freeze nothing, so FREEZE succeeds without touching a
   * filesystem); null leaves `/dev/vmbus/hv_vss` to an outside daemon.
   */
  vssPolicy?: VssPolicy | null;
  /** Unix socket where outside VSS daemons attach. */
  vssBridgeSocket?: string | null;
  /**
   * The kernel's emergency thaw, run when a VSS daemon dies or closes `/dev/vmbus/hv_vss` with a freeze
   * outstanding (src/devices/vss/guest.ts `onOrphanedFreeze`). Default: FITHAW on the in-process policy's
   * mount points (none by default), through the same ioctl our daemon uses.
   */
  vssEmergencyThaw?: () => void;
  /** Pool directory of our in-process hv_kvp_daemon; null or absent runs none (the node waits for an outside daemon). */
  kvpRoot?: string | null;
  /** Unix socket where outside KVP daemons attach (uapi bridge), e.g. Debian's via native/hvshim. */
  kvpBridgeSocket?: string | null;
}

/** How long UNLOAD may take at power-off before the kernel leaves anyway, ms. */
const UNLOAD_TIMEOUT_MS = 2000;
const DEVICE_POLL_MS = 500;

export class GuestKernel {
  readonly client: VmbusClient;
  readonly storage: GuestStorage | null = null;
  /** KVP driver, its /dev/vmbus/hv_kvp node, our daemon and/or the bridge (`kvp.start()` starts them). */
  readonly kvp: GuestKvpService;
  /** File copy driver, `/dev/vmbus/hv_fcopy`, our daemon and/or its bridge (`start()` starts the bridge). */
  readonly fcopy: GuestUapiService<FcopyGuest>;
  /** VSS driver, `/dev/vmbus/hv_vss`, our daemon and/or its bridge. */
  readonly vss: GuestUapiService<VssGuest>;
  readonly #o: GuestKernelOptions;
  readonly #hostClock: Clock;
  /** Guest wall clock minus host wall clock, ms (set by time sync). */
  #offsetMs = 0;
  #lastDevices = '';
  #poll: ReturnType<typeof setInterval> | null = null;
  #halting = false;

  constructor(o: GuestKernelOptions) {
    this.#o = o;
    this.#hostClock = o.hostClock ?? {
      now: () => Date.now(),
      setTimer: (ms, cb) => {
        const t = setTimeout(cb, ms);
        t.unref();
        return () => clearTimeout(t);
      },
    };
    this.client = o.client;
    if (o.memory)
      this.storage = new GuestStorage(o.client, o.memory, (disks) => o.report({ type: 'disks', disks }));
    const flavor = o.flavor ?? 'linux';
    const util = (attach: VmbusDriver['attach']): VmbusDriver => ({
      name: 'hv_utils',
      sendRingBytes: HV_UTIL_RING_BYTES,
      recvRingBytes: HV_UTIL_RING_BYTES,
      attach: (offer, ch) => {
        const h = attach(offer, ch);
        setImmediate(() => this.#reportDevices());
        return h;
      },
      detach: () => setImmediate(() => this.#reportDevices()),
    });
    this.client.registerDriver(
      HV_HEART_BEAT_GUID,
      util((_, ch) => new HeartbeatGuest(ch, { flavor })),
    );
    this.client.registerDriver(
      HV_SHUTDOWN_GUID,
      util((_, ch) => new ShutdownGuest(ch, { flavor, onShutdown: (kind) => this.#onShutdown(kind) })),
    );
    this.kvp = new GuestKvpService({
      clock: this.clock,
      flavor,
      daemonRoot: o.kvpRoot ?? null,
      bridgeSocket: o.kvpBridgeSocket ?? null,
    });
    this.client.registerDriver(
      HV_KVP_GUID,
      util((_, ch) => this.kvp.attach(ch)),
    );
    // Like systemd starting hv-fcopy-daemon / hv-vss-daemon when their device node appears.
    this.fcopy = new GuestUapiService({
      path: '/dev/vmbus/hv_fcopy',
      driver: (ch, toDaemon) => new FcopyGuest(ch, { clock: this.clock, flavor, toDaemon }),
      daemon: o.fcopyDaemon === false ? null : (f) => serveFcopy(f, { log: () => {} }),
      bridgeSocket: o.fcopyBridgeSocket ?? null,
    });
    this.client.registerDriver(
      HV_FCOPY_GUID,
      util((_, ch) => this.fcopy.attach(ch)),
    );
    const vssPolicy = o.vssPolicy === undefined ? { mountPoints: [] } : o.vssPolicy;
    this.vss = new GuestUapiService({
      path: '/dev/vmbus/hv_vss',
      driver: (ch, toDaemon) =>
        new VssGuest(ch, {
          clock: this.clock,
          flavor,
          toDaemon,
          onOrphanedFreeze: o.vssEmergencyThaw ?? (() => emergencyThaw(vssPolicy?.mountPoints ?? [])),
        }),
      daemon:
        vssPolicy === null
          ? null
          : async (f) => {
              let d: VssDaemon;
              try {
                d = new VssDaemon({ ...vssPolicy, log: () => {} });
              } catch (e) {
                f.close();
                throw e;
              }
              await serveVss(f, d);
            },
      bridgeSocket: o.vssBridgeSocket ?? null,
    });
    this.client.registerDriver(
      HV_VSS_GUID,
      util((_, ch) => this.vss.attach(ch)),
    );
    this.client.registerDriver(
      HV_TS_GUID,
      util((_, ch) => {
        const ts: TimesyncGuest = new TimesyncGuest(ch, {
          flavor,
          clock: this.clock,
          referenceTime: o.referenceTime,
          setClock: (hostUnixMs) => {
            this.#offsetMs = hostUnixMs - this.#hostClock.now();
            queueMicrotask(() => this.#o.report({ type: 'clock', offsetMs: ts.offsetMs ?? this.#offsetMs }));
          },
        });
        return ts;
      }),
    );
  }

  /** The guest's wall clock: the host's plus the offset time sync set. */
  readonly clock: Clock = {
    now: () => this.#hostClock.now() + this.#offsetMs,
    setTimer: (ms, cb) => this.#hostClock.setTimer(ms, cb),
  };

  /**
   * Connects to VMBus (version negotiation, offers) and reports `connected` and the device list.
   * @throws HvError when no VMBus version is accepted.
   */
  async boot(): Promise<void> {
    const version = await this.client.connect();
    this.#o.report({ type: 'connected', version });
    this.#reportDevices();
    this.#poll = setInterval(() => this.#reportDevices(), DEVICE_POLL_MS);
  }

  #reportDevices(): void {
    const devices = this.client
      .list()
      .filter((c) => c.state !== 'released')
      .map((c) => ({
        VMBusId: c.relid,
        ClassId: c.classId,
        DeviceId: c.instanceId,
        Description: c.deviceName,
        Driver: c.driver,
      }));
    const key = JSON.stringify(devices);
    if (key === this.#lastDevices) return;
    this.#lastDevices = key;
    this.#o.report({ type: 'devices', devices });
  }

  #onShutdown(kind: ShutdownKind): void {
    // The reply is already in the ring; Linux runs orderly_poweroff from a work item, so do the same later.
    setImmediate(() => void this.poweroff(kind));
  }

  /**
   * Powers the guest off: UNLOAD (every channel closed), `poweroff` report, then `halt`. Idempotent.
   * Reboot and hibernate requests power off too (the host decides whether to start the VM again).
   */
  async poweroff(reason: string): Promise<void> {
    if (this.#halting) return;
    this.#halting = true;
    if (this.#poll) clearInterval(this.#poll);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        this.client.unload(),
        new Promise<void>((r) => {
          timer = setTimeout(r, UNLOAD_TIMEOUT_MS);
        }),
      ]);
    } catch {
      // Not connected: nothing to unload.
    } finally {
      clearTimeout(timer);
    }
    this.#o.report({ type: 'poweroff', reason });
    this.#o.halt();
  }
}
