/**
 * Guest half of the IC framework: version negotiation by the rules of three real guests and the reply
 * framing. Replies echo the received buffer, rewritten in place, with the same length and trans_id, as
 * VM_PKT_DATA_INBAND with descriptor flags 0 and icflags TRANSACTION|RESPONSE (Linux hv_util.c, FreeBSD
 * vmbus_ic.c `vmbus_ic_sendresp`). Sources: Linux drivers/hv/channel_mgmt.c (`vmbus_prep_negotiate_resp`);
 * FreeBSD sys/dev/hyperv/utilities/vmbus_ic.c (`vmbus_ic_negomsg`); OpenVMM
 * vm/devices/hyperv_ic_guest/src/shutdown.rs; reference/vmbus-core-ics.md §6.1–6.2.
 */
import { putU32le } from '../../protocol/bytes.ts';
import { ProtocolError } from '../../protocol/errors.ts';
import {
  compareIcVersions,
  decodeIcMessage,
  HV_E_FAIL,
  ICMSG_HDR,
  ICMSG_HDR_LAYOUT,
  ICMSGHDRFLAG_RESPONSE,
  ICMSGHDRFLAG_TRANSACTION,
  ICMSGTYPE_NEGOTIATE,
  type IcMessage,
  type IcVersion,
} from '../../protocol/ic/icmsg.ts';
import {
  decodeIcNegotiate,
  ICMSG_NEGOTIATE,
  ICMSG_NEGOTIATE_RESPONSE_SIZE,
  type IcNegotiate,
} from '../../protocol/ic/negotiate.ts';
import { VM_PKT_DATA_INBAND } from '../../protocol/vmbus/packet.ts';
import { MAX_PIPE_DATA_PAYLOAD, VMBUSPIPE_HDR } from '../../protocol/vmbus/pipe.ts';
import type { ChannelHandler, ChannelIo, IncomingPacket } from '../../vmbus/channel-io.ts';

/** Guest implementations whose negotiation rules and service behaviour we reproduce. */
export type IcGuestFlavor = 'linux' | 'freebsd' | 'openvmm';

/** The utility ICs whose negotiation lists live in this table (kvp, vss and fcopy keep theirs in their drivers). */
export type UtilityIcName = 'heartbeat' | 'shutdown' | 'timesync';

/** Byte offset of `icmsg_hdr.status` in a pipe payload. */
const STATUS_AT = VMBUSPIPE_HDR.size + ICMSG_HDR_LAYOUT.offsets.status;

const v = (major: number, minor: number): IcVersion => ({ major, minor });

/** A guest's own versions, highest first. FreeBSD lists only its maximum (it accepts anything below it). */
export interface IcGuestVersions {
  framework: readonly IcVersion[];
  message: readonly IcVersion[];
}

const GUEST: Record<IcGuestFlavor, Record<UtilityIcName, IcGuestVersions>> = {
  linux: {
    heartbeat: { framework: [v(3, 0), v(1, 0)], message: [v(3, 0), v(1, 0)] },
    shutdown: { framework: [v(3, 0), v(1, 0)], message: [v(3, 2), v(3, 1), v(3, 0), v(1, 0)] },
    timesync: { framework: [v(3, 0), v(1, 0)], message: [v(4, 0), v(3, 0), v(1, 0)] },
  },
  freebsd: {
    heartbeat: { framework: [v(3, 0)], message: [v(3, 0)] },
    shutdown: { framework: [v(3, 0)], message: [v(3, 0)] },
    timesync: { framework: [v(3, 0)], message: [v(4, 0)] },
  },
  // OpenVMM has a guest IC only for shutdown (hyperv_ic_guest/src/shutdown.rs); its lists mirror the host's.
  openvmm: {
    heartbeat: { framework: [v(3, 0), v(1, 0)], message: [v(3, 0), v(1, 0)] },
    shutdown: { framework: [v(3, 0), v(1, 0)], message: [v(3, 2), v(3, 1), v(3, 0), v(1, 0)] },
    timesync: { framework: [v(3, 0), v(1, 0)], message: [v(4, 0), v(3, 0), v(1, 0)] },
  },
};

/** A guest flavor's own version lists for `ic`, highest first. */
export function guestIcVersions(flavor: IcGuestFlavor, ic: UtilityIcName): IcGuestVersions {
  return GUEST[flavor][ic];
}

/** The versions a guest answers with. */
export interface IcSelection {
  framework: IcVersion;
  message: IcVersion;
}

const has = (list: readonly IcVersion[], x: IcVersion) => list.some((o) => compareIcVersions(o, x) === 0);

/**
 * Picks the framework and message versions a guest of `flavor` answers to the host's offer.
 * - linux: walks its own list highest first and takes the first entry present exactly in the host's list;
 *   null (reply with counts 0/0) when either list has no match.
 * - freebsd: the highest host version not above its maximum (`own[0]`), chosen separately for framework and
 *   message, so it may pick a version it never listed; null (no reply at all) when none qualifies.
 * - openvmm: the highest host version that it knows exactly; when none matches it still answers with its
 *   own highest version (never null).
 */
export function selectIcVersions(
  flavor: IcGuestFlavor,
  offer: IcNegotiate,
  own: IcGuestVersions,
): IcSelection | null {
  const pick = (hostList: readonly IcVersion[], ownList: readonly IcVersion[]): IcVersion | null => {
    if (flavor === 'linux') return ownList.find((x) => has(hostList, x)) ?? null;
    if (flavor === 'freebsd') {
      const max = ownList[0];
      if (!max) return null;
      let best: IcVersion | null = null;
      for (const x of hostList) {
        if (compareIcVersions(x, max) <= 0 && (!best || compareIcVersions(x, best) > 0)) best = x;
      }
      return best;
    }
    let best: IcVersion | null = null;
    for (const x of hostList) if (has(ownList, x) && (!best || compareIcVersions(x, best) > 0)) best = x;
    return best ?? ownList[0] ?? null;
  };
  const framework = pick(offer.framework, own.framework);
  const message = pick(offer.message, own.message);
  return framework && message ? { framework, message } : null;
}

/**
 * Turns a request as the host sent it (VMBus pipe header, `icmsg_hdr`, body) into its own echo, in place:
 * `icmsg_hdr.status` = `status` (HRESULT) and icflags = TRANSACTION | RESPONSE. For drivers that answer a
 * request later, after their daemon did (Linux `kvp_respond_to_host`, `vss_respond_to_host`,
 * `fcopy_respond_to_host`).
 */
export function makeIcEcho(packet: Uint8Array, status: number): void {
  putU32le(packet, STATUS_AT, status);
  packet[VMBUSPIPE_HDR.size + ICMSG_HDR_LAYOUT.offsets.icflags] =
    ICMSGHDRFLAG_TRANSACTION | ICMSGHDRFLAG_RESPONSE;
}

/** A request being answered: the service edits `body` and `status` in place; `after` runs once the reply is sent. */
export interface IcReply {
  /** Writable view of the received body (the echo buffer). */
  readonly body: Uint8Array;
  /** Sets `icmsg_hdr.status` (HRESULT) of the reply. */
  setStatus(status: number): void;
  /** Do not answer this request at all. */
  drop(): void;
  /** Runs `fn` after the reply was written to the ring (Linux schedules its work item after sending). */
  after(fn: () => void): void;
}

/** What a service gives the guest framework. */
export interface IcGuestOptions {
  flavor: IcGuestFlavor;
  /** The IC's `icmsgtype`. */
  icmsgtype: number;
  versions: IcGuestVersions;
  /** A request of the service's type, after negotiation. Exceptions close the channel. */
  onRequest(msg: IcMessage, reply: IcReply, negotiated: IcSelection | null): void;
  onNegotiated?(sel: IcSelection): void;
  onClose?(reason?: Error): void;
}

/**
 * One IC channel on the guest. Malformed packets (shorter than 28 bytes, a non-DATA pipe header, over
 * 16 KiB) throw ProtocolError, which closes the channel; requests of another type get HV_E_FAIL as in Linux.
 */
export class IcGuest implements ChannelHandler {
  readonly #ch: ChannelIo;
  readonly #opts: IcGuestOptions;
  /** The NEGOTIATE reply is built here (it may outgrow the request); requests are answered in place. */
  readonly #buf = new Uint8Array(MAX_PIPE_DATA_PAYLOAD + VMBUSPIPE_HDR.size);
  readonly #view = new DataView(this.#buf.buffer);
  #negotiated: IcSelection | null = null;
  #after: (() => void)[] = [];
  #drop = false;
  /** The bytes being answered (the received payload, or `#buf` for NEGOTIATE). */
  #out: Uint8Array = this.#buf;
  readonly #reply: { body: Uint8Array } & IcReply;

  constructor(ch: ChannelIo, opts: IcGuestOptions) {
    this.#ch = ch;
    this.#opts = opts;
    this.#reply = {
      body: this.#buf,
      setStatus: (s) => putU32le(this.#out, STATUS_AT, s),
      drop: () => {
        this.#drop = true;
      },
      after: (fn) => {
        this.#after.push(fn);
      },
    };
  }

  /** The versions this guest answered with, null before (or after a failed) negotiation. */
  get negotiated(): IcSelection | null {
    return this.#negotiated;
  }

  onPacket(pkt: IncomingPacket): void {
    const where = { channel: this.#ch.relid, structure: 'icmsg_hdr' };
    if (pkt.type !== VM_PKT_DATA_INBAND) {
      throw new ProtocolError(`IC channel got packet type ${pkt.type}, expected VM_PKT_DATA_INBAND`, where);
    }
    const payload = pkt.payload;
    const len = payload.length;
    if (len > this.#buf.length) {
      throw new ProtocolError(`IC packet of ${len} bytes exceeds the pipe maximum`, where);
    }
    let msg = decodeIcMessage(payload);
    this.#drop = false;
    if (this.#after.length) this.#after = [];
    let replyLen = len;
    // The payload is the channel's private copy of the packet (ChannelIo): a request is answered by
    // editing it in place and echoing it, as Linux's drivers do with their receive buffer.
    this.#out = payload;
    if (msg.hdr.icmsgtype === ICMSGTYPE_NEGOTIATE) {
      this.#buf.set(payload);
      this.#out = this.#buf;
      msg = { hdr: msg.hdr, body: this.#buf.subarray(ICMSG_HDR, ICMSG_HDR + msg.body.length) };
      replyLen = this.#negotiate(msg, len);
    } else if (msg.hdr.icmsgtype === this.#opts.icmsgtype) {
      this.#reply.body = msg.body;
      this.#opts.onRequest(msg, this.#reply, this.#negotiated);
    } else {
      putU32le(payload, STATUS_AT, HV_E_FAIL);
    }
    if (this.#drop) return;
    const out = this.#out;
    out[VMBUSPIPE_HDR.size + ICMSG_HDR_LAYOUT.offsets.icflags] =
      ICMSGHDRFLAG_TRANSACTION | ICMSGHDRFLAG_RESPONSE;
    // A full ring loses the reply, as in Linux (vmbus_sendpacket fails and the host retries or times out).
    this.#ch.send(
      VM_PKT_DATA_INBAND,
      0,
      pkt.transId,
      replyLen === out.length ? out : out.subarray(0, replyLen),
    );
    for (const fn of this.#after) fn();
  }

  onClose(reason?: Error): void {
    this.#opts.onClose?.(reason);
  }

  /** Rewrites the negotiate message in place; returns the reply length. */
  #negotiate(msg: IcMessage, len: number): number {
    const { flavor } = this.#opts;
    const hdrAt = VMBUSPIPE_HDR.size;
    this.#view.setUint16(hdrAt + ICMSG_HDR_LAYOUT.offsets.icmsgsize, ICMSG_NEGOTIATE_RESPONSE_SIZE, true);
    let offer: IcNegotiate;
    try {
      offer = decodeIcNegotiate(msg.body);
    } catch (e) {
      // Linux returns early and echoes the message unchanged but for icmsgsize; the others refuse it.
      if (flavor === 'linux') return len;
      if (flavor === 'freebsd') {
        this.#drop = true;
        return len;
      }
      throw e;
    }
    const sel = selectIcVersions(flavor, offer, this.#opts.versions);
    if (!sel && flavor === 'freebsd') {
      this.#drop = true;
      return len;
    }
    const at = ICMSG_HDR;
    const data = at + ICMSG_NEGOTIATE.offsets.icversion_data;
    this.#view.setUint16(at, sel ? 1 : 0, true);
    this.#view.setUint16(at + 2, sel ? 1 : 0, true);
    const fw = sel?.framework ?? v(0, 0);
    const m = sel?.message ?? v(0, 0);
    this.#view.setUint16(data, fw.major, true);
    this.#view.setUint16(data + 2, fw.minor, true);
    this.#view.setUint16(data + 4, m.major, true);
    this.#view.setUint16(data + 6, m.minor, true);
    this.#negotiated = sel;
    if (sel) this.#opts.onNegotiated?.(sel);
    // FreeBSD grows a too-short message to the 16-byte reply body; Linux always sends what it received.
    return flavor === 'linux' ? len : Math.max(len, ICMSG_HDR + ICMSG_NEGOTIATE_RESPONSE_SIZE);
  }
}
