/**
 * KVP IC, host side: one request at a time to the guest, each answered by a Promise with the guest's
 * `icmsg_hdr.status` and, for GET/ENUMERATE/GET_IP_INFO, the data it filled. Requests are VM_PKT_DATA_INBAND
 * with the negotiated versions (OpenVMM vm/devices/hyperv_ic/src/kvp.rs sends one at a time the same way).
 * Versions come from the host profile (src/vmbus/host-profiles.ts `kvp`).
 */
import { HvError } from '../../protocol/errors.ts';
import { HV_S_OK, ICMSGTYPE_KVPEXCHANGE, type IcMessage } from '../../protocol/ic/icmsg.ts';
import {
  decodeKvpIpReply,
  decodeKvpReply,
  encodeKvpRequest,
  KVP_IC_BODY,
  KVP_OP_ENUMERATE,
  KVP_OP_GET,
  KVP_OP_GET_IP_INFO,
  type KvpIpInfo,
  type KvpRequest,
} from '../../protocol/ic/kvp.ts';
import type { ChannelHandler, ChannelIo, Clock, IncomingPacket } from '../../vmbus/channel-io.ts';
import { hostIcOffer, IcHost, type IcOffer, type IcStatus } from '../ic/host.ts';

/**
 * The KVP NEGOTIATE offer of a host profile (framework [1.0, 3.0], message versions ascending).
 * @throws HvError `HV_ERR_INVALID_ARGUMENT` for an unknown profile, `HV_ERR_UNSUPPORTED` without KVP.
 */
export function hostKvpOffer(profile: string): IcOffer {
  return hostIcOffer(profile, 'kvp');
}

/** The guest's answer to one request. */
export interface KvpResult {
  /** HRESULT: HV_S_OK, HV_S_CONT (not found / end of enumeration), HV_E_FAIL, HV_GUID_NOTFOUND, ... */
  status: number;
  /** GET / ENUMERATE data (empty strings otherwise or on failure). */
  key: string;
  value: string;
  /** GET_IP_INFO data, null otherwise or on failure. */
  ip: KvpIpInfo | null;
}

export interface KvpHostOptions {
  clock: Clock;
  offer: IcOffer;
  /** How long to wait for each answer, ms (default 35 000: above the guest driver's own 30 s). */
  responseTimeoutMs?: number;
  /** Runs when negotiation completes (the exchange pushes its items then). */
  onReady?(): void;
}

interface Queued {
  req: KvpRequest;
  resolve(r: KvpResult): void;
  reject(e: Error): void;
}

/** Busy-poll window while a request waits for its reply, µs. */
const REPLY_SPIN_MICROS = 100;

/** The KVP device on one host channel. */
export class KvpHost implements ChannelHandler {
  readonly #ic: IcHost;
  readonly #ch: ChannelIo;
  readonly #o: KvpHostOptions;
  readonly #queue: Queued[] = [];
  readonly #scratch = new Uint8Array(KVP_IC_BODY.sizes.ip);
  #inflight: (Queued & { cancel(): void }) | null = null;
  #closed = false;

  constructor(ch: ChannelIo, o: KvpHostOptions) {
    this.#ch = ch;
    this.#o = o;
    this.#ic = new IcHost(ch, {
      icmsgtype: ICMSGTYPE_KVPEXCHANGE,
      offer: o.offer,
      onNegotiated: () => o.onReady?.(),
      onResponse: (m) => this.#onReply(m),
      onClose: (r) => {
        this.#closed = true;
        const err = new HvError('HV_ERR_CHANNEL_CLOSED', `KVP channel closed${r ? `: ${r.message}` : ''}`);
        this.#inflight?.cancel();
        this.#inflight?.reject(err);
        this.#inflight = null;
        for (const q of this.#queue.splice(0)) q.reject(err);
      },
    });
  }

  start(): void {
    this.#ic.start();
  }

  get status(): IcStatus {
    return this.#ic.status;
  }

  get ready(): boolean {
    return this.#ic.state === 'ready';
  }

  /**
   * Sends `req` after the requests before it.
   * @throws (rejects) HvError `HV_ERR_INVALID_ARGUMENT` for oversize keys/values (before anything is sent),
   *   `HV_ERR_INVALID_STATE` before negotiation, `HV_ERR_TIMEOUT`, `HV_ERR_CHANNEL_CLOSED`, `HV_ERR_RING_FULL`.
   */
  request(req: KvpRequest): Promise<KvpResult> {
    try {
      encodeKvpRequest(req, this.#scratch); // validates sizes before anything is queued
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.#closed || this.#ic.state !== 'ready') {
      return Promise.reject(
        new HvError(
          'HV_ERR_INVALID_STATE',
          `the guest's KVP service is not available (${this.#ic.status.PrimaryStatusDescription})`,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ req, resolve, reject });
      this.#next();
    });
  }

  onPacket(pkt: IncomingPacket): void {
    this.#ic.onPacket(pkt);
  }

  onClose(reason?: Error): void {
    this.#ic.onClose(reason);
  }

  #next(): void {
    if (this.#inflight || this.#closed) return;
    const q = this.#queue.shift();
    if (!q) return;
    let sent = false;
    try {
      sent = this.#ic.send((buf, off) => encodeKvpRequest(q.req, buf, off));
    } catch (e) {
      q.reject(e as Error);
      this.#next();
      return;
    }
    if (!sent) {
      q.reject(new HvError('HV_ERR_RING_FULL', 'the KVP channel ring is full; try again'));
      this.#next();
      return;
    }
    const ms = this.#o.responseTimeoutMs ?? 35_000;
    const cancel = this.#o.clock.setTimer(ms, () => {
      const f = this.#inflight;
      this.#inflight = null;
      f?.reject(new HvError('HV_ERR_TIMEOUT', `the guest did not answer a KVP request in ${ms} ms`));
      this.#next();
    });
    this.#inflight = { ...q, cancel };
    // A daemon in the guest kernel's thread answers in a few µs: poll for it instead of waiting for its
    // interrupt (the channel stops by itself for a slower daemon, ring-channel.ts).
    this.#ch.busyPoll?.(REPLY_SPIN_MICROS);
  }

  #onReply(m: IcMessage): void {
    const f = this.#inflight;
    if (!f) return; // a late answer after our timeout
    this.#inflight = null;
    f.cancel();
    if (this.#queue.length === 0) this.#ch.busyPoll?.(0);
    const r: KvpResult = { status: m.hdr.status, key: '', value: '', ip: null };
    try {
      if (r.status === HV_S_OK) {
        const op = f.req.operation;
        if (op === KVP_OP_GET || op === KVP_OP_ENUMERATE) Object.assign(r, decodeKvpReply(op, m.body));
        else if (op === KVP_OP_GET_IP_INFO) r.ip = decodeKvpIpReply(m.body);
      }
      f.resolve(r);
    } catch (e) {
      f.reject(e as Error);
      this.#next();
      throw e; // a malformed reply closes the channel
    }
    this.#next();
  }
}
