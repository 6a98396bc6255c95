/**
 * File copy IC ("Guest Service Interface"), host side: sends START_FILE_COPY, WRITE_TO_FILE fragments,
 * COMPLETE_FCOPY or CANCEL_FCOPY one at a time and reports the guest's status for each, as Hyper-V's
 * vmicguestinterface does (the guest serves one transaction at a time: Linux drivers/hv/hv_fcopy.c).
 * Framework 1.0/3.0, message version 1.1 (reference/vmbus-core-ics.md §6.8). The per-fragment path is
 * allocation-free and gathers each fragment's data straight from the caller's buffer into the ring.
 */
import { HvError } from '../../protocol/errors.ts';
import {
  CANCEL_FCOPY,
  COMPLETE_FCOPY,
  DATA_FRAGMENT,
  encodeDoFcopyHeader,
  encodeFcopyHdr,
  encodeStartFcopy,
  HV_DO_FCOPY,
  HV_START_FCOPY,
  type StartFcopy,
} from '../../protocol/ic/fcopy.ts';
import { ICMSG_HDR, ICMSGTYPE_FCOPY, type IcMessage } from '../../protocol/ic/icmsg.ts';
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
  /** A request the ring had no room for (its send attempt), retried from onWritable. */
  #unsent: (() => boolean) | null = null;
  /** The fragment being sent, and its send attempt (bound once: no allocation per fragment). */
  #fragOffset = 0;
  #fragData: Uint8Array = new Uint8Array(0);
  readonly #fragHead = new Uint8Array(HV_DO_FCOPY.offsets.data);
  readonly #writeHead = (buf: Uint8Array, off: number): number =>
    encodeDoFcopyHeader(this.#fragOffset, this.#fragData.length, buf, off) - DATA_FRAGMENT;
  readonly #sendFragment = (): boolean =>
    this.#ic.sendWithData(this.#writeHead, this.#fragData, DATA_FRAGMENT - this.#fragData.length);
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
      // Every reply after NEGOTIATE is an echo of the request (6 KiB for each fragment) of which the host
      // reads only the status in icmsg_hdr: leave the rest in the ring.
      onNegotiated: () => ch.readPrefix?.(ICMSG_HDR),
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
    encodeStartFcopy(m, new Uint8Array(HV_START_FCOPY.size)); // validate before anything is sent
    this.#request('START_FILE_COPY', () => this.#ic.send((buf, off) => encodeStartFcopy(m, buf, off)), cb);
  }

  /**
   * WRITE_TO_FILE of `data` (at most 6144 bytes, read only until the packet is in the ring) at `fileOffset`.
   * The packet is always the full 6196-byte `hv_do_fcopy` (zeros after the data); the data go from `data`
   * straight into the ring.
   * @throws HvError `HV_ERR_INVALID_STATE` before negotiation or while a request is outstanding;
   *   `HV_ERR_INVALID_ARGUMENT` for more than 6144 bytes or an offset that is not a safe integer.
   */
  write(fileOffset: number, data: Uint8Array, cb: FcopyCallback): void {
    encodeDoFcopyHeader(fileOffset, data.length, this.#fragHead); // validate before anything is sent
    this.#checkIdle(); // before the fields of a fragment that may still wait for ring room change
    this.#ch.busyPoll?.(STREAM_SPIN_MICROS);
    this.#fragOffset = fileOffset;
    this.#fragData = data;
    this.#request('WRITE_TO_FILE', this.#sendFragment, cb, fileOffset);
  }

  /** COMPLETE_FCOPY (header only). */
  complete(cb: FcopyCallback): void {
    this.#ch.busyPoll?.(0);
    this.#request(
      'COMPLETE_FCOPY',
      () => this.#ic.send((buf, off) => encodeFcopyHdr(COMPLETE_FCOPY, buf, off)),
      cb,
    );
  }

  /** CANCEL_FCOPY (header only). */
  cancel(cb: FcopyCallback): void {
    this.#ch.busyPoll?.(0);
    this.#request(
      'CANCEL_FCOPY',
      () => this.#ic.send((buf, off) => encodeFcopyHdr(CANCEL_FCOPY, buf, off)),
      cb,
    );
  }

  onPacket(pkt: IncomingPacket): void {
    this.#ic.onPacket(pkt);
  }

  onWritable(): void {
    const attempt = this.#unsent;
    // Refused again: the channel calls onWritable once more when the request fits (pending_send_sz).
    if (attempt?.()) this.#unsent = null;
  }

  onClose(reason?: Error): void {
    this.#ic.onClose(reason);
  }

  #request(what: string, attempt: () => boolean, cb: FcopyCallback, fileOffset = -1): void {
    this.#checkIdle();
    this.#cb = cb;
    this.#what = what;
    this.#whatOffset = fileOffset;
    this.#cancelTimer = this.#clock.setTimer(this.#timeoutMs, this.#onTimeout);
    if (!attempt()) this.#unsent = attempt;
  }

  /** @throws HvError `HV_ERR_INVALID_STATE` while a request waits or before negotiation. */
  #checkIdle(): void {
    if (this.#cb)
      throw new HvError('HV_ERR_INVALID_STATE', 'a file copy request is already waiting for the guest');
    if (this.#ic.state !== 'ready') {
      throw new HvError(
        'HV_ERR_INVALID_STATE',
        `the guest's file copy service is not available (${this.#ic.status.PrimaryStatusDescription})`,
      );
    }
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
