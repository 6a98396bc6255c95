/**
 * VSS (backup) IC, guest side: Linux's hv_vss driver (drivers/hv/hv_snapshot.c). Framework 3.0, message 5.0
 * (its only versions). FREEZE, THAW and HOT_BACKUP go to the daemon holding `/dev/vmbus/hv_vss` as a 12-byte
 * `hv_vss_msg` (protocol/uapi/vss.ts); the daemon's int `error` becomes `icmsg_hdr.status` of the reply,
 * which echoes the request (same length, trans_id). HOT_BACKUP's reply carries `flags` =
 * VSS_HBU_NO_AUTO_RECOVERY; GET_DM_INFO is answered at once with flags 0; any other operation with status 0.
 * No daemon registered → HV_E_FAIL at once; no answer within 15 × 60 s (FREEZE) or 30 s (others) →
 * HV_E_FAIL; the daemon closing the node while a request waits → HV_E_FAIL (Linux `vss_on_reset`).
 * Registration: REGISTER1 (129) gets a 4-byte u32 answer, legacy REGISTER (128) none.
 * A request arriving while one is pending waits in a short queue (Linux leaves it in the ring).
 * Where we go beyond Linux: a daemon that dies (or closes the node) while a freeze is outstanding — a FREEZE
 * it has not answered, or one it answered OK with no THAW answered since — would leave the guest frozen
 * (Linux only fails the request), so the driver calls `onOrphanedFreeze` once, the kernel's emergency thaw
 * (Linux's `emergency_thaw_all`, sysrq j); the host's FREEZE (or later THAW) gets HV_E_FAIL.
 */
import { HvError } from '../../protocol/errors.ts';
import { HV_E_FAIL, HV_S_OK, ICMSG_HDR, ICMSGTYPE_VSS } from '../../protocol/ic/icmsg.ts';
import {
  HV_VSS_MSG,
  VSS_HBU_NO_AUTO_RECOVERY,
  VSS_OP_FREEZE,
  VSS_OP_GET_DM_INFO,
  VSS_OP_HOT_BACKUP,
  VSS_OP_REGISTER,
  VSS_OP_REGISTER1,
  VSS_OP_THAW,
  VSS_VERSION_5_0,
} from '../../protocol/ic/vss.ts';
import { decodeUapiVssWrite, encodeUapiVssOp, encodeVssRegisterReply } from '../../protocol/uapi/vss.ts';
import { VM_PKT_DATA_INBAND } from '../../protocol/vmbus/packet.ts';
import type { ChannelHandler, ChannelIo, Clock, IncomingPacket } from '../../vmbus/channel-io.ts';
import { IcGuest, type IcGuestFlavor, type IcSelection, makeIcEcho } from '../ic/guest.ts';

/** Linux `VSS_FREEZE_TIMEOUT` (15 × 60 s) and `HV_UTIL_TIMEOUT` (30 s), ms. */
export const VSS_FREEZE_TIMEOUT_MS = 15 * 60_000;
export const VSS_TIMEOUT_MS = 30_000;
const QUEUE_MAX = 8;

export interface VssGuestOptions {
  clock: Clock;
  /** Hands one message to the daemon holding `/dev/vmbus/hv_vss`; false when none holds it or one is unread. */
  toDaemon(msg: Uint8Array): boolean;
  flavor?: IcGuestFlavor;
  /** Daemon timeouts, ms (default Linux's). */
  freezeTimeoutMs?: number;
  timeoutMs?: number;
  /**
   * Emergency thaw: called when the daemon releases the node with a freeze outstanding (see above). It must
   * thaw whatever the daemon may have frozen; it runs once per orphaned freeze.
   */
  onOrphanedFreeze?: () => void;
}

interface Request {
  bytes: Uint8Array;
  transId: number;
}

/** The hv_vss driver on one guest channel. */
export class VssGuest implements ChannelHandler {
  readonly #ch: ChannelIo;
  readonly #ic: IcGuest;
  readonly #o: VssGuestOptions;
  #registered: 'no' | 'legacy' | 'yes' = 'no';
  /** The request waiting for the daemon (its bytes are echoed), or null. */
  #cur: Request | null = null;
  #curOp = 0;
  #cancelTimer: (() => void) | null = null;
  readonly #queue: Request[] = [];
  readonly #toDaemonBuf = new Uint8Array(HV_VSS_MSG.size);
  #closed = false;
  /** A FREEZE was answered OK and no THAW answered since. */
  #frozen = false;
  #incoming: IncomingPacket | null = null;

  constructor(ch: ChannelIo, o: VssGuestOptions) {
    this.#ch = ch;
    this.#o = o;
    this.#ic = new IcGuest(ch, {
      flavor: o.flavor ?? 'linux',
      icmsgtype: ICMSGTYPE_VSS,
      versions: { framework: [{ major: 3, minor: 0 }], message: [VSS_VERSION_5_0] },
      onRequest: (msg, reply) => {
        const pkt = this.#incoming;
        if (!pkt) return;
        if (msg.body.length < HV_VSS_MSG.size) {
          reply.setStatus(HV_E_FAIL);
          return;
        }
        const op = msg.body[0]!;
        if (op === VSS_OP_GET_DM_INFO) {
          new DataView(msg.body.buffer, msg.body.byteOffset + 8, 4).setUint32(0, 0, true);
          reply.setStatus(HV_S_OK);
          return;
        }
        if (op !== VSS_OP_FREEZE && op !== VSS_OP_THAW && op !== VSS_OP_HOT_BACKUP) {
          reply.setStatus(HV_S_OK);
          return;
        }
        if (this.#registered === 'no') {
          reply.setStatus(HV_E_FAIL);
          return;
        }
        reply.drop();
        const req = { bytes: pkt.payload.slice(), transId: pkt.transId };
        if (this.#cur) {
          if (this.#queue.length >= QUEUE_MAX) this.#reply(req, HV_E_FAIL);
          else this.#queue.push(req);
          return;
        }
        this.#serve(req);
      },
    });
  }

  get negotiated(): IcSelection | null {
    return this.#ic.negotiated;
  }

  /** True while a daemon holds the node and has registered. */
  get daemonRegistered(): boolean {
    return this.#registered !== 'no';
  }

  onPacket(pkt: IncomingPacket): void {
    this.#incoming = pkt;
    try {
      this.#ic.onPacket(pkt);
    } finally {
      this.#incoming = null;
    }
  }

  onClose(reason?: Error): void {
    this.#closed = true;
    this.#cancelTimer?.();
    this.#cancelTimer = null;
    this.#cur = null;
    this.#queue.length = 0;
    this.#ic.onClose(reason);
  }

  /**
   * One 12-byte message the daemon wrote: registration first, then answers.
   * @throws HvError `HV_ERR_INVALID_ARGUMENT` (EINVAL) for another length, a first message that is not a
   *   registration, or an answer with no request pending.
   */
  onDaemonMessage(msg: Uint8Array): void {
    let w: ReturnType<typeof decodeUapiVssWrite>;
    try {
      w = decodeUapiVssWrite(msg);
    } catch (e) {
      throw new HvError('HV_ERR_INVALID_ARGUMENT', (e as Error).message);
    }
    if (this.#registered === 'no') {
      if (w.operation === VSS_OP_REGISTER1) {
        this.#registered = 'yes';
        this.#o.toDaemon(encodeVssRegisterReply());
      } else if (w.operation === VSS_OP_REGISTER) this.#registered = 'legacy';
      else
        throw new HvError(
          'HV_ERR_INVALID_ARGUMENT',
          `VSS daemon must register first (operation ${w.operation})`,
        );
      return;
    }
    if (!this.#cur)
      throw new HvError('HV_ERR_INVALID_ARGUMENT', 'VSS daemon answered with no request pending');
    this.#finish(w.error);
  }

  /** The daemon closed the node: forget it, fail what it held. */
  onDaemonRelease(): void {
    this.#registered = 'no';
    const orphaned = this.#frozen || (this.#cur !== null && this.#curOp === VSS_OP_FREEZE);
    this.#frozen = false;
    if (this.#cur) this.#finish(HV_E_FAIL);
    if (orphaned) this.#o.onOrphanedFreeze?.();
  }

  #serve(req: Request): void {
    this.#cur = req;
    this.#curOp = req.bytes[ICMSG_HDR]!;
    const ms =
      this.#curOp === VSS_OP_FREEZE
        ? (this.#o.freezeTimeoutMs ?? VSS_FREEZE_TIMEOUT_MS)
        : (this.#o.timeoutMs ?? VSS_TIMEOUT_MS);
    this.#cancelTimer = this.#o.clock.setTimer(ms, () => {
      this.#cancelTimer = null;
      if (this.#cur === req) this.#finish(HV_E_FAIL);
    });
    if (!this.#o.toDaemon(encodeUapiVssOp(this.#curOp, this.#toDaemonBuf))) this.#finish(HV_E_FAIL);
  }

  #finish(status: number): void {
    const req = this.#cur;
    if (!req) return;
    this.#cur = null;
    this.#cancelTimer?.();
    this.#cancelTimer = null;
    if (this.#curOp === VSS_OP_FREEZE) this.#frozen = status === HV_S_OK;
    else if (this.#curOp === VSS_OP_THAW) this.#frozen = false;
    if (this.#curOp === VSS_OP_HOT_BACKUP) {
      new DataView(req.bytes.buffer).setUint32(ICMSG_HDR + 8, VSS_HBU_NO_AUTO_RECOVERY, true);
    }
    this.#reply(req, status);
    const next = this.#queue.shift();
    if (next && !this.#closed) {
      if (this.#registered === 'no') {
        this.#cur = next;
        this.#curOp = next.bytes[ICMSG_HDR]!;
        this.#finish(HV_E_FAIL);
      } else this.#serve(next);
    }
  }

  /** Echoes a request with `status` and TRANSACTION|RESPONSE (Linux `vss_respond_to_host`). */
  #reply(req: Request, status: number): void {
    if (this.#closed) return;
    makeIcEcho(req.bytes, status);
    // 40-byte replies in a 16 KiB ring the host drains: a full ring means a broken host; Linux loses it too.
    this.#ch.send(VM_PKT_DATA_INBAND, 0, req.transId, req.bytes);
  }
}
