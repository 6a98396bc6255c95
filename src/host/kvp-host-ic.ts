/**
 * The KVP service as the VM session runs it: the channel's {@link KvpHost} bound to the VM's long-lived
 * {@link KvpExchange}. Status: the negotiation status, turned to "Lost Communication" with the reason
 * while the guest's KVP daemon does not answer (absent, dead mid-transaction, timing out); it returns to
 * "OK" with the next answered request.
 */
import { hostKvpOffer, KvpHost } from '../devices/kvp/host.ts';
import type { ChannelIo, Clock } from '../vmbus/channel-io.ts';
import type { HostProfileName } from '../vmbus/host-profiles.ts';
import type { HostIc } from './host-ics.ts';
import type { KvpExchange } from './kvp-exchange.ts';

export function kvpHostIc(
  ch: ChannelIo,
  ctx: { clock: Clock; profile: HostProfileName; kvp?: KvpExchange },
): HostIc {
  const ex = ctx.kvp;
  const d = new KvpHost(ch, {
    clock: ctx.clock,
    offer: hostKvpOffer(ctx.profile),
    onReady: () => ex?.onReady(),
  });
  ex?.attach(d);
  return {
    handler: d,
    start: () => d.start(),
    stop: () => ex?.stop(),
    status: () => {
      const s = d.status;
      const fault = s.PrimaryStatusDescription === 'OK' ? (ex?.fault ?? null) : null;
      return {
        primary: fault ? 'Lost Communication' : s.PrimaryStatusDescription,
        secondary: fault ?? s.SecondaryStatusDescription,
        version: s.messageVersion,
      };
    },
  };
}
