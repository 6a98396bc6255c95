/**
 * The whole KVP path without a VM around it, for tests and bench/kvp: host KvpHost ⇄ (in-memory channel,
 * asynchronous delivery in a microtask) ⇄ guest KvpGuest driver ⇄ /dev/vmbus/hv_kvp device node ⇄ uapi socket bridge, where
 * a daemon (ours or Debian's through hvshim) attaches.
 */
import { UapiSocketBridge } from '../../../src/bridges/uapi/server.ts';
import { KvpGuest } from '../../../src/devices/kvp/guest.ts';
import { hostKvpOffer, KvpHost } from '../../../src/devices/kvp/host.ts';
import { UapiDevNode } from '../../../src/guest/devnode.ts';
import { HvError } from '../../../src/protocol/errors.ts';
import { type Clock, systemClock } from '../../../src/vmbus/channel-io.ts';
import { asyncChannelPair } from '../../fixtures/async-channel.ts';

export interface KvpStack {
  host: KvpHost;
  guest: KvpGuest;
  node: UapiDevNode;
  bridge: UapiSocketBridge;
  /** Resolves once a daemon has registered with the driver. */
  daemonRegistered(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function kvpStack(socket: string, clock: Clock = systemClock): Promise<KvpStack> {
  const pair = asyncChannelPair(9);
  const h = pair.host;
  const g = pair.guest;
  let guest: KvpGuest | null = null;
  const node = new UapiDevNode('/dev/vmbus/hv_kvp', {
    onWrite: (m) => guest!.onDaemonMessage(m),
    onRelease: () => guest!.onDaemonRelease(),
  });
  // Negotiate without waiting for a daemon (HV_UTIL_NEGO_TIMEOUT 0), so callers see a missing one as HV_E_FAIL.
  guest = new KvpGuest(g, { clock, toDaemon: (m) => node.send(m), negoTimeoutMs: 0 });
  let ready: () => void = () => {};
  const negotiated = new Promise<void>((r) => {
    ready = r;
  });
  const host = new KvpHost(h, { clock, offer: hostKvpOffer('WS2025'), onReady: () => ready() });
  pair.connect(host, guest);
  const bridge = await UapiSocketBridge.listen(socket, (p) => {
    if (p !== node.path) throw new HvError('HV_ERR_NOT_FOUND', `no device ${p}`);
    return node.open();
  });
  host.start();
  await negotiated;
  const g2 = guest;
  return {
    host,
    guest: g2,
    node,
    bridge,
    async daemonRegistered(timeoutMs = 15_000) {
      const until = Date.now() + timeoutMs;
      while (g2.daemonState === 'absent') {
        if (Date.now() > until) throw new Error('no KVP daemon registered in time');
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async close() {
      await bridge.close();
      h.close();
    },
  };
}
