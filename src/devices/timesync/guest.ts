/**
 * Time sync IC, guest side. Host time at the moment of receipt is computed as Linux `adj_guesttime` does:
 * v4: `parenttime + (now_ref - vmreferencetime)`; v1/v3: `parenttime` (the sample is taken as current).
 * SYNC sets the guest clock through the `setClock` hook (in our guest model the guest keeps an offset; it
 * never touches the host's clock). SAMPLE is stored; FreeBSD also applies a SAMPLE whose drift exceeds
 * `sampleThresholdMs` (its `sample_thresh` sysctl, default 100 ms). The reply echoes the request unchanged
 * but for the response flags. Sources: Linux drivers/hv/hv_util.c; FreeBSD vmbus_timesync.c.
 */
import { compareIcVersions, ICMSGTYPE_TIMESYNC } from '../../protocol/ic/icmsg.ts';
import {
  decodeIcTimesyncData,
  decodeIcTimesyncRefData,
  ICTIMESYNC_DATA,
  ICTIMESYNC_REF_DATA,
  ICTIMESYNCFLAG_SAMPLE,
  ICTIMESYNCFLAG_SYNC,
  parentTimeToUnixMs,
  TS_VERSION,
} from '../../protocol/ic/timesync.ts';
import type { ChannelHandler, ChannelIo, Clock, IncomingPacket } from '../../vmbus/channel-io.ts';
import { guestIcVersions, IcGuest, type IcGuestFlavor, type IcSelection } from '../ic/guest.ts';

export interface TimesyncGuestOptions {
  flavor?: IcGuestFlavor;
  /** The guest's own wall clock (ms since the Unix epoch). */
  clock: Clock;
  /** The guest's reference counter now, 100-ns ticks (Linux `hv_read_reference_counter`). */
  referenceTime(): bigint;
  /** Sets the guest's wall clock to `hostUnixMs` (SYNC, or a FreeBSD SAMPLE over the threshold). */
  setClock(hostUnixMs: number): void;
  /** FreeBSD's `sample_thresh`, ms (default 100). */
  sampleThresholdMs?: number;
}

/** The latest time message, host time already corrected to the moment of receipt. */
export interface TimesyncSample {
  /** Host UTC at receipt, Unix ms. */
  hostUnixMs: number;
  /** ICTIMESYNCFLAG_SYNC or ICTIMESYNCFLAG_SAMPLE (or PROBE). */
  flags: number;
  /** Guest reference counter at receipt, 100-ns ticks. */
  receivedAtRef: bigint;
}

/** The time sync driver on one guest channel. */
export class TimesyncGuest implements ChannelHandler {
  readonly #ic: IcGuest;
  readonly #opts: TimesyncGuestOptions;
  readonly #flavor: IcGuestFlavor;
  #last: TimesyncSample | null = null;
  #offsetMs: number | null = null;

  constructor(ch: ChannelIo, opts: TimesyncGuestOptions) {
    this.#opts = opts;
    this.#flavor = opts.flavor ?? 'linux';
    this.#ic = new IcGuest(ch, {
      flavor: this.#flavor,
      icmsgtype: ICMSGTYPE_TIMESYNC,
      versions: guestIcVersions(this.#flavor, 'timesync'),
      onRequest: (msg, reply, negotiated) => {
        const v4 = negotiated !== null && compareIcVersions(negotiated.message, TS_VERSION) >= 0;
        if (msg.body.length < (v4 ? ICTIMESYNC_REF_DATA.size : ICTIMESYNC_DATA.size)) {
          reply.drop();
          return;
        }
        const nowRef = this.#opts.referenceTime();
        let host: bigint;
        let flags: number;
        if (v4) {
          const d = decodeIcTimesyncRefData(msg.body);
          host = d.parenttime + (nowRef - d.vmreferencetime);
          flags = d.flags;
        } else {
          const d = decodeIcTimesyncData(msg.body);
          host = d.parenttime;
          flags = d.flags;
        }
        this.#apply({ hostUnixMs: parentTimeToUnixMs(host), flags, receivedAtRef: nowRef });
      },
    });
  }

  get negotiated(): IcSelection | null {
    return this.#ic.negotiated;
  }

  /** The latest SYNC or SAMPLE, null before any. */
  get lastSample(): TimesyncSample | null {
    return this.#last;
  }

  /**
   * Guest clock minus host time, ms, measured when the latest message arrived (after a SYNC was applied):
   * what the guest reports to the host model. Null before any message.
   */
  get offsetMs(): number | null {
    return this.#offsetMs;
  }

  onPacket(pkt: IncomingPacket): void {
    this.#ic.onPacket(pkt);
  }

  onClose(reason?: Error): void {
    this.#ic.onClose(reason);
  }

  #apply(s: TimesyncSample): void {
    this.#last = s;
    const drift = this.#opts.clock.now() - s.hostUnixMs;
    const threshold = this.#opts.sampleThresholdMs ?? 100;
    const sync =
      (s.flags & ICTIMESYNCFLAG_SYNC) !== 0 ||
      (this.#flavor === 'freebsd' && (s.flags & ICTIMESYNCFLAG_SAMPLE) !== 0 && Math.abs(drift) > threshold);
    if (sync) this.#opts.setClock(s.hostUnixMs);
    this.#offsetMs = this.#opts.clock.now() - s.hostUnixMs;
  }
}
