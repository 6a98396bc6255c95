/**
 * The guest side of VMBus (the role of Linux drivers/hv/{connection,channel_mgmt,channel}.c and FreeBSD
 * sys/dev/hyperv/vmbus/vmbus.c; reference vmbus-core-ics.md §1, §4, §5).
 *
 * - connect(): walks down its version list (Linux 5.3 … 2.4 by default, capped by `maxVersion` like Linux's
 *   `max_version` parameter; {@link FREEBSD_VMBUS_VERSIONS} as an option). INITIATE_CONTACT goes on
 *   connection id 4 from 5.0, else 1; HV_STATUS_INVALID_CONNECTION_ID or a refusal moves to the next lower
 *   version. From 5.0 later messages use the msg_conn_id of VERSION_RESPONSE. Then REQUESTOFFERS; the
 *   promise resolves at ALLOFFERS_DELIVERED.
 * - Drivers are registered by class GUID. An offer whose class has a driver is opened: both rings in one
 *   guest allocation (send ring then receive ring, each a 4 KiB control page + data), one GPADL over them
 *   (handles from 0xE1E10, split over GPADL_HEADER/BODY), OPENCHANNEL with openid = relid and
 *   downstream offset = send-ring pages, then `attach`. Sub-channel offers (same type and instance,
 *   sub_channel_index > 0) go to the primary's driver.
 * - Rescind: the driver is detached, CLOSECHANNEL, ring GPADL teardown, then RELID_RELEASED; a rescind in the
 *   middle of an open finishes the steps already started, then releases.
 * - modifyChannel (>= 4.1; waits for MODIFYCHANNEL_RESPONSE from 5.3), unload (UNLOAD → UNLOAD_RESPONSE,
 *   sent from 3.0 as Linux; then connect() may run again).
 *
 * The host is untrusted: malformed or unexpected messages (bad relid, duplicate offer, orphan sub-channel,
 * responses nobody waits for) are counted in `stats.protocolErrors`, logged and ignored.
 */
import { HvError } from '../protocol/errors.ts';
import type { Guid } from '../protocol/guid.ts';
import {
  CHANNELMSG_ALLOFFERS_DELIVERED,
  CHANNELMSG_CLOSECHANNEL,
  CHANNELMSG_GPADL_CREATED,
  CHANNELMSG_GPADL_TEARDOWN,
  CHANNELMSG_GPADL_TORNDOWN,
  CHANNELMSG_INITIATE_CONTACT,
  CHANNELMSG_MODIFYCHANNEL,
  CHANNELMSG_MODIFYCHANNEL_RESPONSE,
  CHANNELMSG_OFFERCHANNEL,
  CHANNELMSG_OPENCHANNEL,
  CHANNELMSG_OPENCHANNEL_RESULT,
  CHANNELMSG_RELID_RELEASED,
  CHANNELMSG_REQUESTOFFERS,
  CHANNELMSG_RESCIND_CHANNELOFFER,
  CHANNELMSG_TL_CONNECT_RESULT,
  CHANNELMSG_UNLOAD,
  CHANNELMSG_UNLOAD_RESPONSE,
  CHANNELMSG_VERSION_RESPONSE,
  type ChannelMessage,
  channelMessageName,
  decodeChannelMessage,
  type OfferChannel,
} from '../protocol/vmbus/channel-messages.ts';
import {
  GPADL_FIRST_HANDLE,
  HV_STATUS_INSUFFICIENT_BUFFERS,
  HV_STATUS_INVALID_CONNECTION_ID,
  HV_STATUS_SUCCESS,
  LINUX_VMBUS_VERSIONS,
  MAX_CHANNEL_RELIDS,
  MAX_USER_DEFINED_BYTES,
  VERSION_WIN8_1,
  VERSION_WIN10_V4_1,
  VERSION_WIN10_V5,
  VERSION_WIN10_V5_3,
  VMBUS_CHANNEL_NAMED_PIPE_MODE,
  VMBUS_MESSAGE_CONNECTION_ID,
  VMBUS_MESSAGE_CONNECTION_ID_4,
  VMBUS_MESSAGE_SINT,
  versionString,
} from '../protocol/vmbus/constants.ts';
import { lsvmbusName } from '../protocol/vmbus/device-guids.ts';
import { gpadlMessages } from '../protocol/vmbus/gpadl-messages.ts';
import { HV_HYP_PAGE_SIZE } from '../protocol/vmbus/packet.ts';
import type { ChannelHandler, ChannelIo } from './channel-io.ts';
import type { GuestMemory } from './memory.ts';
import { MessageOutbox } from './message-outbox.ts';
import { initRing } from './ring.ts';
import { RingChannel } from './ring-channel.ts';
import type { SynicPort } from './synic.ts';

/** An offer as the guest keeps it (validated OFFERCHANNEL fields). */
export interface GuestOffer {
  relid: number;
  ifType: Guid;
  ifInstance: Guid;
  subChannelIndex: number;
  connectionId: number;
  monitorId: number;
  monitorAllocated: boolean;
  isDedicatedInterrupt: boolean;
  chnFlags: number;
  mmioMegabytes: number;
  /** 120 offer bytes (`u.std.user_def`). */
  userDefined: Uint8Array;
  /** First u32 of user_def when NAMED_PIPE_MODE is set. */
  pipeMode: number | null;
}

/** A guest driver for one device class (Linux `struct hv_driver`, FreeBSD probe/attach). */
export interface VmbusDriver {
  /** Shown in listings (e.g. `hv_utils`). */
  name: string;
  /** Guest→host ring size in bytes, control page included (multiple of 4096, ≥ 8192; Linux ICs 16 KiB). */
  sendRingBytes: number;
  /** Host→guest ring size in bytes, likewise. */
  recvRingBytes: number;
  /** OPENCHANNEL userdata (≤ 120 bytes), default zeros. */
  userdata?: Uint8Array;
  /** Called once the channel (primary or sub-channel) is open; returns the packet handler. */
  attach(offer: GuestOffer, ch: ChannelIo): ChannelHandler;
  /** Called when the channel goes away (rescind, close, unload) after the handler's onClose. */
  detach?(offer: GuestOffer, reason?: Error): void;
}

export type GuestChannelState = 'offered' | 'opening' | 'open' | 'closing' | 'closed' | 'failed' | 'released';

/** One row of {@link VmbusClient.list}, in the spirit of Linux tools/hv/lsvmbus. */
export interface LsvmbusEntry {
  relid: number;
  classId: string;
  deviceName: string;
  instanceId: string;
  subChannelIndex: number;
  state: GuestChannelState;
  rescinded: boolean;
  targetVp: number;
  /** 0..127, or 255 when the host allocated none. */
  monitorId: number;
  driver: string | null;
}

export interface ClientLogEvent {
  level: 'warn' | 'info';
  message: string;
  relid?: number;
}

export interface ClientStats {
  messagesIn: number;
  protocolErrors: number;
  eventsIn: number;
}

export interface VmbusClientOptions {
  synic: SynicPort;
  memory: GuestMemory;
  /** Versions to try, highest first (default Linux's list). */
  versions?: readonly number[];
  /** Skip versions above this (Linux `max_version`). */
  maxVersion?: number;
  /** VP index for control messages (INITIATE_CONTACT target_vcpu) and default channel target. */
  targetVcpu?: number;
  log?: (e: ClientLogEvent) => void;
}

interface GuestChannel {
  offer: GuestOffer;
  state: GuestChannelState;
  rescinded: boolean;
  driver: VmbusDriver | null;
  /** First PFN and page count of the ring allocation, or -1. */
  ringPfn: number;
  ringPages: number;
  ringGpadl: number;
  /** GPADL_CREATED / OPENCHANNEL_RESULT / GPADL_TORNDOWN outstanding. */
  waiting: 'created' | 'open-result' | 'torndown' | null;
  /** State after the ring GPADL is torn down. */
  nextState: GuestChannelState;
  ring: RingChannel | null;
  targetVp: number;
  modifyWaiters: ((status: number) => void)[];
}

type Phase = 'disconnected' | 'contacting' | 'connected' | 'unloading';

export class VmbusClient {
  readonly stats: ClientStats = { messagesIn: 0, protocolErrors: 0, eventsIn: 0 };
  readonly #synic: SynicPort;
  readonly #memory: GuestMemory;
  readonly #versions: number[];
  readonly #targetVcpu: number;
  readonly #log: (e: ClientLogEvent) => void;
  readonly #outbox: MessageOutbox;
  readonly #drivers = new Map<string, VmbusDriver>();
  readonly #channels = new Map<number, GuestChannel>();
  /** Other GPADLs (driver buffers) waiting for CREATED / TORNDOWN: handle → callbacks. */
  readonly #gpadlWaiters = new Map<number, { relid: number; done: (status: number) => void }>();
  #phase: Phase = 'disconnected';
  #version: number | null = null;
  #msgConnId = VMBUS_MESSAGE_CONNECTION_ID;
  #tryIndex = 0;
  #nextGpadl = GPADL_FIRST_HANDLE;
  #monitorPfn = -1;
  #connectWaiter: { resolve: (v: number) => void; reject: (e: Error) => void } | null = null;
  #unloadWaiter: (() => void) | null = null;
  #offersDone = false;

  constructor(opts: VmbusClientOptions) {
    this.#synic = opts.synic;
    this.#memory = opts.memory;
    const max = opts.maxVersion ?? Number.MAX_SAFE_INTEGER;
    this.#versions = (opts.versions ?? LINUX_VMBUS_VERSIONS).filter((v) => v <= max);
    this.#targetVcpu = opts.targetVcpu ?? 0;
    this.#log = opts.log ?? (() => {});
    this.#outbox = new MessageOutbox(opts.synic);
    opts.synic.listen({
      onMessage: (_conn, payload) => this.#onMessage(payload),
      onEvent: (relid) => this.#onEvent(relid),
      onSlotFree: () => this.#outbox.flush(),
    });
  }

  /** Negotiated version, or null. */
  get version(): number | null {
    return this.#version;
  }

  /** Message connection id in use (1, or the host's msg_conn_id from 5.0). */
  get messageConnectionId(): number {
    return this.#msgConnId;
  }

  /**
   * Registers the driver for a class GUID; offers of that class (already present or later) are opened.
   * @throws HvError HV_ERR_INVALID_ARGUMENT for bad ring sizes or userdata; HV_ERR_ALREADY_EXISTS when the
   *   class already has a driver.
   */
  registerDriver(classGuid: Guid, driver: VmbusDriver): void {
    for (const [what, n] of [
      ['sendRingBytes', driver.sendRingBytes],
      ['recvRingBytes', driver.recvRingBytes],
    ] as const) {
      if (!Number.isInteger(n) || n < 2 * HV_HYP_PAGE_SIZE || n % HV_HYP_PAGE_SIZE !== 0) {
        throw new HvError(
          'HV_ERR_INVALID_ARGUMENT',
          `${driver.name}: ${what} ${n} must be a multiple of 4096, at least 8192`,
        );
      }
    }
    if ((driver.userdata?.length ?? 0) > MAX_USER_DEFINED_BYTES) {
      throw new HvError('HV_ERR_INVALID_ARGUMENT', `${driver.name}: userdata is at most 120 bytes`);
    }
    const key = classGuid.toString();
    if (this.#drivers.has(key))
      throw new HvError('HV_ERR_ALREADY_EXISTS', `a driver for class ${key} is registered`);
    this.#drivers.set(key, driver);
    if (this.#phase === 'connected') for (const ch of this.#channels.values()) this.#probe(ch);
  }

  /**
   * Negotiates a version and collects the offers.
   * @returns the negotiated version once ALLOFFERS_DELIVERED arrived.
   * @throws HvError HV_ERR_UNSUPPORTED when the host accepted none of the versions; HV_ERR_INVALID_STATE
   *   when already connected or connecting.
   */
  connect(): Promise<number> {
    if (this.#phase !== 'disconnected') {
      return Promise.reject(new HvError('HV_ERR_INVALID_STATE', `VMBus client is ${this.#phase}`));
    }
    if (this.#monitorPfn < 0) this.#monitorPfn = this.#memory.allocPages(3);
    return new Promise<number>((resolve, reject) => {
      this.#connectWaiter = { resolve, reject };
      this.#phase = 'contacting';
      this.#tryIndex = 0;
      this.#offersDone = false;
      this.#tryVersion();
    });
  }

  /**
   * Retargets a channel's interrupts (MODIFYCHANNEL). From 5.3 resolves with the host's status; before,
   * resolves with 0 at once (fire-and-forget, as Linux).
   * @throws HvError HV_ERR_UNSUPPORTED below 4.1; HV_ERR_NOT_FOUND for an unknown or unopened relid.
   */
  modifyChannel(relid: number, targetVp: number): Promise<number> {
    const v = this.#version;
    if (v === null || v < VERSION_WIN10_V4_1) {
      return Promise.reject(new HvError('HV_ERR_UNSUPPORTED', 'MODIFYCHANNEL needs VMBus 4.1 or later'));
    }
    const ch = this.#channels.get(relid);
    if (ch?.state !== 'open')
      return Promise.reject(new HvError('HV_ERR_NOT_FOUND', `no open channel ${relid}`));
    this.#post({ msgtype: CHANNELMSG_MODIFYCHANNEL, childRelid: relid, targetVp });
    ch.targetVp = targetVp;
    if (v < VERSION_WIN10_V5_3) return Promise.resolve(0);
    return new Promise((resolve) => ch.modifyWaiters.push(resolve));
  }

  /**
   * Closes an open channel from the guest side (CLOSECHANNEL, then ring GPADL teardown).
   * @throws HvError HV_ERR_NOT_FOUND when `relid` is not open.
   */
  closeChannel(relid: number): void {
    const ch = this.#channels.get(relid);
    if (!ch?.ring) throw new HvError('HV_ERR_NOT_FOUND', `no open channel ${relid}`);
    ch.ring.close();
  }

  /**
   * Creates a GPADL over `pfns` on an open channel (e.g. a netvsc receive buffer).
   * @returns the handle once the host answered GPADL_CREATED with success.
   * @throws HvError HV_ERR_IO when the host refused it.
   */
  createGpadl(relid: number, pfns: ArrayLike<number>): Promise<number> {
    const id = this.#nextGpadl++;
    const msgs = gpadlMessages(relid, id, pfns);
    return new Promise((resolve, reject) => {
      this.#gpadlWaiters.set(id, {
        relid,
        done: (status) =>
          status === 0
            ? resolve(id)
            : reject(new HvError('HV_ERR_IO', `host refused GPADL ${id}: status 0x${status.toString(16)}`)),
      });
      for (const m of msgs) this.#post(m);
    });
  }

  /** Tears down a GPADL from {@link createGpadl}; resolves at GPADL_TORNDOWN. */
  teardownGpadl(relid: number, gpadl: number): Promise<void> {
    return new Promise((resolve) => {
      this.#gpadlWaiters.set(gpadl, { relid, done: () => resolve() });
      this.#post({ msgtype: CHANNELMSG_GPADL_TEARDOWN, childRelid: relid, gpadl });
    });
  }

  /**
   * UNLOAD: closes every channel and disconnects (Linux sends UNLOAD only from 3.0; below that the client
   * just forgets the connection). connect() may run again afterwards.
   */
  unload(): Promise<void> {
    if (this.#phase !== 'connected')
      return Promise.reject(new HvError('HV_ERR_INVALID_STATE', 'not connected'));
    this.#detachAll(new HvError('HV_ERR_CHANNEL_CLOSED', 'VMBus unloaded'));
    if (this.#version! < VERSION_WIN8_1) {
      this.#disconnected();
      return Promise.resolve();
    }
    this.#phase = 'unloading';
    return new Promise((resolve) => {
      this.#unloadWaiter = resolve;
      this.#post({ msgtype: CHANNELMSG_UNLOAD });
    });
  }

  /** The guest's view of its channels, sorted by relid (tools/hv/lsvmbus style). */
  list(): LsvmbusEntry[] {
    return [...this.#channels.values()]
      .sort((a, b) => a.offer.relid - b.offer.relid)
      .map((c) => ({
        relid: c.offer.relid,
        classId: c.offer.ifType.toString(),
        deviceName: lsvmbusName(c.offer.ifType),
        instanceId: c.offer.ifInstance.toString(),
        subChannelIndex: c.offer.subChannelIndex,
        state: c.state,
        rescinded: c.rescinded,
        targetVp: c.targetVp,
        monitorId: c.offer.monitorId,
        driver: c.driver?.name ?? null,
      }));
  }

  /** The ChannelIo of an open channel (tests, diagnostics), or null. */
  channelIo(relid: number): ChannelIo | null {
    return this.#channels.get(relid)?.ring ?? null;
  }

  // ---- internals ----

  #warn(message: string, relid?: number): void {
    this.stats.protocolErrors++;
    this.#log(relid === undefined ? { level: 'warn', message } : { level: 'warn', message, relid });
  }

  #post(msg: ChannelMessage): number {
    return this.#outbox.post(this.#msgConnId, msg);
  }

  #tryVersion(): void {
    for (;;) {
      const v = this.#versions[this.#tryIndex];
      if (v === undefined) {
        this.#phase = 'disconnected';
        const w = this.#connectWaiter;
        this.#connectWaiter = null;
        w?.reject(
          new HvError(
            'HV_ERR_UNSUPPORTED',
            `the host accepted none of VMBus versions ${this.#versions.map(versionString).join(', ') || '(none)'}`,
          ),
        );
        return;
      }
      const modern = v >= VERSION_WIN10_V5;
      // Page layout of the 3-page allocation: interrupt page, then the two monitor pages (never GPA 0).
      const intPage = this.#monitorPfn * HV_HYP_PAGE_SIZE;
      const mon = intPage + HV_HYP_PAGE_SIZE;
      const conn = modern ? VMBUS_MESSAGE_CONNECTION_ID_4 : VMBUS_MESSAGE_CONNECTION_ID;
      this.#msgConnId = conn;
      const status = this.#post({
        msgtype: CHANNELMSG_INITIATE_CONTACT,
        vmbusVersionRequested: v,
        targetVcpu: this.#targetVcpu,
        interruptPage: modern ? 0 : intPage,
        msgSint: modern ? VMBUS_MESSAGE_SINT : 0,
        msgVtl: 0,
        featureFlags: 0,
        monitorPage1: mon,
        monitorPage2: mon + HV_HYP_PAGE_SIZE,
      });
      if (status === HV_STATUS_SUCCESS || status === HV_STATUS_INSUFFICIENT_BUFFERS) return;
      // HV_STATUS_INVALID_CONNECTION_ID: this host has no connection id 4 (pre-5.0): try the next version.
      if (status !== HV_STATUS_INVALID_CONNECTION_ID)
        this.#log({ level: 'warn', message: `INITIATE_CONTACT post failed: ${status}` });
      this.#tryIndex++;
    }
  }

  #onMessage(payload: Uint8Array): void {
    this.stats.messagesIn++;
    let msg: ChannelMessage;
    try {
      msg = decodeChannelMessage(payload);
    } catch (e) {
      this.#warn(`malformed channel message from the host: ${(e as Error).message}`);
      return;
    }
    try {
      this.#dispatch(msg);
    } catch (e) {
      this.#warn(`${channelMessageName(msg.msgtype)} failed: ${(e as Error).message}`);
    }
  }

  #dispatch(msg: ChannelMessage): void {
    if (msg.msgtype === CHANNELMSG_VERSION_RESPONSE) {
      this.#versionResponse(msg.versionSupported, msg.connectionState, msg.msgConnId);
      return;
    }
    if (this.#phase !== 'connected' && this.#phase !== 'unloading') {
      this.#warn(`${channelMessageName(msg.msgtype)} while ${this.#phase}`);
      return;
    }
    switch (msg.msgtype) {
      case CHANNELMSG_OFFERCHANNEL:
        this.#offer(msg);
        return;
      case CHANNELMSG_ALLOFFERS_DELIVERED: {
        if (this.#offersDone) {
          this.#warn('second ALLOFFERS_DELIVERED');
          return;
        }
        this.#offersDone = true;
        const w = this.#connectWaiter;
        this.#connectWaiter = null;
        w?.resolve(this.#version!);
        return;
      }
      case CHANNELMSG_RESCIND_CHANNELOFFER:
        this.#rescind(msg.childRelid);
        return;
      case CHANNELMSG_GPADL_CREATED:
        this.#gpadlCreated(msg.childRelid, msg.gpadl, msg.creationStatus);
        return;
      case CHANNELMSG_OPENCHANNEL_RESULT:
        this.#openResult(msg.childRelid, msg.openid, msg.status);
        return;
      case CHANNELMSG_GPADL_TORNDOWN:
        this.#gpadlTorndown(msg.gpadl);
        return;
      case CHANNELMSG_MODIFYCHANNEL_RESPONSE: {
        const w = this.#channels.get(msg.childRelid)?.modifyWaiters.shift();
        if (!w) {
          this.#warn('MODIFYCHANNEL_RESPONSE nobody waits for', msg.childRelid);
          return;
        }
        w(msg.status);
        return;
      }
      case CHANNELMSG_UNLOAD_RESPONSE: {
        if (this.#phase !== 'unloading') {
          this.#warn('UNLOAD_RESPONSE without UNLOAD');
          return;
        }
        const w = this.#unloadWaiter;
        this.#disconnected();
        w?.();
        return;
      }
      case CHANNELMSG_TL_CONNECT_RESULT:
        this.#log({ level: 'info', message: `TL_CONNECT_RESULT status 0x${msg.status.toString(16)}` });
        return;
      default:
        this.#warn(`unexpected ${channelMessageName(msg.msgtype)} from the host`);
        return;
    }
  }

  #versionResponse(supported: number, state: number, msgConnId: number): void {
    if (this.#phase !== 'contacting') {
      this.#warn('VERSION_RESPONSE without INITIATE_CONTACT');
      return;
    }
    const v = this.#versions[this.#tryIndex]!;
    if (supported === 0) {
      this.#tryIndex++;
      this.#tryVersion();
      return;
    }
    if (state !== 0) {
      // Accepted but failed (low resources / unknown): Linux does not look; we report it and stop.
      this.#phase = 'disconnected';
      const w = this.#connectWaiter;
      this.#connectWaiter = null;
      w?.reject(
        new HvError(
          'HV_ERR_IO',
          `host accepted VMBus ${versionString(v)} but reported connection state ${state}`,
        ),
      );
      return;
    }
    this.#version = v;
    this.#msgConnId = v >= VERSION_WIN10_V5 ? msgConnId : VMBUS_MESSAGE_CONNECTION_ID;
    this.#phase = 'connected';
    this.#post({ msgtype: CHANNELMSG_REQUESTOFFERS });
  }

  #offer(m: OfferChannel): void {
    const relid = m.childRelid;
    if (relid === 0 || relid >= MAX_CHANNEL_RELIDS) {
      this.#warn(`offer with invalid relid ${relid}`);
      return;
    }
    if (this.#channels.has(relid)) {
      this.#warn(`duplicate offer for relid ${relid}`, relid);
      return;
    }
    const offer: GuestOffer = {
      relid,
      ifType: m.ifType,
      ifInstance: m.ifInstance,
      subChannelIndex: m.subChannelIndex,
      connectionId: m.connectionId,
      monitorId: m.monitorId,
      monitorAllocated: m.monitorAllocated,
      isDedicatedInterrupt: m.isDedicatedInterrupt,
      chnFlags: m.chnFlags,
      mmioMegabytes: m.mmioMegabytes,
      userDefined: m.userDefined,
      pipeMode:
        (m.chnFlags & VMBUS_CHANNEL_NAMED_PIPE_MODE) !== 0
          ? new DataView(m.userDefined.buffer, m.userDefined.byteOffset, 4).getUint32(0, true)
          : null,
    };
    if (offer.subChannelIndex !== 0 && !this.#primaryOf(offer)) {
      this.#warn(`sub-channel offer ${relid} without a primary`, relid);
      return;
    }
    const ch: GuestChannel = {
      offer,
      state: 'offered',
      rescinded: false,
      driver: null,
      ringPfn: -1,
      ringPages: 0,
      ringGpadl: 0,
      waiting: null,
      nextState: 'closed',
      ring: null,
      targetVp: this.#targetVcpu,
      modifyWaiters: [],
    };
    this.#channels.set(relid, ch);
    this.#probe(ch);
  }

  #primaryOf(o: GuestOffer): GuestChannel | undefined {
    for (const c of this.#channels.values()) {
      if (
        c.offer.subChannelIndex === 0 &&
        !c.rescinded &&
        c.offer.ifType.equals(o.ifType) &&
        c.offer.ifInstance.equals(o.ifInstance)
      ) {
        return c;
      }
    }
    return undefined;
  }

  /** Opens `ch` if a driver claims it (a primary's class driver, or the primary's driver for a sub-channel). */
  #probe(ch: GuestChannel): void {
    if (ch.state !== 'offered' || ch.rescinded) return;
    const o = ch.offer;
    const driver =
      o.subChannelIndex === 0
        ? this.#drivers.get(o.ifType.toString())
        : (this.#primaryOf(o)?.driver ?? undefined);
    if (!driver) return;
    ch.driver = driver;
    const sendPages = driver.sendRingBytes / HV_HYP_PAGE_SIZE;
    const pages = sendPages + driver.recvRingBytes / HV_HYP_PAGE_SIZE;
    let pfn: number;
    try {
      pfn = this.#memory.allocPages(pages);
    } catch (e) {
      this.#log({
        level: 'warn',
        message: `no memory for the rings of ${o.relid}: ${(e as Error).message}`,
        relid: o.relid,
      });
      ch.state = 'failed';
      return;
    }
    const view = this.#memory.pageView(pfn, pages)!;
    initRing(view.subarray(0, driver.sendRingBytes), true);
    initRing(view.subarray(driver.sendRingBytes), true);
    ch.ringPfn = pfn;
    ch.ringPages = pages;
    ch.ringGpadl = this.#nextGpadl++;
    ch.state = 'opening';
    ch.waiting = 'created';
    const pfns = Array.from({ length: pages }, (_, i) => pfn + i);
    for (const m of gpadlMessages(o.relid, ch.ringGpadl, pfns)) this.#post(m);
  }

  #gpadlCreated(relid: number, gpadl: number, status: number): void {
    const other = this.#gpadlWaiters.get(gpadl);
    if (other && other.relid === relid) {
      this.#gpadlWaiters.delete(gpadl);
      other.done(status);
      return;
    }
    const ch = this.#channels.get(relid);
    if (!ch || ch.ringGpadl !== gpadl || ch.waiting !== 'created') {
      this.#warn(`GPADL_CREATED for GPADL ${gpadl} nobody waits for`, relid);
      return;
    }
    ch.waiting = null;
    if (status !== 0) {
      this.#log({
        level: 'warn',
        message: `host refused ring GPADL of ${relid}: 0x${status.toString(16)}`,
        relid,
      });
      this.#freeRings(ch);
      this.#afterClose(ch, 'failed');
      return;
    }
    if (ch.rescinded) {
      this.#teardownRing(ch);
      return;
    }
    const d = ch.driver!;
    ch.waiting = 'open-result';
    this.#post({
      msgtype: CHANNELMSG_OPENCHANNEL,
      childRelid: relid,
      openid: relid,
      ringbufferGpadlhandle: gpadl,
      targetVp: ch.targetVp,
      downstreamRingbufferPageoffset: d.sendRingBytes / HV_HYP_PAGE_SIZE,
      userdata: d.userdata ?? new Uint8Array(MAX_USER_DEFINED_BYTES),
    });
  }

  #openResult(relid: number, openid: number, status: number): void {
    const ch = this.#channels.get(relid);
    if (ch?.waiting !== 'open-result' || openid !== relid) {
      this.#warn(`OPENCHANNEL_RESULT for ${relid} nobody waits for`, relid);
      return;
    }
    ch.waiting = null;
    if (status !== 0) {
      this.#log({ level: 'warn', message: `host refused to open ${relid}: 0x${status.toString(16)}`, relid });
      this.#teardownRing(ch, 'failed');
      return;
    }
    if (ch.rescinded) {
      this.#post({ msgtype: CHANNELMSG_CLOSECHANNEL, childRelid: relid });
      this.#teardownRing(ch);
      return;
    }
    const d = ch.driver!;
    const view = this.#memory.pageView(ch.ringPfn, ch.ringPages)!;
    const offer = ch.offer;
    const ring: RingChannel = new RingChannel(
      relid,
      view.subarray(0, d.sendRingBytes),
      view.subarray(d.sendRingBytes),
      () => this.#synic.signalEvent(offer.connectionId),
      (reason) => this.#ringClosed(ch, ring, reason),
      this.#synic.peerRunsConcurrently === true,
    );
    ch.ring = ring;
    ch.state = 'open';
    try {
      ring.attach(d.attach(offer, ring));
    } catch (e) {
      this.#log({
        level: 'warn',
        message: `${d.name} failed to attach to ${relid}: ${(e as Error).message}`,
        relid,
      });
      ring.close(e as Error);
      return;
    }
    ring.activate();
  }

  /** The ring closed (driver close, corrupt ring, rescind): tell the host and free the rings. */
  #ringClosed(ch: GuestChannel, ring: RingChannel, reason: Error | undefined): void {
    if (ch.ring !== ring) return;
    ch.ring = null;
    try {
      ch.driver?.detach?.(ch.offer, reason);
    } catch {
      // detach errors stay in the driver
    }
    for (const w of ch.modifyWaiters.splice(0)) w(-1);
    if (this.#phase !== 'connected') return;
    this.#post({ msgtype: CHANNELMSG_CLOSECHANNEL, childRelid: ch.offer.relid });
    this.#teardownRing(ch, 'closed');
  }

  #teardownRing(ch: GuestChannel, next: GuestChannelState = 'closed'): void {
    ch.state = 'closing';
    ch.waiting = 'torndown';
    ch.nextState = next;
    this.#post({ msgtype: CHANNELMSG_GPADL_TEARDOWN, childRelid: ch.offer.relid, gpadl: ch.ringGpadl });
  }

  #gpadlTorndown(gpadl: number): void {
    const other = this.#gpadlWaiters.get(gpadl);
    if (other) {
      this.#gpadlWaiters.delete(gpadl);
      other.done(0);
      return;
    }
    for (const ch of this.#channels.values()) {
      if (ch.waiting === 'torndown' && ch.ringGpadl === gpadl) {
        ch.waiting = null;
        this.#freeRings(ch);
        this.#afterClose(ch, ch.nextState);
        return;
      }
    }
    this.#warn(`GPADL_TORNDOWN for GPADL ${gpadl} nobody waits for`);
  }

  /** After the ring is gone: a rescinded channel is released, others rest in `state`. */
  #afterClose(ch: GuestChannel, state: GuestChannelState): void {
    ch.state = state;
    if (ch.rescinded) this.#release(ch);
  }

  #rescind(relid: number): void {
    const ch = this.#channels.get(relid);
    if (!ch) {
      this.#warn(`rescind of unknown relid ${relid}`, relid);
      return;
    }
    if (ch.rescinded) {
      this.#warn(`second rescind of relid ${relid}`, relid);
      return;
    }
    ch.rescinded = true;
    if (ch.ring) {
      ch.ring.close(new HvError('HV_ERR_CHANNEL_CLOSED', `channel ${relid} rescinded by the host`));
      return; // #ringClosed sends CLOSECHANNEL and tears the ring down; TORNDOWN then releases
    }
    // Opening: the pending response finishes the steps already started (see #gpadlCreated / #openResult).
    if (ch.waiting !== null) return;
    this.#release(ch);
  }

  #release(ch: GuestChannel): void {
    ch.state = 'released';
    this.#channels.delete(ch.offer.relid);
    this.#post({ msgtype: CHANNELMSG_RELID_RELEASED, childRelid: ch.offer.relid });
  }

  #freeRings(ch: GuestChannel): void {
    if (ch.ringPfn >= 0) this.#memory.freePages(ch.ringPfn, ch.ringPages);
    ch.ringPfn = -1;
    ch.ringPages = 0;
  }

  #onEvent(relid: number): void {
    this.stats.eventsIn++;
    this.#channels.get(relid)?.ring?.onInterrupt();
  }

  /** Local teardown of every channel (UNLOAD): drivers detached, rings freed, no messages. */
  #detachAll(reason: Error): void {
    const phase = this.#phase;
    this.#phase = 'unloading';
    // Rings are freed at UNLOAD_RESPONSE: the host may touch them until it has processed UNLOAD.
    for (const ch of this.#channels.values()) ch.ring?.close(reason);
    this.#phase = phase;
  }

  #disconnected(): void {
    for (const ch of this.#channels.values()) this.#freeRings(ch);
    this.#channels.clear();
    this.#gpadlWaiters.clear();
    this.#phase = 'disconnected';
    this.#version = null;
    this.#msgConnId = VMBUS_MESSAGE_CONNECTION_ID;
    this.#unloadWaiter = null;
  }
}
