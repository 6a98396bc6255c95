/**
 * Heartbeat IC, host side: negotiates, then sends a HEARTBEAT request every `intervalMs` with an increasing
 * `seq_num`; a reply carrying `seq_num + 1` of a recent request counts as a beat. From the beats it derives
 * the Hyper-V `Heartbeat` property (Get-VM `VMHeartbeatStatus`) and the integration-service status.
 * Cadence: 2 s by default, from Linux drivers/hv/hv_util.c ("Every two seconds, Hyper-V send us a heartbeat
 * request message"); how many missed beats make Hyper-V say "Lost Communication" is UNVERIFIED (default 3).
 * Sources: Linux hv_util.c `heartbeat_onchannelcallback`; OpenVMM hyperv_ic_protocol/src/heartbeat.rs.
 */
import {
  decodeHeartbeatMsgData,
  encodeHeartbeatMsgData,
  HEARTBEAT_APPLICATION_STATE,
} from '../../protocol/ic/heartbeat.ts';
import { ICMSGTYPE_HEARTBEAT, type IcMessage } from '../../protocol/ic/icmsg.ts';
import type { ChannelHandler, ChannelIo, Clock, IncomingPacket } from '../../vmbus/channel-io.ts';
import { hostIcOffer, IcHost, type IcOffer, type IcStatus } from '../ic/host.ts';

/**
 * Get-VM `Heartbeat` values (Microsoft.HyperV.PowerShell.VMHeartbeatStatus) this host produces.
 * `OkApplicationsHealthy`, `OkApplicationsUnknown` and `NoContact` are the strings public scripts compare
 * real Get-VM output with; `OkApplicationsCritical` and `LostCommunication` are taken from the enum's member
 * names (UNVERIFIED on a real host). Linux and FreeBSD guests echo `application_state` = 0 (UNKNOWN), so a
 * Linux guest shows OkApplicationsUnknown.
 */
export type VMHeartbeatStatus =
  | 'OkApplicationsHealthy'
  | 'OkApplicationsUnknown'
  | 'OkApplicationsCritical'
  | 'NoContact'
  | 'LostCommunication';

export interface HeartbeatHostOptions {
  clock: Clock;
  /** Versions to offer; default: everything the WS2025 profile offers. */
  offer?: IcOffer;
  /** Period between requests, ms (default 2000). */
  intervalMs?: number;
  /** Missed periods after which an answering guest becomes LostCommunication (default 3). */
  lostAfterMissed?: number;
}

/** The heartbeat device on one host channel. */
export class HeartbeatHost implements ChannelHandler {
  readonly #ic: IcHost;
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #lostAfter: number;
  #seq = 0n;
  #lastBeatAt: number | null = null;
  #appState = 0;
  #cancel: (() => void) | null = null;

  constructor(ch: ChannelIo, opts: HeartbeatHostOptions) {
    this.#clock = opts.clock;
    this.#intervalMs = opts.intervalMs ?? 2000;
    this.#lostAfter = opts.lostAfterMissed ?? 3;
    this.#ic = new IcHost(ch, {
      icmsgtype: ICMSGTYPE_HEARTBEAT,
      offer: opts.offer ?? hostIcOffer('WS2025', 'heartbeat'),
      onResponse: (m) => this.#onBeat(m),
      onClose: () => this.stop(),
    });
  }

  /** Sends NEGOTIATE and starts the request timer. */
  start(): void {
    this.#ic.start();
    this.#schedule();
  }

  /** Stops the timer (the channel stays as it is). */
  stop(): void {
    this.#cancel?.();
    this.#cancel = null;
  }

  /** The `Heartbeat` property: NoContact until the first beat, LostCommunication after missed beats. */
  get heartbeat(): VMHeartbeatStatus {
    if (this.#lastBeatAt === null) return 'NoContact';
    if (this.#clock.now() - this.#lastBeatAt > this.#lostAfter * this.#intervalMs) return 'LostCommunication';
    if (this.#appState === HEARTBEAT_APPLICATION_STATE.HEALTHY) return 'OkApplicationsHealthy';
    if (this.#appState === HEARTBEAT_APPLICATION_STATE.CRITICAL) return 'OkApplicationsCritical';
    return 'OkApplicationsUnknown';
  }

  /** Integration-service status: the framework's, with the primary status taken from the beats. */
  get status(): IcStatus {
    const s = this.#ic.status;
    const hb = this.heartbeat;
    if (hb === 'NoContact')
      return { ...s, PrimaryOperationalStatus: 'NoContact', PrimaryStatusDescription: 'No Contact' };
    if (hb === 'LostCommunication') {
      return {
        ...s,
        PrimaryOperationalStatus: 'LostCommunication',
        PrimaryStatusDescription: 'Lost Communication',
      };
    }
    return { ...s, PrimaryOperationalStatus: 'Ok', PrimaryStatusDescription: 'OK' };
  }

  /** The last `seq_num` sent (0 before the first request). */
  get sequenceNumber(): bigint {
    return this.#seq;
  }

  onPacket(pkt: IncomingPacket): void {
    this.#ic.onPacket(pkt);
  }

  onClose(reason?: Error): void {
    this.#ic.onClose(reason);
  }

  #schedule(): void {
    this.#cancel = this.#clock.setTimer(this.#intervalMs, () => {
      this.#tick();
      if (this.#cancel) this.#schedule();
    });
  }

  #tick(): void {
    if (this.#ic.state !== 'ready') return;
    const seq = this.#seq + 1n;
    const sent = this.#ic.send((buf, off) =>
      encodeHeartbeatMsgData(
        { seq_num: seq, application_state: HEARTBEAT_APPLICATION_STATE.UNKNOWN },
        buf,
        off,
      ),
    );
    if (sent) this.#seq = seq;
  }

  #onBeat(m: IcMessage): void {
    const d = decodeHeartbeatMsgData(m.body);
    // Only `seq_num + 1` of the latest request counts: an echo of an older number proves nothing.
    if (this.#seq === 0n || d.seq_num !== this.#seq + 1n) return;
    this.#lastBeatAt = this.#clock.now();
    this.#appState = d.application_state;
  }
}
