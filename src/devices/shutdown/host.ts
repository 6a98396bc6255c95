/**
 * Shutdown IC, host side: `requestShutdown` sends one SHUTDOWN request and resolves with the guest's status.
 * Flags (OpenVMM `ShutdownFlags`, Linux hv_util.c switch): bit0 force, bit1 restart, bit2 hibernate.
 * Version gates: hibernate needs message version 3.2 (the Linux patch adding it: "required for the host to
 * send the hibernation request"); restart needs 3.1 (implied by the version list; UNVERIFIED as a host rule).
 * Sources: Linux drivers/hv/hv_util.c `shutdown_onchannelcallback`; OpenVMM hyperv_ic/src/shutdown.rs.
 */
import { HvError } from '../../protocol/errors.ts';
import { compareIcVersions, HV_S_OK, ICMSGTYPE_SHUTDOWN, type IcMessage } from '../../protocol/ic/icmsg.ts';
import {
  encodeShutdownMsgData,
  SD_VERSION_3_1,
  SD_VERSION_3_2,
  SHTDN_REASON_FLAG_PLANNED,
  SHUTDOWN_FLAG_FORCE,
  SHUTDOWN_FLAG_HIBERNATE,
  SHUTDOWN_FLAG_RESTART,
} from '../../protocol/ic/shutdown.ts';
import type { ChannelHandler, ChannelIo, Clock, IncomingPacket } from '../../vmbus/channel-io.ts';
import { hostIcOffer, IcHost, type IcOffer, type IcStatus } from '../ic/host.ts';

export interface ShutdownRequest {
  restart?: boolean;
  hibernate?: boolean;
  /** Sets the force bit (Linux always acts as if forced). */
  force?: boolean;
  /** `reason_code`, default SHTDN_REASON_FLAG_PLANNED (0x80000000) as OpenVMM sends. */
  reason?: number;
  /** `timeout_seconds` passed to the guest (default 0). */
  timeoutSeconds?: number;
  /** `display_message`, sent as UTF-8 and cut to 2048 bytes (the real encoding is UNVERIFIED). */
  message?: string;
}

/** The guest's answer. */
export interface ShutdownResult {
  /** `icmsg_hdr.status` HRESULT (HV_S_OK). */
  status: number;
}

export interface ShutdownHostOptions {
  clock: Clock;
  /** Versions to offer; default: everything the WS2025 profile offers. */
  offer?: IcOffer;
  /** How long to wait for the guest's reply, ms (default 60000). */
  responseTimeoutMs?: number;
}

interface Pending {
  resolve(r: ShutdownResult): void;
  reject(e: Error): void;
  cancelTimer(): void;
}

/** The shutdown device on one host channel. */
export class ShutdownHost implements ChannelHandler {
  readonly #ic: IcHost;
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  #pending: Pending | null = null;

  constructor(ch: ChannelIo, opts: ShutdownHostOptions) {
    this.#clock = opts.clock;
    this.#timeoutMs = opts.responseTimeoutMs ?? 60_000;
    this.#ic = new IcHost(ch, {
      icmsgtype: ICMSGTYPE_SHUTDOWN,
      offer: opts.offer ?? hostIcOffer('WS2025', 'shutdown'),
      onResponse: (m) => this.#onReply(m),
      onClose: (r) =>
        this.#settle(
          null,
          new HvError('HV_ERR_CHANNEL_CLOSED', `shutdown channel closed${r ? `: ${r.message}` : ''}`),
        ),
    });
  }

  /** Sends NEGOTIATE. */
  start(): void {
    this.#ic.start();
  }

  get status(): IcStatus {
    return this.#ic.status;
  }

  /**
   * Asks the guest to power off, restart or hibernate.
   * @returns the guest's status when it is HV_S_OK.
   * @throws (rejects) HvError `HV_ERR_INVALID_ARGUMENT` for restart and hibernate together;
   *   `HV_ERR_INVALID_STATE` before negotiation, while another request is pending, or when the guest answers
   *   a failure status such as HV_E_FAIL (details.status); `HV_ERR_UNSUPPORTED` when the negotiated version
   *   lacks restart (< 3.1) or hibernate (< 3.2); `HV_ERR_TIMEOUT` without a reply in time;
   *   `HV_ERR_CHANNEL_CLOSED` when the channel closes first; `HV_ERR_RING_FULL` when the request cannot be sent.
   */
  requestShutdown(req: ShutdownRequest = {}): Promise<ShutdownResult> {
    const fail = (code: ConstructorParameters<typeof HvError>[0], msg: string) =>
      Promise.reject(new HvError(code, msg));
    if (req.restart && req.hibernate)
      return fail('HV_ERR_INVALID_ARGUMENT', 'choose restart or hibernate, not both');
    const ver = this.#ic.message;
    if (this.#ic.state !== 'ready' || !ver) {
      return fail(
        'HV_ERR_INVALID_STATE',
        `the guest's shutdown service is not available (${this.#ic.status.PrimaryStatusDescription})`,
      );
    }
    if (this.#pending)
      return fail('HV_ERR_INVALID_STATE', 'a shutdown request is already waiting for the guest');
    const v = `${ver.major}.${ver.minor}`;
    if (req.hibernate && compareIcVersions(ver, SD_VERSION_3_2) < 0) {
      return fail('HV_ERR_UNSUPPORTED', `the guest negotiated shutdown ${v}; hibernate needs 3.2`);
    }
    if (req.restart && compareIcVersions(ver, SD_VERSION_3_1) < 0) {
      return fail('HV_ERR_UNSUPPORTED', `the guest negotiated shutdown ${v}; restart needs 3.1`);
    }
    const flags =
      (req.force ? SHUTDOWN_FLAG_FORCE : 0) |
      (req.restart ? SHUTDOWN_FLAG_RESTART : 0) |
      (req.hibernate ? SHUTDOWN_FLAG_HIBERNATE : 0);
    const sent = this.#ic.send((buf, off) =>
      encodeShutdownMsgData(
        {
          reason_code: req.reason ?? SHTDN_REASON_FLAG_PLANNED,
          timeout_seconds: req.timeoutSeconds ?? 0,
          flags,
          display_message: new TextEncoder().encode(req.message ?? ''),
        },
        buf,
        off,
      ),
    );
    if (!sent) return fail('HV_ERR_RING_FULL', 'the shutdown channel ring is full; try again');
    return new Promise((resolve, reject) => {
      const cancelTimer = this.#clock.setTimer(this.#timeoutMs, () =>
        this.#settle(
          null,
          new HvError(
            'HV_ERR_TIMEOUT',
            `the guest did not answer the shutdown request in ${this.#timeoutMs} ms`,
          ),
        ),
      );
      this.#pending = { resolve, reject, cancelTimer };
    });
  }

  onPacket(pkt: IncomingPacket): void {
    this.#ic.onPacket(pkt);
  }

  onClose(reason?: Error): void {
    this.#ic.onClose(reason);
  }

  #onReply(m: IcMessage): void {
    const status = m.hdr.status;
    if (status === HV_S_OK) this.#settle({ status }, null);
    else {
      const hex = `0x${status.toString(16).padStart(8, '0')}`;
      this.#settle(
        null,
        new HvError('HV_ERR_INVALID_STATE', `the guest refused the shutdown request (status ${hex})`, {
          status,
        }),
      );
    }
  }

  #settle(ok: ShutdownResult | null, err: Error | null): void {
    const p = this.#pending;
    if (!p) return;
    this.#pending = null;
    p.cancelTimer();
    if (ok) p.resolve(ok);
    else p.reject(err!);
  }
}
