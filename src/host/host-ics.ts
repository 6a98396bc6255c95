/**
 * The host halves of the implemented integration services, behind one small interface the session uses:
 * start after the channel opens, stop when it goes, Get-VMIntegrationService status, plus the extras of
 * heartbeat (Get-VM `Heartbeat`) and shutdown (Stop-VM).
 */

import { FcopyHost, hostFcopyOffer } from '../devices/fcopy/host.ts';
import { HeartbeatHost } from '../devices/heartbeat/host.ts';
import { type IcStatus as DeviceIcStatus, hostIcOffer } from '../devices/ic/host.ts';
import { ShutdownHost } from '../devices/shutdown/host.ts';
import { TimesyncHost } from '../devices/timesync/host.ts';
import { hostVssOffer, VssHost } from '../devices/vss/host.ts';
import { HvError } from '../protocol/errors.ts';
import type { ChannelHandler, ChannelIo, Clock } from '../vmbus/channel-io.ts';
import type { HostProfileName } from '../vmbus/host-profiles.ts';
import type { IntegrationServiceName } from './integration-services.ts';
import type { KvpExchange } from './kvp-exchange.ts';
import { kvpHostIc } from './kvp-host-ic.ts';
import type { IcStatus } from './vm-session-types.ts';
import type { HeartbeatStatus } from './vm-view.ts';

export interface HostIc {
  handler: ChannelHandler;
  /** Sends NEGOTIATE (and starts timers). */
  start(): void;
  /** Stops timers; the channel itself is closed by VMBus. */
  stop(): void;
  status(): IcStatus;
  heartbeat?(): HeartbeatStatus;
  /** Asks the guest to power off; resolves when it answered HV_S_OK. */
  requestShutdown?(): Promise<void>;
  /** Records the guest clock offset the guest reported (time sync). */
  noteGuestOffset?(ms: number): void;
  /** The file copy device (Guest Service Interface). */
  fcopy?: FcopyHost;
  /** The VSS device (backup requests). */
  vss?: VssHost;
}

export interface HostIcContext {
  clock: Clock;
  profile: HostProfileName;
  /** The VM's partition reference counter now, 100-ns ticks since it started. */
  referenceTime(): bigint;
  /** The VM's KVP exchange (outlives channels), for the Key-Value Pair Exchange service. */
  kvp?: KvpExchange;
}

function toStatus(s: DeviceIcStatus): IcStatus {
  return {
    primary: s.PrimaryStatusDescription,
    secondary: s.SecondaryStatusDescription,
    version: s.messageVersion,
  };
}

export const hostIcFactories: Partial<
  Record<IntegrationServiceName, (ch: ChannelIo, ctx: HostIcContext) => HostIc>
> = {
  Heartbeat: (ch, ctx) => {
    const d = new HeartbeatHost(ch, { clock: ctx.clock, offer: hostIcOffer(ctx.profile, 'heartbeat') });
    return {
      handler: d,
      start: () => d.start(),
      stop: () => d.stop(),
      status: () => toStatus(d.status),
      heartbeat: () => d.heartbeat,
    };
  },
  Shutdown: (ch, ctx) => {
    const d = new ShutdownHost(ch, { clock: ctx.clock, offer: hostIcOffer(ctx.profile, 'shutdown') });
    return {
      handler: d,
      start: () => d.start(),
      stop: () => {},
      status: () => toStatus(d.status),
      requestShutdown: async () => {
        try {
          await d.requestShutdown({ message: 'hvis: Stop-VM' });
        } catch (err) {
          // A guest that answered and unloaded at once can close the channel before its reply is read;
          // the caller then waits for the guest to power off as usual.
          if (!(err instanceof HvError && err.code === 'HV_ERR_CHANNEL_CLOSED')) throw err;
        }
      },
    };
  },
  'Key-Value Pair Exchange': kvpHostIc,
  'Guest Service Interface': (ch, ctx) => {
    const d = new FcopyHost(ch, { clock: ctx.clock, offer: hostFcopyOffer(ctx.profile) });
    return { handler: d, start: () => d.start(), stop: () => {}, status: () => toStatus(d.status), fcopy: d };
  },
  VSS: (ch, ctx) => {
    const d = new VssHost(ch, { clock: ctx.clock, offer: hostVssOffer(ctx.profile) });
    return { handler: d, start: () => d.start(), stop: () => {}, status: () => toStatus(d.status), vss: d };
  },
  'Time Synchronization': (ch, ctx) => {
    const d = new TimesyncHost(ch, {
      clock: ctx.clock,
      referenceTime: ctx.referenceTime,
      offer: hostIcOffer(ctx.profile, 'timesync'),
    });
    return {
      handler: d,
      start: () => d.start(),
      stop: () => d.stop(),
      status: () => toStatus(d.status),
      noteGuestOffset: (ms) => d.noteGuestOffset(ms),
    };
  },
};
