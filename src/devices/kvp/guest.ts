/**
 * KVP IC, guest kernel side: Linux drivers/hv/hv_kvp.c. Each host request becomes one `hv_kvp_msg` for the
 * user-space daemon (UTF-16 → UTF-8, sizes recomputed), one transaction at a time; the daemon's answer is
 * converted back (UTF-8 → UTF-16, sizes = 2 × (units + 1), value_type REG_SZ) and sent to the host as the
 * echo of the request. Until a daemon first registers, every host packet (the NEGOTIATE first) is held unread,
 * so the host's first requests find a daemon (Linux `hv_kvp_onchannelcallback`, "delay to not lose
 * messages"): registration answers them; `HV_UTIL_NEGO_TIMEOUT` (55 s, under WS2016's 60 s negotiate timeout,
 * Linux d7edd31b) without one answers them anyway. After that, no daemon → HV_E_FAIL at once (Linux
 * 4.9–4.13; since a3ade8cc Linux keeps holding packets whenever no daemon is registered and its 55 s work only
 * re-polls, which our host would see as a 35 s request timeout instead of the HV_E_FAIL it reports as a fault).
 * No answer in `HV_UTIL_TIMEOUT` (30 s) → HV_E_FAIL; the daemon closing its device mid-transaction →
 * HV_E_FAIL (Linux `kvp_on_reset`). fcopy and VSS answer NEGOTIATE at once (hv_fcopy.c, hv_snapshot.c).
 * Register handshake: the daemon writes REGISTER1 (100) (or legacy REGISTER 4); the driver answers a
 * message with the same operation and `kvp_register.version = "3.1"` (`HV_DRV_VERSION`).
 * Versions (Linux `fw_versions`, `kvp_versions`): framework 3.0, 1.0; message 4.0, 3.0, 1.0.
 * The daemon is reached through `toDaemon`, so this file has no I/O (the guest kernel wires a device node).
 */
import { HvError } from '../../protocol/errors.ts';
import {
  HV_E_FAIL,
  HV_S_CONT,
  HV_S_OK,
  ICMSG_HDR,
  ICMSGTYPE_KVPEXCHANGE,
  type IcMessage,
  type IcVersion,
} from '../../protocol/ic/icmsg.ts';
import {
  decodeKvpRequest,
  KVP_OP_DELETE,
  KVP_OP_ENUMERATE,
  KVP_OP_GET,
  KVP_OP_GET_IP_INFO,
  KVP_OP_SET,
  type KvpRequest,
  writeKvpIpReply,
  writeKvpReply,
} from '../../protocol/ic/kvp.ts';
import {
  checkKvpMsg,
  getKvpEnum,
  getKvpIp,
  getKvpValue,
  HV_DRV_VERSION,
  HV_KVP_MSG,
  KVP_OP_REGISTER,
  KVP_OP_REGISTER1,
  kvpMsgError,
  newKvpMsg,
  putKvpDeleteKey,
  putKvpIp,
  putKvpRegisterVersion,
  setKvpEnumIndex,
} from '../../protocol/uapi/kvp.ts';
import { writeCStringTruncated } from '../../protocol/uapi/strings.ts';
import { VM_PKT_DATA_INBAND } from '../../protocol/vmbus/packet.ts';
import { MAX_PIPE_DATA_PAYLOAD, VMBUSPIPE_HDR } from '../../protocol/vmbus/pipe.ts';
import type { ChannelHandler, ChannelIo, Clock, IncomingPacket } from '../../vmbus/channel-io.ts';
import {
  IcGuest,
  type IcGuestFlavor,
  type IcGuestVersions,
  type IcSelection,
  makeIcEcho,
} from '../ic/guest.ts';

const v = (major: number, minor: number): IcVersion => ({ major, minor });

/** Linux hv_kvp.c `fw_versions` / `kvp_versions` (WIN8_SRV_VERSION 4.0, WIN7 3.0, WS2008 1.0). */
export const LINUX_KVP_VERSIONS: IcGuestVersions = {
  framework: [v(3, 0), v(1, 0)],
  message: [v(4, 0), v(3, 0), v(1, 0)],
};

/** `HV_UTIL_TIMEOUT`: seconds the driver waits for the daemon. */
export const HV_UTIL_TIMEOUT_MS = 30_000;

/** `HV_UTIL_NEGO_TIMEOUT` (drivers/hv/hyperv_vmbus.h): seconds host packets wait for a first daemon, in ms. */
export const HV_UTIL_NEGO_TIMEOUT_MS = 55_000;

export interface KvpGuestOptions {
  clock: Clock;
  /** Hands one `hv_kvp_msg` to the daemon; false when no daemon holds the device or one is unread. */
  toDaemon(msg: Uint8Array): boolean;
  flavor?: IcGuestFlavor;
  /** Daemon timeout, ms (default 30 000). */
  timeoutMs?: number;
  /** How long host packets wait for a first daemon before being answered anyway, ms (default 55 000). */
  negoTimeoutMs?: number;
}

/** Driver-side state, for diagnostics (`lsvmbus`-like views and tests). */
export type KvpDaemonState = 'absent' | 'registered' | 'busy';

interface Backlog {
  transId: number;
  bytes: Uint8Array;
}

/** The KVP driver on one guest channel. */
export class KvpGuest implements ChannelHandler {
  readonly #ch: ChannelIo;
  readonly #ic: IcGuest;
  readonly #o: KvpGuestOptions;
  readonly #pkt = new Uint8Array(MAX_PIPE_DATA_PAYLOAD + VMBUSPIPE_HDR.size);
  readonly #toDaemon = newKvpMsg(0, 0);
  #pktLen = 0;
  #transId = 0;
  #registered: 'no' | 'legacy' | 'yes' = 'no';
  /** The request being served, null when idle. */
  #active: KvpRequest | null = null;
  #cancelTimer: (() => void) | null = null;
  readonly #backlog: Backlog[] = [];
  #closed = false;
  #lastTransId = 0;
  /** Linux `host_negotiatied`: 'wait' until a first daemon registers or the nego timeout fires. */
  #nego: 'idle' | 'wait' | 'done' = 'idle';
  #cancelNego: (() => void) | null = null;
  #draining = false;

  constructor(ch: ChannelIo, o: KvpGuestOptions) {
    this.#ch = ch;
    this.#o = o;
    this.#ic = new IcGuest(ch, {
      flavor: o.flavor ?? 'linux',
      icmsgtype: ICMSGTYPE_KVPEXCHANGE,
      versions: LINUX_KVP_VERSIONS,
      onRequest: (msg, reply) => {
        reply.drop();
        this.#onRequest(msg);
      },
    });
  }

  get negotiated(): IcSelection | null {
    return this.#ic.negotiated;
  }

  get daemonState(): KvpDaemonState {
    return this.#registered === 'no' ? 'absent' : this.#active ? 'busy' : 'registered';
  }

  onPacket(pkt: IncomingPacket): void {
    if (this.#registered === 'no' && this.#nego === 'idle') {
      this.#nego = 'wait';
      this.#cancelNego = this.#o.clock.setTimer(this.#o.negoTimeoutMs ?? HV_UTIL_NEGO_TIMEOUT_MS, () => {
        this.#cancelNego = null;
        this.#endNegoWait();
      });
    }
    // Keep our own copy: the answer may come long after IcGuest's buffer was reused.
    if ((this.#active || this.#nego === 'wait') && pkt.payload.length <= this.#pkt.length) {
      // Linux leaves the packet in the ring until it can serve it; we hold at most a few.
      if (this.#backlog.length >= 8)
        throw new HvError('HV_ERR_PROTOCOL', 'host sent KVP requests without waiting for answers');
      this.#backlog.push({ transId: pkt.transId, bytes: pkt.payload.slice() });
      return;
    }
    this.#lastTransId = pkt.transId;
    this.#ic.onPacket(pkt);
  }

  onClose(reason?: Error): void {
    this.#closed = true;
    this.#cancelNego?.();
    this.#cancelNego = null;
    this.#cancelTimer?.();
    this.#active = null;
    this.#ic.onClose(reason);
  }

  /** A message the daemon wrote. @throws ProtocolError when shorter than hv_kvp_msg; HvError `HV_ERR_INVALID_ARGUMENT` (EINVAL) when no transaction waits for it. */
  onDaemonMessage(msg: Uint8Array): void {
    checkKvpMsg(msg);
    if (this.#registered === 'no') {
      const op = msg[HV_KVP_MSG.offsets.operation];
      if (op !== KVP_OP_REGISTER1 && op !== KVP_OP_REGISTER) {
        throw new HvError('HV_ERR_INVALID_ARGUMENT', `KVP daemon must register first (operation ${op})`);
      }
      this.#registered = op === KVP_OP_REGISTER1 ? 'yes' : 'legacy';
      const r = newKvpMsg(op, 0, this.#toDaemon);
      putKvpRegisterVersion(r, HV_DRV_VERSION);
      this.#o.toDaemon(r);
      this.#endNegoWait(); // Linux kvp_register_done: cancel the nego work, poll the channel
      return;
    }
    const req = this.#active;
    if (!req) throw new HvError('HV_ERR_INVALID_ARGUMENT', 'KVP daemon answered with no transaction pending');
    let status = kvpMsgError(msg);
    const body = this.#pkt.subarray(ICMSG_HDR, this.#pktLen);
    if (status === HV_S_OK) {
      if (req.operation === KVP_OP_ENUMERATE) {
        const e = getKvpEnum(msg);
        if (this.#registered === 'legacy' && e.key === '') status = HV_S_CONT;
        else writeKvpReply(KVP_OP_ENUMERATE, body, e.key, e.value);
      } else if (req.operation === KVP_OP_GET) {
        writeKvpReply(KVP_OP_GET, body, '', getKvpValue(msg).value);
      } else if (req.operation === KVP_OP_GET_IP_INFO) {
        writeKvpIpReply(body, getKvpIp(msg));
      }
    }
    this.#respond(status);
  }

  /** The daemon closed its device: forget it, fail the transaction it held (Linux `kvp_on_reset`). */
  onDaemonRelease(): void {
    this.#registered = 'no';
    if (this.#active) this.#respond(HV_E_FAIL);
  }

  /** The first daemon registered or the nego timeout fired: serve what the host sent meanwhile. */
  #endNegoWait(): void {
    this.#cancelNego?.();
    this.#cancelNego = null;
    if (this.#nego === 'done') return;
    this.#nego = 'done';
    this.#drain();
  }

  /** Serves held packets in order until one waits for the daemon. Not re-entered: IcGuest's buffer is in use. */
  #drain(): void {
    if (this.#draining) return;
    this.#draining = true;
    try {
      this.#drainLoop();
    } finally {
      this.#draining = false;
    }
  }

  #drainLoop(): void {
    for (let next = this.#backlog.shift(); next; next = this.#active ? undefined : this.#backlog.shift()) {
      this.#lastTransId = next.transId;
      this.#ic.onPacket({
        type: VM_PKT_DATA_INBAND,
        flags: 0,
        transId: next.transId,
        payload: next.bytes,
        extHeader: new Uint8Array(0),
      });
    }
  }

  #onRequest(msg: IcMessage): void {
    this.#pktLen = ICMSG_HDR + msg.body.length;
    this.#pkt.set(new Uint8Array(msg.body.buffer, msg.body.byteOffset - ICMSG_HDR, this.#pktLen));
    this.#transId = this.#lastTransId;
    const req = decodeKvpRequest(this.#pkt.subarray(ICMSG_HDR, this.#pktLen));
    this.#active = req;
    if (this.#registered === 'no' || !this.#o.toDaemon(this.#encode(req))) {
      this.#respond(HV_E_FAIL);
      return;
    }
    this.#cancelTimer = this.#o.clock.setTimer(this.#o.timeoutMs ?? HV_UTIL_TIMEOUT_MS, () => {
      this.#cancelTimer = null;
      if (this.#active) this.#respond(HV_E_FAIL);
    });
  }

  /** Linux `kvp_send_key` (+ `process_ib_ipinfo`): the daemon-facing message for a host request. */
  #encode(req: KvpRequest): Uint8Array {
    const m = newKvpMsg(req.operation, req.pool, this.#toDaemon);
    const o = HV_KVP_MSG.offsets;
    const dv = new DataView(m.buffer, m.byteOffset, m.byteLength);
    switch (req.operation) {
      case KVP_OP_SET: {
        const val = req.value;
        const text = val.type === 'string' ? val.value : String(val.value);
        dv.setUint32(o.value_size, writeCStringTruncated(text, m, o.value, 2048), true);
        dv.setUint32(o.key_size, writeCStringTruncated(req.key, m, o.key, 512), true);
        break;
      }
      case KVP_OP_GET:
        dv.setUint32(o.key_size, writeCStringTruncated(req.key, m, o.key, 512), true);
        break;
      case KVP_OP_DELETE:
        putKvpDeleteKey(m, req.key.length > 255 ? req.key.slice(0, 255) : req.key);
        break;
      case KVP_OP_ENUMERATE:
        setKvpEnumIndex(m, req.index);
        break;
      case KVP_OP_GET_IP_INFO:
        putKvpIp(m, { ...req.ip, ipAddr: '', subNet: '', gateWay: '', dnsAddr: '', dhcpEnabled: false });
        break;
      default:
        putKvpIp(m, req.ip);
    }
    return m;
  }

  #respond(status: number): void {
    this.#cancelTimer?.();
    this.#cancelTimer = null;
    this.#active = null;
    if (this.#closed) return;
    makeIcEcho(this.#pkt, status);
    this.#ch.send(VM_PKT_DATA_INBAND, 0, this.#transId, this.#pkt.subarray(0, this.#pktLen));
    this.#drain();
  }
}
