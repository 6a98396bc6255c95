/**
 * File copy IC, guest side: Linux's hv_fcopy driver (drivers/hv/hv_fcopy.c, Linux ≤ 6.9). It negotiates
 * framework 3.0 / fcopy 1.1, and forwards each host request, one at a time, to the daemon holding the
 * `/dev/vmbus/hv_fcopy` node in the daemon-facing form (protocol/uapi/fcopy.ts); the daemon's 4-byte status
 * becomes `icmsg_hdr.status` of the reply, which echoes the request with the same length and trans_id.
 * Rules kept from Linux: no daemon registered → HV_E_FAIL at once; no answer in 30 s → HV_E_FAIL; the daemon
 * closing the node while a request waits → HV_E_FAIL. Where we differ on purpose: a host name that does not
 * fit the 520-byte UTF-8 array is refused (HV_E_FAIL) instead of cut; a WRITE_TO_FILE shorter than
 * `hv_do_fcopy` or with `size` > 6144 is refused instead of forwarded; a request arriving while one is
 * pending waits in a short queue (Linux leaves it in the ring).
 */
import { SubarrayCache, u32le } from '../../protocol/bytes.ts';
import { HvError } from '../../protocol/errors.ts';
import {
  DATA_FRAGMENT,
  decodeStartFcopy,
  FCOPY_VERSION_1_1,
  HV_DO_FCOPY,
  HV_FCOPY_HDR,
  HV_START_FCOPY,
  START_FILE_COPY,
  WRITE_TO_FILE,
} from '../../protocol/ic/fcopy.ts';
import { HV_E_FAIL, ICMSG_HDR, ICMSGTYPE_FCOPY } from '../../protocol/ic/icmsg.ts';
import {
  decodeFcopyInt,
  encodeFcopyInt,
  encodeUapiStartFcopy,
  FCOPY_CURRENT_VERSION,
  FCOPY_VERSION_0,
} from '../../protocol/uapi/fcopy.ts';
import { VM_PKT_DATA_INBAND } from '../../protocol/vmbus/packet.ts';
import { MAX_PIPE_DATA_PAYLOAD, VMBUSPIPE_HDR } from '../../protocol/vmbus/pipe.ts';
import type { ChannelHandler, ChannelIo, Clock, IncomingPacket } from '../../vmbus/channel-io.ts';
import { IcGuest, type IcGuestFlavor, type IcSelection, makeIcEcho } from '../ic/guest.ts';

/** Linux `HV_UTIL_TIMEOUT`: how long the daemon may take to answer, ms. */
export const FCOPY_DAEMON_TIMEOUT_MS = 30_000;
const QUEUE_MAX = 8;
/**
 * Busy-poll window while a copy streams and the daemon answers inside our call (an in-process daemon):
 * the host's next fragment is then a few µs away, far less than an interrupt's wake-up.
 */
const STREAM_SPIN_MICROS = 200;

export interface FcopyGuestOptions {
  clock: Clock;
  /**
   * Hands one kernel→daemon message to the daemon holding `/dev/vmbus/hv_fcopy` (src/guest/devnode.ts
   * `UapiDevNode.send`); false when no daemon holds the node or a message is still unread.
   */
  toDaemon(msg: Uint8Array): boolean;
  flavor?: IcGuestFlavor;
  /** Daemon answer timeout, ms (default 30 000, Linux's). */
  daemonTimeoutMs?: number;
}

interface Request {
  bytes: Uint8Array;
  len: number;
  transId: number;
}

/** The fcopy driver on one guest channel, with its `/dev/vmbus/hv_fcopy` node. */
export class FcopyGuest implements ChannelHandler {
  readonly #ch: ChannelIo;
  readonly #ic: IcGuest;
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  /**
   * The request being served (its bytes are echoed in the reply): the received packet itself while the
   * daemon answers inside our call, else a copy in `#own` (the packet buffer is reused by the next read).
   */
  #cur: Uint8Array;
  readonly #own = new Uint8Array(MAX_PIPE_DATA_PAYLOAD + VMBUSPIPE_HDR.size);
  #curLen = 0;
  #curTransId = 0;
  #pending = false;
  /** Replies sent so far (tells whether the daemon answered inside `toDaemon`). */
  #answered = 0;
  #cancelTimer: (() => void) | null = null;
  readonly #queue: Request[] = [];
  readonly #uapi = new Uint8Array(HV_START_FCOPY.size);
  readonly #int = new Uint8Array(4);
  readonly #toDaemon: (msg: Uint8Array) => boolean;
  #registered = false;
  #closed = false;
  /** Replies the ring had no room for, sent in order from onWritable. */
  readonly #unsent: Request[] = [];
  /** The daemon's view of a WRITE_TO_FILE request (`#writeMessage`). */
  readonly #writeMsg = new SubarrayCache();
  /** Set while `onPacket` hands the packet to IcGuest, so the request handler can copy it. */
  #incoming: IncomingPacket | null = null;

  constructor(ch: ChannelIo, opts: FcopyGuestOptions) {
    this.#ch = ch;
    this.#cur = this.#own;
    this.#clock = opts.clock;
    this.#timeoutMs = opts.daemonTimeoutMs ?? FCOPY_DAEMON_TIMEOUT_MS;
    this.#toDaemon = opts.toDaemon;
    const fw = { major: 3, minor: 0 };
    this.#ic = new IcGuest(ch, {
      flavor: opts.flavor ?? 'linux',
      icmsgtype: ICMSGTYPE_FCOPY,
      versions: { framework: [fw], message: [FCOPY_VERSION_1_1] },
      onRequest: (_msg, reply) => {
        const pkt = this.#incoming;
        if (!pkt) return;
        if (!this.#registered) {
          reply.setStatus(HV_E_FAIL);
          return;
        }
        reply.drop();
        if (this.#pending) {
          if (this.#queue.length >= QUEUE_MAX) {
            const req = { bytes: pkt.payload.slice(), len: pkt.payload.length, transId: pkt.transId };
            this.#replyRaw(req.bytes, req.len, req.transId, HV_E_FAIL);
            return;
          }
          this.#queue.push({ bytes: pkt.payload.slice(), len: pkt.payload.length, transId: pkt.transId });
          return;
        }
        this.#cur = pkt.payload;
        this.#curLen = pkt.payload.length;
        this.#curTransId = pkt.transId;
        this.#serve();
        if (this.#pending && this.#cur === pkt.payload) {
          this.#own.set(pkt.payload);
          this.#cur = this.#own;
        }
      },
    });
  }

  get negotiated(): IcSelection | null {
    return this.#ic.negotiated;
  }

  /** True while a daemon holds the node and has registered. */
  get daemonRegistered(): boolean {
    return this.#registered;
  }

  /**
   * One message the daemon wrote: its registration (a 4-byte version) first, then 4-byte statuses.
   * @throws HvError `HV_ERR_INVALID_ARGUMENT` for any other length (the kernel's EINVAL).
   */
  onDaemonMessage(msg: Uint8Array): void {
    this.#onDaemonWrite(msg);
  }

  /** The daemon closed the node (or died): a waiting request fails with HV_E_FAIL (Linux `fcopy_on_reset`). */
  onDaemonRelease(): void {
    this.#onRelease();
  }

  onPacket(pkt: IncomingPacket): void {
    this.#incoming = pkt;
    try {
      this.#ic.onPacket(pkt);
    } finally {
      this.#incoming = null;
    }
  }

  onWritable(): void {
    while (this.#unsent.length && !this.#closed) {
      const r = this.#unsent[0]!;
      // Refused: the channel calls onWritable again once this packet fits (pending_send_sz).
      if (!this.#ch.send(VM_PKT_DATA_INBAND, 0, r.transId, r.bytes.subarray(0, r.len))) return;
      this.#unsent.shift();
    }
  }

  onClose(reason?: Error): void {
    this.#closed = true;
    this.#unsent.length = 0;
    this.#cancelTimer?.();
    this.#cancelTimer = null;
    this.#pending = false;
    this.#queue.length = 0;
    this.#ic.onClose(reason);
  }

  /** Converts the current request to the daemon form and hands it over, or answers it at once. */
  #serve(): void {
    const cur = this.#cur;
    let out: Uint8Array | null = null;
    let op = -1;
    // A request shorter than hv_fcopy_hdr, or one that does not decode, is refused (`out` stays null).
    if (this.#curLen - ICMSG_HDR >= HV_FCOPY_HDR.size) {
      op = u32le(cur, ICMSG_HDR + HV_FCOPY_HDR.offsets.operation);
      if (op === WRITE_TO_FILE) out = this.#writeMessage(cur, this.#curLen);
      else if (op === START_FILE_COPY) {
        try {
          encodeUapiStartFcopy(decodeStartFcopy(cur.subarray(ICMSG_HDR, this.#curLen)), this.#uapi);
          out = this.#uapi;
        } catch {
          out = null;
        }
      } else {
        // COMPLETE and CANCEL go as they are; so do unknown operations (Linux forwards them too, and the
        // daemon answers HV_E_FAIL).
        out = cur.subarray(ICMSG_HDR, this.#curLen);
      }
    }
    if (!out) {
      this.#respond(HV_E_FAIL);
      return;
    }
    this.#pending = true;
    this.#cancelTimer = this.#clock.setTimer(this.#timeoutMs, this.#onDaemonTimeout);
    const before = this.#answered;
    if (!this.#toDaemon(out)) this.#respond(HV_E_FAIL);
    else {
      const streaming = op === START_FILE_COPY || op === WRITE_TO_FILE;
      this.#ch.busyPoll?.(streaming && this.#answered !== before ? STREAM_SPIN_MICROS : 0);
    }
  }

  readonly #onDaemonTimeout = (): void => {
    this.#cancelTimer = null;
    if (this.#pending) this.#respond(HV_E_FAIL);
  };

  /**
   * The daemon's form of a WRITE_TO_FILE request in `packet` (the `hv_do_fcopy` after the IC headers), or
   * null when it is shorter than `hv_do_fcopy` or claims more than 6144 bytes. The view is kept for the
   * next fragment in the same buffer, so a streaming copy allocates nothing per fragment.
   */
  #writeMessage(packet: Uint8Array, len: number): Uint8Array | null {
    if (len - ICMSG_HDR < HV_DO_FCOPY.size) return null;
    if (u32le(packet, ICMSG_HDR + HV_DO_FCOPY.offsets.size) > DATA_FRAGMENT) return null;
    return this.#writeMsg.of(packet, ICMSG_HDR, ICMSG_HDR + HV_DO_FCOPY.size);
  }

  #onDaemonWrite(msg: Uint8Array): void {
    let value: number;
    try {
      value = decodeFcopyInt(msg);
    } catch (e) {
      throw new HvError('HV_ERR_INVALID_ARGUMENT', (e as Error).message);
    }
    if (!this.#registered) {
      this.#registered = true;
      if (value !== FCOPY_VERSION_0) this.#toDaemon(encodeFcopyInt(FCOPY_CURRENT_VERSION, this.#int));
      return;
    }
    if (this.#pending) this.#respond(value);
  }

  #onRelease(): void {
    this.#registered = false;
    if (this.#pending) this.#respond(HV_E_FAIL);
    // Requests that queued behind it have no daemon either.
    for (const q of this.#queue.splice(0)) this.#replyRaw(q.bytes, q.len, q.transId, HV_E_FAIL);
  }

  #respond(status: number): void {
    this.#pending = false;
    this.#answered++;
    this.#cancelTimer?.();
    this.#cancelTimer = null;
    if (!this.#closed) this.#replyRaw(this.#cur, this.#curLen, this.#curTransId, status);
    const next = this.#queue.shift();
    if (next && !this.#closed) {
      this.#own.set(next.bytes.subarray(0, next.len));
      this.#cur = this.#own;
      this.#curLen = next.len;
      this.#curTransId = next.transId;
      if (this.#registered) this.#serve();
      else this.#respond(HV_E_FAIL);
    }
  }

  /** Echoes a request with `status` and TRANSACTION|RESPONSE (Linux `fcopy_respond_to_host`). */
  #replyRaw(bytes: Uint8Array, len: number, transId: number, status: number): void {
    makeIcEcho(bytes, status);
    if (this.#closed) return;
    // The host may not have consumed our previous reply yet (one 6 KiB echo nearly fills a 16 KiB ring):
    // keep the reply and send it when room appears, in order, instead of losing it.
    const reply = len === bytes.length ? bytes : bytes.subarray(0, len);
    if (this.#unsent.length || !this.#ch.send(VM_PKT_DATA_INBAND, 0, transId, reply)) {
      this.#unsent.push({ bytes: bytes.slice(0, len), len, transId });
    }
  }
}
