/**
 * Time sync IC, host side: after negotiation sends one SYNC, then a SAMPLE every `sampleIntervalMs` (5 s,
 * OpenVMM hyperv_ic/src/timesync.rs); `resume()` sends a SYNC again (after a VM resume/restore).
 * Message version 4.0 carries `ictimesync_ref_data` (24 bytes sent) with `parenttime` (host UTC, 100 ns since
 * 1601) and `vmreferencetime` (the VM's reference counter when `parenttime` was taken); 1.0/3.0 carry
 * `ictimesync_data` (28 bytes sent) with `childtime` and `roundtriptime` 0.
 * The guest's clock offset does not travel on this channel; the VM model passes the value the guest reports
 * to {@link TimesyncHost.noteGuestOffset} and readers use {@link TimesyncHost.guestOffsetMs}.
 */
import { compareIcVersions, ICMSGTYPE_TIMESYNC } from '../../protocol/ic/icmsg.ts';
import {
  encodeIcTimesyncData,
  encodeIcTimesyncRefData,
  ICTIMESYNCFLAG_SAMPLE,
  ICTIMESYNCFLAG_SYNC,
  TS_VERSION,
  unixMsToParentTime,
} from '../../protocol/ic/timesync.ts';
import type { ChannelHandler, ChannelIo, Clock, IncomingPacket } from '../../vmbus/channel-io.ts';
import { hostIcOffer, IcHost, type IcOffer, type IcStatus } from '../ic/host.ts';

export interface TimesyncHostOptions {
  clock: Clock;
  /** The VM's partition reference counter now, in 100-ns ticks (`vmreferencetime`). */
  referenceTime(): bigint;
  /** Host UTC as 100-ns units since 1601; default from `clock.now()`. */
  parentTime?(): bigint;
  /** Versions to offer; default: everything the WS2025 profile offers. */
  offer?: IcOffer;
  /** Period between SAMPLE messages, ms (default 5000). */
  sampleIntervalMs?: number;
}

/** The time sync device on one host channel. */
export class TimesyncHost implements ChannelHandler {
  readonly #ic: IcHost;
  readonly #opts: TimesyncHostOptions;
  readonly #interval: number;
  #cancel: (() => void) | null = null;
  #guestOffsetMs: number | null = null;
  #sent = { sync: 0, sample: 0 };

  constructor(ch: ChannelIo, opts: TimesyncHostOptions) {
    this.#opts = opts;
    this.#interval = opts.sampleIntervalMs ?? 5000;
    this.#ic = new IcHost(ch, {
      icmsgtype: ICMSGTYPE_TIMESYNC,
      offer: opts.offer ?? hostIcOffer('WS2025', 'timesync'),
      onNegotiated: () => {
        this.#send(ICTIMESYNCFLAG_SYNC);
        this.#schedule();
      },
      // The guest echoes each message; nothing in the reply changes host state.
      onResponse: () => {},
      onClose: () => this.stop(),
    });
  }

  /** Sends NEGOTIATE; SYNC and the SAMPLE timer follow the guest's answer. */
  start(): void {
    this.#ic.start();
  }

  /** Stops the SAMPLE timer. */
  stop(): void {
    this.#cancel?.();
    this.#cancel = null;
  }

  /** After the VM resumes: a SYNC now, then SAMPLEs again on the usual period. */
  resume(): void {
    if (this.#ic.state !== 'ready') return;
    this.stop();
    this.#send(ICTIMESYNCFLAG_SYNC);
    this.#schedule();
  }

  get status(): IcStatus {
    return this.#ic.status;
  }

  /** Messages sent so far by kind. */
  get sent(): { sync: number; sample: number } {
    return { ...this.#sent };
  }

  /** The guest's clock minus host time in ms, as last reported out of band; null before any report. */
  get guestOffsetMs(): number | null {
    return this.#guestOffsetMs;
  }

  /** Records the offset the guest reported (the VM model forwards TimesyncGuest.offsetMs here). */
  noteGuestOffset(ms: number): void {
    this.#guestOffsetMs = ms;
  }

  onPacket(pkt: IncomingPacket): void {
    this.#ic.onPacket(pkt);
  }

  onClose(reason?: Error): void {
    this.#ic.onClose(reason);
  }

  #schedule(): void {
    this.#cancel = this.#clock().setTimer(this.#interval, () => {
      this.#send(ICTIMESYNCFLAG_SAMPLE);
      if (this.#cancel) this.#schedule();
    });
  }

  #clock(): Clock {
    return this.#opts.clock;
  }

  #send(flags: number): void {
    const ver = this.#ic.message;
    if (this.#ic.state !== 'ready' || !ver) return;
    const parenttime = this.#opts.parentTime?.() ?? unixMsToParentTime(this.#opts.clock.now());
    const v4 = compareIcVersions(ver, TS_VERSION) >= 0;
    const vmreferencetime = this.#opts.referenceTime();
    const ok = this.#ic.send((buf, off) =>
      v4
        ? encodeIcTimesyncRefData({ parenttime, vmreferencetime, flags, leapflags: 0, stratum: 0 }, buf, off)
        : encodeIcTimesyncData({ parenttime, childtime: 0n, roundtriptime: 0n, flags }, buf, off),
    );
    if (ok) this.#sent[flags === ICTIMESYNCFLAG_SYNC ? 'sync' : 'sample']++;
  }
}
