/**
 * VSS (backup) IC, host side: the requests Hyper-V's VSS requestor sends a guest for a production
 * checkpoint or backup (HOT_BACKUP to ask whether the guest can take part, FREEZE, THAW, GET_DM_INFO), one
 * at a time, each answered with the guest's `icmsg_hdr.status` and the `flags` of its echo. Framework
 * 1.0/3.0, message 5.0 from the host profile (reference/vmbus-core-ics.md §6.7; Linux hv_snapshot.c serves
 * one transaction at a time).
 */
import { HvError } from '../../protocol/errors.ts';
import { ICMSGTYPE_VSS, type IcMessage } from '../../protocol/ic/icmsg.ts';
import { decodeVssMsg, encodeVssMsg } from '../../protocol/ic/vss.ts';
import type { ChannelHandler, ChannelIo, Clock, IncomingPacket } from '../../vmbus/channel-io.ts';
import { hostIcOffer, IcHost, type IcOffer, type IcStatus } from '../ic/host.ts';

/** The guest's answer: HRESULT and the `flags` dword of the echoed `hv_vss_msg`. */
export interface VssResult {
  status: number;
  flags: number;
}

export interface VssHostOptions {
  clock: Clock;
  /** Versions to offer; default: the WS2025 profile's VSS offer. */
  offer?: IcOffer;
  /** How long to wait for each answer, ms (default 16 min: above the guest's 15 min freeze timeout). */
  responseTimeoutMs?: number;
}

/**
 * The VSS offer of a host profile.
 * @throws HvError `HV_ERR_UNSUPPORTED` when that release has no VSS IC for Linux guests (before WS2012R2).
 */
export function hostVssOffer(profile: string): IcOffer {
  return hostIcOffer(profile, 'vss');
}

/** The VSS device on one host channel. */
export class VssHost implements ChannelHandler {
  readonly #ic: IcHost;
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  #waiter: { res(r: VssResult): void; rej(e: Error): void; op: number } | null = null;
  #cancelTimer: (() => void) | null = null;

  constructor(ch: ChannelIo, opts: VssHostOptions) {
    this.#clock = opts.clock;
    this.#timeoutMs = opts.responseTimeoutMs ?? 16 * 60_000;
    this.#ic = new IcHost(ch, {
      icmsgtype: ICMSGTYPE_VSS,
      offer: opts.offer ?? hostVssOffer('WS2025'),
      onResponse: (m: IcMessage) => {
        let flags = 0;
        try {
          flags = decodeVssMsg(m.body).flags;
        } catch {
          // a short echo: the status alone counts
        }
        this.#settle(null, { status: m.hdr.status, flags });
      },
      onClose: (r) =>
        this.#settle(new HvError('HV_ERR_CHANNEL_CLOSED', `VSS channel closed${r ? `: ${r.message}` : ''}`)),
    });
  }

  start(): void {
    this.#ic.start();
  }

  get status(): IcStatus {
    return this.#ic.status;
  }

  /**
   * Sends one `hv_vss_msg` with `operation` (VSS_OP_*) and waits for the guest's answer.
   * @throws (rejects) HvError `HV_ERR_INVALID_STATE` before negotiation or while a request is outstanding,
   *   `HV_ERR_TIMEOUT` without an answer, `HV_ERR_CHANNEL_CLOSED` when the channel goes.
   */
  request(operation: number): Promise<VssResult> {
    if (this.#waiter)
      return Promise.reject(
        new HvError('HV_ERR_INVALID_STATE', 'a VSS request is already waiting for the guest'),
      );
    if (this.#ic.state !== 'ready') {
      return Promise.reject(
        new HvError(
          'HV_ERR_INVALID_STATE',
          `the guest's VSS service is not available (${this.#ic.status.PrimaryStatusDescription})`,
        ),
      );
    }
    return new Promise<VssResult>((res, rej) => {
      this.#waiter = { res, rej, op: operation };
      this.#cancelTimer = this.#clock.setTimer(this.#timeoutMs, () => {
        this.#cancelTimer = null;
        this.#settle(
          new HvError(
            'HV_ERR_TIMEOUT',
            `the guest did not answer VSS operation ${operation} in ${this.#timeoutMs} ms`,
          ),
        );
      });
      if (!this.#ic.send((buf, off) => encodeVssMsg({ operation, flags: 0 }, buf, off))) {
        this.#settle(new HvError('HV_ERR_IO', 'the VSS channel ring is full'));
      }
    });
  }

  onPacket(pkt: IncomingPacket): void {
    this.#ic.onPacket(pkt);
  }

  onClose(reason?: Error): void {
    this.#ic.onClose(reason);
  }

  #settle(err: Error | null, r?: VssResult): void {
    const w = this.#waiter;
    if (!w) return;
    this.#waiter = null;
    this.#cancelTimer?.();
    this.#cancelTimer = null;
    if (err) w.rej(err);
    else w.res(r!);
  }
}
