/**
 * File copy IC ("Guest Service Interface"), host side: sends START_FILE_COPY, WRITE_TO_FILE fragments,
 * COMPLETE_FCOPY or CANCEL_FCOPY one at a time and reports the guest's status for each, as Hyper-V's
 * vmicguestinterface does (the guest serves one transaction at a time: Linux drivers/hv/hv_fcopy.c).
 * Framework 1.0/3.0, message version 1.1 (reference/vmbus-core-ics.md §6.8). The per-fragment path is
 * callback based and writes file data straight into the packet buffer (no copy, no allocation).
 */
import { HvError } from '../../protocol/errors.ts';
import {
  CANCEL_FCOPY,
  COMPLETE_FCOPY,
  encodeDoFcopyHeader,
  encodeFcopyHdr,
  encodeStartFcopy,
  HV_DO_FCOPY,
  type StartFcopy,
} from '../../protocol/ic/fcopy.ts';
import { ICMSGTYPE_FCOPY, type IcMessage } from '../../protocol/ic/icmsg.ts';
import type { ChannelHandler, ChannelIo, Clock, IncomingPacket } from '../../vmbus/channel-io.ts';
import { hostIcOffer, IcHost, type IcOffer, type IcStatus } from '../ic/host.ts';

/**
 * Busy-poll window while fragments stream: an in-process guest daemon answers in a few µs, far less than
 * an interrupt's wake-up; a slower guest makes the channel stop spinning by itself (ring-channel.ts).
 */
const STREAM_SPIN_MICROS = 100;

/** Called with the guest's `icmsg_hdr.status` (HRESULT), or an HvError when no answer came. */
export type FcopyCallback = (err: HvError | null, status: number) => void;

export interface FcopyHostOptions {
  clock: Clock;
  /** Versions to offer; default: the WS2025 profile's fcopy offer. */
  offer?: IcOffer;
  /** How long to wait for each guest reply, ms (default 60 000: above the guest's 30 s daemon timeout). */
  responseTimeoutMs?: number;
}

/**
 * The fcopy offer of a host profile (`src/vmbus/host-profiles.ts`).
 * @throws HvError `HV_ERR_UNSUPPORTED` when that release has no Guest Service Interface (before WS2012R2).
 */
export function hostFcopyOffer(profile: string): IcOffer {
  return hostIcOffer(profile, 'fcopy');
}

/** The fcopy device on one host channel. */
export class FcopyHost implements ChannelHandler {
  readonly #ic: IcHost;
  readonly #ch: ChannelIo;
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  #cb: FcopyCallback | null = null;
  #cancelTimer: (() => void) | null = null;
  /** A request the ring had no room for, retried from onWritable. */
  #unsent: ((buf: Uint8Array, off: number) => number) | null = null;
  /** What the outstanding request is (and its file offset, or -1), for the timeout message. */
  #what = '';
  #whatOffset = -1;
  readonly #onTimeout = () => {
    this.#cancelTimer = null;
    this.#settle(
      new HvError(
        'HV_ERR_TIMEOUT',
        `the guest did not answer ${this.#what}${this.#whatOffset >= 0 ? ` at offset ${this.#whatOffset}` : ''}${this.#unsent ? ' (still not sent: the ring stayed full)' : ''} in ${this.#timeoutMs} ms`,
      ),
      0,
    );
  };

  constructor(ch: ChannelIo, opts: FcopyHostOptions) {
    this.#ch = ch;
    this.#clock = opts.clock;
    this.#timeoutMs = opts.responseTimeoutMs ?? 60_000;
    this.#ic = new IcHost(ch, {
      icmsgtype: ICMSGTYPE_FCOPY,
      offer: opts.offer ?? hostFcopyOffer('WS2025'),
      onResponse: (m: IcMessage) => this.#settle(null, m.hdr.status),
      onClose: (r) =>
        this.#settle(
          new HvError('HV_ERR_CHANNEL_CLOSED', `file copy channel closed${r ? `: ${r.message}` : ''}`),
          0,
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

  /** True once negotiated and no request is outstanding. */
  get idle(): boolean {
    return this.#ic.state === 'ready' && this.#cb === null;
  }

  /** START_FILE_COPY (names as UTF-16). @throws HvError as {@link FcopyHost.write} and for names over 259 units. */
  startFileCopy(m: StartFcopy, cb: FcopyCallback): void {
    encodeStartFcopy(m, new Uint8Array(1088)); // validate before anything is sent
    this.#request('START_FILE_COPY', (buf, off) => encodeStartFcopy(m, buf, off), cb);
  }

  /**
   * WRITE_TO_FILE at `fileOffset`: `fill(buf, at)` writes up to 6144 data bytes at `buf[at]` and returns how
   * many. The packet is always the full 6196-byte `hv_do_fcopy`.
   * @throws HvError `HV_ERR_INVALID_STATE` before negotiation or while a request is outstanding.
   */
  write(fileOffset: number, fill: (buf: Uint8Array, at: number) => number, cb: FcopyCallback): void {
    this.#ch.busyPoll?.(STREAM_SPIN_MICROS);
    this.#request(
      'WRITE_TO_FILE',
      (buf, off) => {
        const n = fill(buf, off + HV_DO_FCOPY.offsets.data);
        return encodeDoFcopyHeader(fileOffset, n, buf, off);
      },
      cb,
      fileOffset,
    );
  }

  /** COMPLETE_FCOPY (header only). */
  complete(cb: FcopyCallback): void {
    this.#ch.busyPoll?.(0);
    this.#request('COMPLETE_FCOPY', (buf, off) => encodeFcopyHdr(COMPLETE_FCOPY, buf, off), cb);
  }

  /** CANCEL_FCOPY (header only). */
  cancel(cb: FcopyCallback): void {
    this.#ch.busyPoll?.(0);
    this.#request('CANCEL_FCOPY', (buf, off) => encodeFcopyHdr(CANCEL_FCOPY, buf, off), cb);
  }

  onPacket(pkt: IncomingPacket): void {
    this.#ic.onPacket(pkt);
  }

  onWritable(): void {
    const fill = this.#unsent;
    // Refused again: the channel calls onWritable once more when the request fits (pending_send_sz).
    if (fill && this.#ic.send(fill)) this.#unsent = null;
  }

  onClose(reason?: Error): void {
    this.#ic.onClose(reason);
  }

  #request(
    what: string,
    fill: (buf: Uint8Array, off: number) => number,
    cb: FcopyCallback,
    fileOffset = -1,
  ): void {
    if (this.#cb)
      throw new HvError('HV_ERR_INVALID_STATE', 'a file copy request is already waiting for the guest');
    if (this.#ic.state !== 'ready') {
      throw new HvError(
        'HV_ERR_INVALID_STATE',
        `the guest's file copy service is not available (${this.#ic.status.PrimaryStatusDescription})`,
      );
    }
    this.#cb = cb;
    this.#what = what;
    this.#whatOffset = fileOffset;
    this.#cancelTimer = this.#clock.setTimer(this.#timeoutMs, this.#onTimeout);
    if (!this.#ic.send(fill)) this.#unsent = fill;
  }

  #settle(err: HvError | null, status: number): void {
    const cb = this.#cb;
    if (!cb) return;
    this.#cb = null;
    if (err) this.#ch.busyPoll?.(0);
    this.#unsent = null;
    this.#cancelTimer?.();
    this.#cancelTimer = null;
    cb(err, status);
  }
}
