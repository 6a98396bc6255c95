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
import {
  type ChannelHandler,
  type ChannelIo,
  type Clock,
  systemClock,
} from '../../../src/vmbus/channel-io.ts';

class AsyncEnd implements ChannelIo {
  readonly relid = 9;
  peer: ChannelHandler | null = null;
  closed = false;
  other: AsyncEnd | null = null;
  self: ChannelHandler | null = null;
  send(type: number, flags: number, transId: number, payload: Uint8Array): boolean {
    if (this.closed) throw new HvError('HV_ERR_CHANNEL_CLOSED', 'closed');
    const copy = payload.slice();
    // A microtask, not a macrotask: delivery stays asynchronous (no re-entry into the sender) without an
    // event-loop turn per packet, which the in-process bench would otherwise measure.
    queueMicrotask(() => {
      if (this.closed || !this.peer) return;
      try {
        this.peer.onPacket({ type, flags, transId, payload: copy, extHeader: new Uint8Array(0) });
      } catch (e) {
        this.other?.close(e as Error);
      }
    });
    return true;
  }
  close(reason?: Error): void {
    for (const e of [this, this.other!]) {
      if (e.closed) continue;
      e.closed = true;
      e.self?.onClose?.(reason);
    }
  }
}

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
  const h = new AsyncEnd();
  const g = new AsyncEnd();
  h.other = g;
  g.other = h;
  let guest: KvpGuest | null = null;
  const node = new UapiDevNode('/dev/vmbus/hv_kvp', {
    onWrite: (m) => guest!.onDaemonMessage(m),
    onRelease: () => guest!.onDaemonRelease(),
  });
  guest = new KvpGuest(g, { clock, toDaemon: (m) => node.send(m) });
  let ready: () => void = () => {};
  const negotiated = new Promise<void>((r) => {
    ready = r;
  });
  const host = new KvpHost(h, { clock, offer: hostKvpOffer('WS2025'), onReady: () => ready() });
  h.self = host;
  g.self = guest;
  h.peer = guest;
  g.peer = host;
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
