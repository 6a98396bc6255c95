/**
 * Host half of the IC framework shared by the utility services: the NEGOTIATE exchange, request framing,
 * response checks, the versions offered per host profile, and the integration-service status Hyper-V shows.
 * Framing (reference/vmbus-core-ics.md §3.4, §6.1): requests are VM_PKT_DATA_INBAND, descriptor flags 0,
 * trans_id 0, payload = vmbuspipe_hdr + icmsg_hdr + body, icflags TRANSACTION|REQUEST, ictransaction_id 0.
 * Negotiation (§6.2, OpenVMM hyperv_ic/src/common.rs): framework [1.0, 3.0] and the IC's message versions
 * ascending; the guest must answer counts 1/1 naming one offered framework and one offered message version.
 */
import { SubarrayCache } from '../../protocol/bytes.ts';
import { HvError, ProtocolError } from '../../protocol/errors.ts';
import {
  compareIcVersions,
  decodeIcMessage,
  encodeIcMessageHeader,
  formatIcVersion,
  ICMSG_HDR,
  ICMSGHDRFLAG_REQUEST,
  ICMSGHDRFLAG_RESPONSE,
  ICMSGHDRFLAG_TRANSACTION,
  ICMSGTYPE_NEGOTIATE,
  type IcMessage,
  type IcMsgHdr,
  type IcVersion,
} from '../../protocol/ic/icmsg.ts';
import { decodeIcNegotiate, encodeIcNegotiate, icmsgNegotiateSize } from '../../protocol/ic/negotiate.ts';
import { VM_PKT_DATA_INBAND } from '../../protocol/vmbus/packet.ts';
import { MAX_PIPE_DATA_PAYLOAD } from '../../protocol/vmbus/pipe.ts';
import type { ChannelHandler, ChannelIo, IncomingPacket } from '../../vmbus/channel-io.ts';
import { type HostProfileName, hostProfile } from '../../vmbus/host-profiles.ts';

/** Host version profile names (src/vmbus/host-profiles.ts owns the table). */
export type IcHostProfile = HostProfileName;

/** The utility ICs with a host offer in the profile table. */
export type UtilityIc = 'heartbeat' | 'shutdown' | 'timesync' | 'kvp' | 'vss' | 'fcopy';

/** What a host offers in NEGOTIATE, both lists ascending. */
export interface IcOffer {
  framework: readonly IcVersion[];
  message: readonly IcVersion[];
}

const EMPTY = new Uint8Array(0);

const split = (x: number): IcVersion => ({ major: x >>> 16, minor: x & 0xffff });

/**
 * The NEGOTIATE offer of `ic` on a host of `profile`, from the profile table in src/vmbus/host-profiles.ts
 * (framework [1.0, 3.0] and the message versions of that release, ascending).
 * @throws HvError `HV_ERR_INVALID_ARGUMENT` for an unknown profile name.
 */
export function hostIcOffer(profile: string, ic: UtilityIc): IcOffer {
  const offer = hostProfile(profile).ics[ic];
  if (!offer) throw new HvError('HV_ERR_UNSUPPORTED', `host profile ${profile} has no ${ic} service`);
  return { framework: offer.framework.map(split), message: offer.message.map(split) };
}

/**
 * The status columns Get-VMIntegrationService prints for one service. The strings follow the cmdlet's
 * VMIntegrationComponentOperationalStatus names and the WMI status descriptions ("OK", "No Contact", "Lost
 * Communication"; the docs' example filters on `ProtocolMismatch`); they were not checked on a real host.
 */
export interface IcStatus {
  /** `Ok`, `NoContact`, `LostCommunication` (VMIntegrationComponentOperationalStatus names). */
  PrimaryOperationalStatus: 'Ok' | 'NoContact' | 'LostCommunication';
  /** `OK`, `No Contact`, `Lost Communication`. */
  PrimaryStatusDescription: 'OK' | 'No Contact' | 'Lost Communication';
  /** `ProtocolMismatch` when the guest negotiated below the host's newest version or could not negotiate. */
  SecondaryOperationalStatus: 'ProtocolMismatch' | null;
  SecondaryStatusDescription: 'Protocol mismatch' | null;
  /** Negotiated versions as `major.minor`, null before negotiation. */
  frameworkVersion: string | null;
  messageVersion: string | null;
}

/** Negotiation state: waiting for the guest's answer, usable, or the answer named nothing we offered. */
export type IcNegotiationState = 'negotiating' | 'ready' | 'mismatch' | 'closed';

/** What a service gives the framework. */
export interface IcHostOptions {
  /** The IC's `icmsgtype` (ICMSGTYPE_HEARTBEAT, ...). */
  icmsgtype: number;
  /** Versions to offer, ascending (use {@link hostIcOffer}). */
  offer: IcOffer;
  /** Runs once when the guest's answer is valid. */
  onNegotiated?(framework: IcVersion, message: IcVersion): void;
  /** A response of the service's own type (already checked for TRANSACTION|RESPONSE). */
  onResponse(msg: IcMessage): void;
  onClose?(reason?: Error): void;
}

/**
 * One IC channel on the host. Call {@link IcHost.start} once the channel is open; the service sends
 * requests with {@link IcHost.send}. A malformed or unexpected packet throws ProtocolError from `onPacket`,
 * which closes this channel.
 */
export class IcHost implements ChannelHandler {
  readonly #ch: ChannelIo;
  readonly #opts: IcHostOptions;
  readonly #buf = new Uint8Array(MAX_PIPE_DATA_PAYLOAD + 8);
  #state: IcNegotiationState = 'negotiating';
  #framework: IcVersion | null = null;
  #message: IcVersion | null = null;
  #answered = false;
  /** The `icmsg_hdr` of this service's requests (set at negotiation; only `icmsgsize` changes). */
  #request: IcMsgHdr | null = null;
  /** `sendWithData`'s gather list and its reused views. */
  readonly #parts: Uint8Array[] = [EMPTY, EMPTY, EMPTY];
  readonly #head = new SubarrayCache();
  #zeros: Uint8Array = EMPTY;

  constructor(ch: ChannelIo, opts: IcHostOptions) {
    this.#ch = ch;
    this.#opts = opts;
  }

  get state(): IcNegotiationState {
    return this.#state;
  }
  /** Negotiated framework version, null until ready. */
  get framework(): IcVersion | null {
    return this.#framework;
  }
  /** Negotiated message version, null until ready. */
  get message(): IcVersion | null {
    return this.#message;
  }

  /**
   * Status from negotiation alone: `No Contact` until a valid answer; `OK` once negotiated, with
   * SecondaryStatus `ProtocolMismatch` when the guest chose below our newest message version (our reading of
   * Hyper-V's "protocol mismatch"; UNVERIFIED on a real host) or answered with nothing we offered.
   */
  get status(): IcStatus {
    const newest = this.#opts.offer.message.at(-1);
    const behind =
      this.#state === 'mismatch' ||
      (this.#message !== null && newest !== undefined && compareIcVersions(this.#message, newest) < 0);
    const ok = this.#state === 'ready';
    return {
      PrimaryOperationalStatus: ok ? 'Ok' : 'NoContact',
      PrimaryStatusDescription: ok ? 'OK' : 'No Contact',
      SecondaryOperationalStatus: behind ? 'ProtocolMismatch' : null,
      SecondaryStatusDescription: behind ? 'Protocol mismatch' : null,
      frameworkVersion: this.#framework && formatIcVersion(this.#framework),
      messageVersion: this.#message && formatIcVersion(this.#message),
    };
  }

  /** True once the guest answered NEGOTIATE (validly or not). */
  get answered(): boolean {
    return this.#answered;
  }

  /**
   * Sends NEGOTIATE: header versions 0.0, counts = offer lengths, `icmsgsize` = 8 + 4 × count.
   * @returns false when the ring is full (call again later).
   */
  start(): boolean {
    const { framework, message } = this.#opts.offer;
    const size = icmsgNegotiateSize(framework.length, message.length);
    const len = encodeIcMessageHeader(
      {
        icverframe: { major: 0, minor: 0 },
        icmsgtype: ICMSGTYPE_NEGOTIATE,
        icvermsg: { major: 0, minor: 0 },
        icmsgsize: size,
        status: 0,
        ictransaction_id: 0,
        icflags: ICMSGHDRFLAG_TRANSACTION | ICMSGHDRFLAG_REQUEST,
      },
      size,
      this.#buf,
    );
    encodeIcNegotiate({ framework: [...framework], message: [...message] }, this.#buf, ICMSG_HDR);
    return this.#ch.send(VM_PKT_DATA_INBAND, 0, 0, this.#buf.subarray(0, len));
  }

  /**
   * Sends a request of the service's type with the negotiated versions; `writeBody` fills the body at
   * `offset` and returns its length in bytes.
   * @returns false when the ring is full.
   * @throws HvError `HV_ERR_INVALID_STATE` before negotiation succeeded.
   */
  send(writeBody: (buf: Uint8Array, offset: number) => number): boolean {
    const hdr = this.#negotiatedRequest();
    const len = this.#requestHeader(hdr, writeBody(this.#buf, ICMSG_HDR));
    return this.#ch.send(VM_PKT_DATA_INBAND, 0, 0, this.#buf.subarray(0, len));
  }

  /**
   * Sends a request whose body is what `writeHead` puts at `offset` (returning its length), then `data`,
   * then `pad` zero bytes. `data` goes from where it lies straight into the ring (ChannelIo.sendParts), so
   * a bulk payload (a file fragment) is copied once.
   * @returns false when the ring is full.
   * @throws HvError `HV_ERR_INVALID_STATE` before negotiation succeeded.
   */
  sendWithData(
    writeHead: (buf: Uint8Array, offset: number) => number,
    data: Uint8Array,
    pad: number,
  ): boolean {
    const hdr = this.#negotiatedRequest();
    const headLen = writeHead(this.#buf, ICMSG_HDR);
    const headEnd = ICMSG_HDR + headLen;
    const len = this.#requestHeader(hdr, headLen + data.length + pad);
    if (!this.#ch.sendParts) {
      this.#buf.set(data, headEnd);
      this.#buf.fill(0, headEnd + data.length, len);
      return this.#ch.send(VM_PKT_DATA_INBAND, 0, 0, this.#buf.subarray(0, len));
    }
    if (this.#zeros.length < pad) this.#zeros = new Uint8Array(pad);
    const parts = this.#parts;
    parts[0] = this.#head.of(this.#buf, 0, headEnd);
    parts[1] = data;
    parts[2] = pad === 0 ? EMPTY : this.#zeros.subarray(0, pad);
    return this.#ch.sendParts(VM_PKT_DATA_INBAND, 0, 0, parts, 3);
  }

  /** The request header. @throws HvError `HV_ERR_INVALID_STATE` before negotiation succeeded. */
  #negotiatedRequest(): IcMsgHdr {
    const hdr = this.#request;
    if (this.#state !== 'ready' || !hdr) {
      throw new HvError('HV_ERR_INVALID_STATE', `IC not negotiated (state ${this.#state})`);
    }
    return hdr;
  }

  /** Writes the pipe header and `hdr` for a `bodyLen`-byte body into the buffer; returns the payload length. */
  #requestHeader(hdr: IcMsgHdr, bodyLen: number): number {
    hdr.icmsgsize = bodyLen;
    return encodeIcMessageHeader(hdr, bodyLen, this.#buf);
  }

  onPacket(pkt: IncomingPacket): void {
    const where = { channel: this.#ch.relid, structure: 'icmsg_hdr' };
    if (pkt.type !== VM_PKT_DATA_INBAND) {
      throw new ProtocolError(`IC channel got packet type ${pkt.type}, expected VM_PKT_DATA_INBAND`, where);
    }
    const msg = decodeIcMessage(pkt.payload, pkt.fullPayloadLength);
    const want = ICMSGHDRFLAG_TRANSACTION | ICMSGHDRFLAG_RESPONSE;
    if ((msg.hdr.icflags & want) !== want || msg.hdr.ictransaction_id !== 0) {
      throw new ProtocolError(
        `IC reply flags 0x${msg.hdr.icflags.toString(16)} / transaction ${msg.hdr.ictransaction_id}: expected TRANSACTION|RESPONSE, transaction 0`,
        { ...where, offset: 24 },
      );
    }
    if (msg.hdr.icmsgtype === ICMSGTYPE_NEGOTIATE) {
      this.#onNegotiateReply(msg);
      return;
    }
    if (msg.hdr.icmsgtype !== this.#opts.icmsgtype || this.#state !== 'ready') {
      throw new ProtocolError(`unexpected IC reply type ${msg.hdr.icmsgtype} in state ${this.#state}`, {
        ...where,
        offset: 12,
      });
    }
    this.#opts.onResponse(msg);
  }

  onClose(reason?: Error): void {
    this.#state = 'closed';
    this.#opts.onClose?.(reason);
  }

  #onNegotiateReply(msg: IcMessage): void {
    if (this.#state !== 'negotiating') {
      throw new ProtocolError('NEGOTIATE reply without a pending NEGOTIATE', {
        channel: this.#ch.relid,
        structure: 'icmsg_negotiate',
      });
    }
    this.#answered = true;
    let n: ReturnType<typeof decodeIcNegotiate>;
    try {
      n = decodeIcNegotiate(msg.body);
    } catch {
      this.#state = 'mismatch';
      return;
    }
    const fw = n.framework[0];
    const m = n.message[0];
    const offered = (list: readonly IcVersion[], x: IcVersion) =>
      list.some((o) => compareIcVersions(o, x) === 0);
    if (
      n.framework.length !== 1 ||
      n.message.length !== 1 ||
      !fw ||
      !m ||
      !offered(this.#opts.offer.framework, fw) ||
      !offered(this.#opts.offer.message, m)
    ) {
      this.#state = 'mismatch';
      return;
    }
    this.#framework = fw;
    this.#message = m;
    this.#request = {
      icverframe: fw,
      icmsgtype: this.#opts.icmsgtype,
      icvermsg: m,
      icmsgsize: 0,
      status: 0,
      ictransaction_id: 0,
      icflags: ICMSGHDRFLAG_TRANSACTION | ICMSGHDRFLAG_REQUEST,
    };
    this.#state = 'ready';
    this.#opts.onNegotiated?.(fw, m);
  }
}
