/**
 * The host side of VMBus for one VM (the role of Hyper-V's VMBus server; behaviour after OpenVMM
 * vm/devices/vmbus/vmbus_server/src/channels.rs, reference vmbus-core-ics.md §1, §4, §5).
 *
 * - INITIATE_CONTACT: accepted iff the version is one the host profile knows (exact match); listens on
 *   message connection ids 1 and, when the profile reaches 5.0, 4. VERSION_RESPONSE: accepted →
 *   version_supported 1, connection_state 0, msg_conn_id = the message connection id to use (>= 5.0) or the
 *   version (< 5.0); refused → all zero; monitor pages not both set or both zero → from 2.4 on
 *   version_supported 1 + FAILED_UNKNOWN_FAILURE, before that refused. 6.0 gets VersionResponse2 with no
 *   features. A second INITIATE_CONTACT resets the connection first (as UNLOAD).
 * - REQUESTOFFERS: one OFFERCHANNEL per channel sorted by interface id then offer order, relids from 1,
 *   then ALLOFFERS_DELIVERED; a second REQUESTOFFERS is a protocol error. Later offers go out at once.
 * - GPADLs: see gpadl-table.ts. A GPADL_TEARDOWN of a GPADL held by an open ring is answered only after the
 *   channel closes (the host cannot unmap a ring in use).
 * - OPENCHANNEL: ring GPADL (one range of whole pages) split at downstream_ringbuffer_pageoffset, each ring
 *   at least 2 pages and PFN-contiguous; the device factory runs, then OPENCHANNEL_RESULT (status 0, or
 *   STATUS_UNSUCCESSFUL for any failure). CLOSECHANNEL closes the device (no reply).
 * - rescind → RESCIND_CHANNELOFFER; the relid is reused only after RELID_RELEASED.
 * - MODIFYCHANNEL (>= 4.1) retargets; MODIFYCHANNEL_RESPONSE from 5.3. UNLOAD → everything closed,
 *   UNLOAD_RESPONSE, the guest may INITIATE_CONTACT again.
 *
 * The guest is untrusted: a malformed or out-of-place message is counted in `stats.protocolErrors`,
 * reported to `log`, and ignored; nothing a guest sends throws out of the server. A channel whose ring is
 * corrupt, or whose device closes it, is rescinded.
 */
import { HvError } from '../protocol/errors.ts';
import type { Guid } from '../protocol/guid.ts';
import {
  CHANNELMSG_ALLOFFERS_DELIVERED,
  CHANNELMSG_CLOSECHANNEL,
  CHANNELMSG_GPADL_BODY,
  CHANNELMSG_GPADL_CREATED,
  CHANNELMSG_GPADL_HEADER,
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
  CHANNELMSG_TL_CONNECT_REQUEST,
  CHANNELMSG_TL_CONNECT_RESULT,
  CHANNELMSG_UNLOAD,
  CHANNELMSG_UNLOAD_RESPONSE,
  CHANNELMSG_VERSION_RESPONSE,
  type ChannelMessage,
  channelMessageName,
  decodeChannelMessage,
  type GpadlHeader,
  type InitiateContact,
  type OpenChannel,
} from '../protocol/vmbus/channel-messages.ts';
import {
  CONNECTION_STATE_FAILED_UNKNOWN_FAILURE,
  MAX_CHANNEL_RELIDS,
  MAX_USER_DEFINED_BYTES,
  MONITOR_ID_NONE,
  STATUS_CONNECTION_REFUSED,
  STATUS_SUCCESS,
  STATUS_UNSUCCESSFUL,
  VERSION_WIN8,
  VERSION_WIN10_V4_1,
  VERSION_WIN10_V5,
  VERSION_WIN10_V5_3,
  VERSION_WIN10_V6_0,
  VMBUS_CHANNEL_NAMED_PIPE_MODE,
  VMBUS_MESSAGE_CONNECTION_ID,
  VMBUS_MESSAGE_CONNECTION_ID_4,
  VMBUS_MESSAGE_SINT,
} from '../protocol/vmbus/constants.ts';
import type { GpaRange } from '../protocol/vmbus/packet.ts';
import type { ChannelHandler, ChannelIo } from './channel-io.ts';
import { type Gpadl, type GpadlProgress, GpadlTable } from './gpadl-table.ts';
import type { HostProfile } from './host-profiles.ts';
import type { GuestMemory } from './memory.ts';
import { MessageOutbox } from './message-outbox.ts';
import { RingChannel, type RingChannelStats } from './ring-channel.ts';
import type { SynicPort } from './synic.ts';

/** What a VSP offers. */
export interface OfferOptions {
  /** Class (interface type) GUID. */
  interfaceType: Guid;
  /** Instance GUID; sub-channels repeat their primary's. */
  instance: Guid;
  /** 0 (default) = primary; n > 0 = sub-channel n of the primary with the same type and instance. */
  subChannelIndex?: number;
  /** Offer `chn_flags` (VMBUS_CHANNEL_*); NAMED_PIPE_MODE is added when `pipeMode` is given. */
  flags?: number;
  /** Pipe mode (VMBUS_PIPE_TYPE_BYTE / _MESSAGE), written as the first u32 of the user-defined area. */
  pipeMode?: number;
  mmioMegabytes?: number;
  /** Device-specific offer bytes (≤ 120, or ≤ 116 after a pipe mode). */
  userDefined?: Uint8Array;
}

/** What the device factory learns about the open. */
export interface OpenInfo {
  relid: number;
  /** Negotiated VMBus version. */
  version: number;
  /** VP the guest wants interrupts on (OPENCHANNEL / MODIFYCHANNEL target_vp). */
  targetVp: number;
  /** OPENCHANNEL userdata (120 bytes). */
  userdata: Uint8Array;
  /** Looks up another GPADL the guest created on this channel (e.g. a receive buffer), or null. */
  gpadl(id: number): GpaRange[] | null;
  /** Guest memory, for GPADL and GPA-direct access. */
  memory: GuestMemory;
}

/** Builds the device's handler when the guest opens the channel. Throwing fails the open. */
export type DeviceFactory = (ch: ChannelIo, info: OpenInfo) => ChannelHandler;

/** A device's handle on its offer. */
export interface OfferHandle {
  /** Current relid, or null while not offered to a connected guest. */
  readonly relid: number | null;
  readonly state: ChannelState;
  /** Packet and signal counters of the open channel (signals suppressed by the ring rules are not counted), or null. */
  readonly stats: RingChannelStats | null;
  /** Removes the offer (hot-remove): RESCIND_CHANNELOFFER to the guest, the open device is closed. */
  rescind(): void;
}

export type ChannelState = 'idle' | 'offered' | 'open' | 'rescinded' | 'removed';

/** Something the server noticed about the guest, for logs. */
export interface ServerLogEvent {
  level: 'warn' | 'info';
  message: string;
  relid?: number;
}

export interface ServerStats {
  messagesIn: number;
  /** Malformed or out-of-place guest messages (each ignored). */
  protocolErrors: number;
  /** Guest→host interrupts for channels. */
  eventsIn: number;
  /** Channels closed because of a ring/device error. */
  channelFaults: number;
}

export interface VmbusServerOptions {
  synic: SynicPort;
  /** The VM's RAM (the host maps rings and GPADLs from it). */
  memory: GuestMemory;
  profile: HostProfile;
  /** Message connection id handed to >= 5.0 guests (default 1, as OpenVMM). */
  msgConnId?: number;
  log?: (e: ServerLogEvent) => void;
}

interface Channel {
  seq: number;
  opts: OfferOptions;
  factory: DeviceFactory;
  state: ChannelState;
  relid: number;
  connectionId: number;
  targetVp: number;
  ring: RingChannel | null;
  ringGpadl: number;
  handle: OfferHandle;
}

/** Guest→host event flag for a channel: OpenVMM `channel_id | sint << 12` (unique modulo 2048). */
function connectionIdFor(relid: number): number {
  return relid | (VMBUS_MESSAGE_SINT << 12);
}

export class VmbusServer {
  readonly stats: ServerStats = { messagesIn: 0, protocolErrors: 0, eventsIn: 0, channelFaults: 0 };
  readonly #synic: SynicPort;
  readonly #memory: GuestMemory;
  readonly #profile: HostProfile;
  readonly #msgConnId: number;
  readonly #log: (e: ServerLogEvent) => void;
  readonly #outbox: MessageOutbox;
  readonly #channels: Channel[] = [];
  readonly #byRelid = new Map<number, Channel>();
  readonly #gpadls = new GpadlTable();
  #seq = 0;
  #version: number | null = null;
  #targetVcpu = 0;
  #offersRequested = false;

  constructor(opts: VmbusServerOptions) {
    this.#synic = opts.synic;
    this.#memory = opts.memory;
    this.#profile = opts.profile;
    this.#msgConnId = opts.msgConnId ?? VMBUS_MESSAGE_CONNECTION_ID;
    this.#log = opts.log ?? (() => {});
    this.#outbox = new MessageOutbox(opts.synic);
    const ids = [VMBUS_MESSAGE_CONNECTION_ID];
    if (opts.profile.vmbusMaxVersion >= VERSION_WIN10_V5) ids.push(VMBUS_MESSAGE_CONNECTION_ID_4);
    if (!ids.includes(this.#msgConnId)) ids.push(this.#msgConnId);
    opts.synic.setConnectionIds(ids);
    opts.synic.listen({
      onMessage: (conn, payload) => this.#onMessage(conn, payload),
      onEvent: (index) => this.#onEvent(index),
      onSlotFree: () => this.#outbox.flush(),
    });
  }

  /** Negotiated VMBus version, or null when no guest is connected. */
  get version(): number | null {
    return this.#version;
  }

  get profile(): HostProfile {
    return this.#profile;
  }

  /** Messages waiting for SynIC slots (a guest that stops reading makes this grow, up to a cap). */
  get queuedMessages(): number {
    return this.#outbox.queued;
  }

  /**
   * Adds a channel offer. Offered to the guest at REQUESTOFFERS, or at once if the guest already asked.
   * @throws HvError HV_ERR_INVALID_ARGUMENT when userDefined is too long or subChannelIndex is not a u16.
   */
  offer(opts: OfferOptions, open: DeviceFactory): OfferHandle {
    const udMax = opts.pipeMode === undefined ? MAX_USER_DEFINED_BYTES : MAX_USER_DEFINED_BYTES - 4;
    if ((opts.userDefined?.length ?? 0) > udMax) {
      throw new HvError('HV_ERR_INVALID_ARGUMENT', `offer user-defined data is at most ${udMax} bytes`);
    }
    const sub = opts.subChannelIndex ?? 0;
    if (!Number.isInteger(sub) || sub < 0 || sub > 0xffff) {
      throw new HvError('HV_ERR_INVALID_ARGUMENT', `subChannelIndex ${sub} must be an integer 0..65535`);
    }
    const ch: Channel = {
      seq: this.#seq++,
      opts,
      factory: open,
      state: 'idle',
      relid: 0,
      connectionId: 0,
      targetVp: 0,
      ring: null,
      ringGpadl: 0,
      handle: {
        get relid() {
          return ch.relid === 0 ? null : ch.relid;
        },
        get state() {
          return ch.state;
        },
        get stats() {
          return ch.ring?.stats ?? null;
        },
        rescind: () => this.#rescind(ch),
      },
    };
    this.#channels.push(ch);
    if (this.#offersRequested) this.#sendOffer(ch);
    return ch.handle;
  }

  /** The channels as the host sees them (for listings). */
  channels(): {
    relid: number | null;
    interfaceType: string;
    instance: string;
    subChannelIndex: number;
    state: ChannelState;
    targetVp: number;
  }[] {
    return this.#channels.map((c) => ({
      relid: c.relid === 0 ? null : c.relid,
      interfaceType: c.opts.interfaceType.toString(),
      instance: c.opts.instance.toString(),
      subChannelIndex: c.opts.subChannelIndex ?? 0,
      state: c.state,
      targetVp: c.targetVp,
    }));
  }

  #warn(message: string, relid?: number): void {
    this.stats.protocolErrors++;
    this.#log(relid === undefined ? { level: 'warn', message } : { level: 'warn', message, relid });
  }

  #post(msg: ChannelMessage): void {
    // Host→guest messages go to the guest's SINT; the connection id is informational.
    this.#outbox.post(VMBUS_MESSAGE_SINT, msg);
  }

  #onMessage(conn: number, payload: Uint8Array): void {
    this.stats.messagesIn++;
    let msg: ChannelMessage;
    try {
      msg = decodeChannelMessage(payload);
    } catch (e) {
      this.#warn(`malformed channel message on connection ${conn}: ${(e as Error).message}`);
      return;
    }
    try {
      this.#dispatch(conn, msg);
    } catch (e) {
      // A guest must never take the host down; a bug here is logged as the guest's problem.
      this.#warn(`${channelMessageName(msg.msgtype)} failed: ${(e as Error).message}`);
    }
  }

  #dispatch(conn: number, msg: ChannelMessage): void {
    if (msg.msgtype === CHANNELMSG_INITIATE_CONTACT) {
      this.#initiateContact(conn, msg);
      return;
    }
    if (this.#version === null) {
      this.#warn(`${channelMessageName(msg.msgtype)} before INITIATE_CONTACT`);
      return;
    }
    switch (msg.msgtype) {
      case CHANNELMSG_REQUESTOFFERS:
        this.#requestOffers();
        return;
      case CHANNELMSG_GPADL_HEADER:
        this.#gpadlHeader(msg);
        return;
      case CHANNELMSG_GPADL_BODY:
        this.#gpadlResult(this.#gpadls.body(msg), msg.gpadl);
        return;
      case CHANNELMSG_GPADL_TEARDOWN:
        this.#gpadlTeardown(msg.childRelid, msg.gpadl);
        return;
      case CHANNELMSG_OPENCHANNEL:
        this.#openChannel(msg);
        return;
      case CHANNELMSG_CLOSECHANNEL:
        this.#closeChannel(msg.childRelid);
        return;
      case CHANNELMSG_RELID_RELEASED:
        this.#relidReleased(msg.childRelid);
        return;
      case CHANNELMSG_MODIFYCHANNEL:
        this.#modifyChannel(msg.childRelid, msg.targetVp);
        return;
      case CHANNELMSG_UNLOAD:
        this.#reset('guest unloaded VMBus');
        this.#post({ msgtype: CHANNELMSG_UNLOAD_RESPONSE });
        return;
      case CHANNELMSG_TL_CONNECT_REQUEST:
        // No hv_sock listeners on this host: refuse (the result message exists from 4.1).
        if (this.#version >= VERSION_WIN10_V4_1) {
          this.#post({
            msgtype: CHANNELMSG_TL_CONNECT_RESULT,
            endpointId: msg.guestEndpointId,
            serviceId: msg.hostServiceId,
            status: STATUS_CONNECTION_REFUSED,
          });
        }
        return;
      default:
        this.#warn(`unexpected ${channelMessageName(msg.msgtype)} from the guest`);
        return;
    }
  }

  #initiateContact(conn: number, m: InitiateContact): void {
    if (this.#version !== null) this.#reset('guest reconnected');
    const v = m.vmbusVersionRequested;
    const refuse = () =>
      this.#post({
        msgtype: CHANNELMSG_VERSION_RESPONSE,
        versionSupported: 0,
        connectionState: 0,
        msgConnId: 0,
      });
    if (!this.#profile.vmbusVersions.includes(v)) {
      refuse();
      return;
    }
    if (
      v >= VERSION_WIN10_V5 &&
      conn !== VMBUS_MESSAGE_CONNECTION_ID_4 &&
      conn !== VMBUS_MESSAGE_CONNECTION_ID
    ) {
      refuse();
      return;
    }
    if ((m.monitorPage1 === 0) !== (m.monitorPage2 === 0)) {
      this.#warn('INITIATE_CONTACT with only one monitor page');
      if (v < VERSION_WIN8) {
        refuse();
        return;
      }
      this.#post({
        msgtype: CHANNELMSG_VERSION_RESPONSE,
        versionSupported: 1,
        connectionState: CONNECTION_STATE_FAILED_UNKNOWN_FAILURE,
        msgConnId: 0,
      });
      return;
    }
    this.#version = v;
    this.#targetVcpu = m.targetVcpu;
    const resp: ChannelMessage = {
      msgtype: CHANNELMSG_VERSION_RESPONSE,
      versionSupported: 1,
      connectionState: 0,
      msgConnId: v >= VERSION_WIN10_V5 ? this.#msgConnId : v,
    };
    if (v >= VERSION_WIN10_V6_0) resp.supportedFeatures = 0;
    this.#post(resp);
  }

  #requestOffers(): void {
    if (this.#offersRequested) {
      this.#warn('second REQUESTOFFERS on one connection');
      return;
    }
    this.#offersRequested = true;
    const order = this.#channels
      .filter((c) => c.state === 'idle')
      .sort((a, b) => {
        const x = a.opts.interfaceType.toString();
        const y = b.opts.interfaceType.toString();
        return x < y ? -1 : x > y ? 1 : a.seq - b.seq;
      });
    for (const c of order) this.#sendOffer(c);
    this.#post({ msgtype: CHANNELMSG_ALLOFFERS_DELIVERED });
  }

  #sendOffer(c: Channel): void {
    const relid = this.#allocRelid();
    if (relid === 0) {
      this.#log({ level: 'warn', message: 'no free relid: offer not sent' });
      return;
    }
    c.relid = relid;
    c.connectionId = connectionIdFor(relid);
    c.state = 'offered';
    c.targetVp = this.#targetVcpu;
    this.#byRelid.set(relid, c);
    const o = c.opts;
    const ud = new Uint8Array(MAX_USER_DEFINED_BYTES);
    let flags = o.flags ?? 0;
    if (o.pipeMode !== undefined) {
      flags |= VMBUS_CHANNEL_NAMED_PIPE_MODE;
      new DataView(ud.buffer).setUint32(0, o.pipeMode, true);
      if (o.userDefined) ud.set(o.userDefined, 4);
    } else if (o.userDefined) {
      ud.set(o.userDefined);
    }
    this.#post({
      msgtype: CHANNELMSG_OFFERCHANNEL,
      ifType: o.interfaceType,
      ifInstance: o.instance,
      reserved: new Uint8Array(16),
      chnFlags: flags,
      mmioMegabytes: o.mmioMegabytes ?? 0,
      userDefined: ud,
      subChannelIndex: o.subChannelIndex ?? 0,
      mmioMegabytesOptional: 0,
      childRelid: relid,
      // No monitor-page signalling: the guest always signals with HvSignalEvent.
      monitorId: MONITOR_ID_NONE,
      monitorAllocated: false,
      isDedicatedInterrupt: true,
      connectionId: c.connectionId,
    });
  }

  #allocRelid(): number {
    for (let r = 1; r < MAX_CHANNEL_RELIDS; r++) if (!this.#byRelid.has(r)) return r;
    return 0;
  }

  #channel(relid: number, what: string): Channel | undefined {
    const c = this.#byRelid.get(relid);
    if (!c) this.#warn(`${what} for unknown relid ${relid}`, relid);
    return c;
  }

  #gpadlHeader(m: GpadlHeader): void {
    const c = this.#channel(m.childRelid, 'GPADL_HEADER');
    if (!c) return;
    if (c.state === 'rescinded') {
      this.#post({
        msgtype: CHANNELMSG_GPADL_CREATED,
        childRelid: m.childRelid,
        gpadl: m.gpadl,
        creationStatus: STATUS_UNSUCCESSFUL,
      });
      return;
    }
    this.#gpadlResult(this.#gpadls.header(m), m.gpadl);
  }

  #gpadlResult(p: GpadlProgress, id: number): void {
    switch (p.kind) {
      case 'more':
        return;
      case 'unknown':
        this.#warn(`GPADL_BODY for GPADL ${id} not in progress`);
        return;
      case 'failed':
        this.#warn(`GPADL ${p.id} refused: ${p.reason}`, p.relid);
        this.#post({
          msgtype: CHANNELMSG_GPADL_CREATED,
          childRelid: p.relid,
          gpadl: p.id,
          creationStatus: STATUS_UNSUCCESSFUL,
        });
        return;
      case 'created':
        this.#post({
          msgtype: CHANNELMSG_GPADL_CREATED,
          childRelid: p.gpadl.relid,
          gpadl: p.gpadl.id,
          creationStatus: STATUS_SUCCESS,
        });
        return;
    }
  }

  #gpadlTeardown(relid: number, id: number): void {
    const g = this.#gpadls.get(relid, id);
    if (!g) {
      if (this.#gpadls.isPending(relid, id)) {
        this.#gpadls.remove(relid, id);
        this.#post({ msgtype: CHANNELMSG_GPADL_TORNDOWN, gpadl: id });
        return;
      }
      this.#warn(`GPADL_TEARDOWN of unknown GPADL ${id}`, relid);
      return;
    }
    if (g.inUse) {
      // The open ring still maps these pages; answer when the channel closes.
      g.teardownPending = true;
      this.#log({
        level: 'info',
        message: `GPADL ${id} torn down while its channel is open: deferred`,
        relid,
      });
      return;
    }
    this.#gpadls.remove(relid, id);
    this.#post({ msgtype: CHANNELMSG_GPADL_TORNDOWN, gpadl: id });
  }

  #openChannel(m: OpenChannel): void {
    const c = this.#channel(m.childRelid, 'OPENCHANNEL');
    if (!c) return;
    const result = (status: number) =>
      this.#post({
        msgtype: CHANNELMSG_OPENCHANNEL_RESULT,
        childRelid: m.childRelid,
        openid: m.openid,
        status,
      });
    if (c.state === 'open') {
      this.#warn('OPENCHANNEL of an open channel', c.relid);
      return;
    }
    if (c.state !== 'offered') {
      result(STATUS_UNSUCCESSFUL);
      return;
    }
    const g = this.#gpadls.get(c.relid, m.ringbufferGpadlhandle);
    const rings = g ? this.#mapRings(g, m.downstreamRingbufferPageoffset) : null;
    if (!g || !rings || g.inUse || g.teardownPending) {
      this.#warn(`OPENCHANNEL with unusable ring GPADL ${m.ringbufferGpadlhandle}`, c.relid);
      result(STATUS_UNSUCCESSFUL);
      return;
    }
    let ring: RingChannel;
    try {
      // Host writes the host→guest (downstream) ring and reads the guest→host one.
      ring = new RingChannel(
        c.relid,
        rings.down,
        rings.up,
        () => this.#synic.signalEvent(c.relid),
        (reason) => this.#ringClosed(c, ring, reason),
        this.#synic.peerRunsConcurrently === true,
      );
      const info: OpenInfo = {
        relid: c.relid,
        version: this.#version!,
        targetVp: m.targetVp,
        userdata: m.userdata,
        gpadl: (id) => this.#gpadls.get(c.relid, id)?.ranges ?? null,
        memory: this.#memory,
      };
      c.ring = ring;
      c.state = 'open';
      ring.attach(c.factory(ring, info));
    } catch (e) {
      c.ring = null;
      c.state = 'offered';
      this.#warn(`open of relid ${c.relid} failed: ${(e as Error).message}`, c.relid);
      result(STATUS_UNSUCCESSFUL);
      return;
    }
    g.inUse = true;
    c.ringGpadl = g.id;
    c.targetVp = m.targetVp;
    result(STATUS_SUCCESS);
    ring.activate();
  }

  /** Views of the guest→host ("up") and host→guest ("down") rings, or null when the GPADL cannot hold them. */
  #mapRings(g: Gpadl, offset: number): { up: Uint8Array; down: Uint8Array } | null {
    const r = g.ranges;
    if (r.length !== 1 || r[0]!.byteOffset !== 0 || r[0]!.byteCount !== r[0]!.pfns.length * 4096) return null;
    const pfns = r[0]!.pfns;
    if (offset < 2 || pfns.length - offset < 2) return null;
    const up = this.#memory.viewOfPfns(pfns.slice(0, offset));
    const down = this.#memory.viewOfPfns(pfns.slice(offset));
    return up && down ? { up, down } : null;
  }

  #closeChannel(relid: number): void {
    const c = this.#channel(relid, 'CLOSECHANNEL');
    if (!c) return;
    if (!c.ring) {
      if (c.state !== 'rescinded') this.#warn('CLOSECHANNEL of a channel that is not open', relid);
      return;
    }
    this.#releaseRing(c, new HvError('HV_ERR_CHANNEL_CLOSED', `guest closed channel ${relid}`));
    if (c.state === 'open') c.state = 'offered';
  }

  /** Closes the device side of `c` and frees (or completes the teardown of) its ring GPADL. */
  #releaseRing(c: Channel, reason: Error): void {
    const ring = c.ring;
    if (!ring) return;
    c.ring = null;
    ring.close(reason);
    const g = this.#gpadls.get(c.relid, c.ringGpadl);
    if (g) {
      g.inUse = false;
      if (g.teardownPending) {
        this.#gpadls.remove(c.relid, g.id);
        this.#post({ msgtype: CHANNELMSG_GPADL_TORNDOWN, gpadl: g.id });
      }
    }
  }

  /** The ring channel closed itself (device close, corrupt ring): rescind the offer. */
  #ringClosed(c: Channel, ring: RingChannel, reason: Error | undefined): void {
    if (c.ring !== ring) return; // closed by #releaseRing
    this.stats.channelFaults++;
    this.#log({
      level: 'warn',
      message: `channel ${c.relid} closed: ${reason?.message ?? 'by its device'}`,
      relid: c.relid,
    });
    this.#rescind(c);
  }

  #relidReleased(relid: number): void {
    const c = this.#channel(relid, 'RELID_RELEASED');
    if (!c) return;
    if (c.state !== 'rescinded') {
      this.#warn('RELID_RELEASED of a channel that was not rescinded', relid);
      return;
    }
    if (c.ring) this.#releaseRing(c, new HvError('HV_ERR_CHANNEL_CLOSED', 'relid released'));
    this.#gpadls.removeChannel(relid);
    this.#byRelid.delete(relid);
    c.state = 'removed';
    c.relid = 0;
    const i = this.#channels.indexOf(c);
    if (i >= 0) this.#channels.splice(i, 1);
  }

  #modifyChannel(relid: number, targetVp: number): void {
    const v = this.#version!;
    if (v < VERSION_WIN10_V4_1) {
      this.#warn('MODIFYCHANNEL before protocol 4.1', relid);
      return;
    }
    const c = this.#channel(relid, 'MODIFYCHANNEL');
    if (!c) return;
    const ok = c.state === 'open';
    if (ok) c.targetVp = targetVp;
    else this.#warn('MODIFYCHANNEL of a channel that is not open', relid);
    if (v >= VERSION_WIN10_V5_3) {
      this.#post({
        msgtype: CHANNELMSG_MODIFYCHANNEL_RESPONSE,
        childRelid: relid,
        status: ok ? STATUS_SUCCESS : STATUS_UNSUCCESSFUL,
      });
    }
  }

  #onEvent(index: number): void {
    this.stats.eventsIn++;
    const c = this.#byRelid.get(index & (MAX_CHANNEL_RELIDS - 1));
    // Signals for channels that are not open (or stale ones after a close) are ignored, as on Hyper-V.
    c?.ring?.onInterrupt();
  }

  #rescind(c: Channel): void {
    if (c.state === 'removed' || c.state === 'rescinded') return;
    const i = this.#channels.indexOf(c);
    if (c.state === 'idle') {
      c.state = 'removed';
      if (i >= 0) this.#channels.splice(i, 1);
      return;
    }
    if (c.ring) this.#releaseRing(c, new HvError('HV_ERR_CHANNEL_CLOSED', `channel ${c.relid} rescinded`));
    c.state = 'rescinded';
    this.#post({ msgtype: CHANNELMSG_RESCIND_CHANNELOFFER, childRelid: c.relid });
  }

  /** Closes everything of the current connection (UNLOAD, reconnect). Offers stay, to be offered again. */
  #reset(why: string): void {
    for (const c of [...this.#channels]) {
      if (c.ring) this.#releaseRing(c, new HvError('HV_ERR_CHANNEL_CLOSED', why));
      if (c.state === 'rescinded') {
        c.state = 'removed';
        this.#channels.splice(this.#channels.indexOf(c), 1);
      } else if (c.state !== 'removed') {
        c.state = 'idle';
      }
      c.relid = 0;
    }
    this.#byRelid.clear();
    this.#gpadls.clear();
    this.#outbox.clear();
    this.#version = null;
    this.#offersRequested = false;
    this.#log({ level: 'info', message: why });
  }
}
