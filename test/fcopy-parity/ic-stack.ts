/**
 * A uapi-backed IC without a VM around it, for the fcopy and VSS parity tests: host device ⇄ (in-memory
 * channel, asynchronous delivery) ⇄ guest driver ⇄ its `/dev/vmbus/hv_*` node (GuestUapiService) ⇄ uapi
 * socket bridge, where a daemon (ours standalone, or Debian's through hvshim) attaches.
 */
import { GuestUapiService, type UapiDriver } from '../../src/guest/uapi-service.ts';
import { HvError } from '../../src/protocol/errors.ts';
import type { ChannelHandler, ChannelIo } from '../../src/vmbus/channel-io.ts';

class AsyncEnd implements ChannelIo {
  readonly relid = 11;
  peer: ChannelHandler | null = null;
  self: ChannelHandler | null = null;
  other: AsyncEnd | null = null;
  closed = false;
  send(type: number, flags: number, transId: number, payload: Uint8Array): boolean {
    if (this.closed) throw new HvError('HV_ERR_CHANNEL_CLOSED', 'closed');
    const copy = payload.slice();
    setImmediate(() => {
      if (this.closed || !this.peer) return;
      try {
        this.peer.onPacket({ type, flags, transId, payload: copy, extHeader: new Uint8Array(0) });
      } catch (e) {
        this.close(e as Error);
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

export interface UapiIcStack<H, G extends UapiDriver> {
  host: H;
  service: GuestUapiService<G>;
  guest: G;
  close(): Promise<void>;
}

/** Builds the stack, starts the bridge on `socket` and the host's NEGOTIATE. */
export async function uapiIcStack<H extends ChannelHandler & { start(): void }, G extends UapiDriver>(o: {
  socket: string;
  path: string;
  host(ch: ChannelIo): H;
  guest(ch: ChannelIo, toDaemon: (m: Uint8Array) => boolean): G;
}): Promise<UapiIcStack<H, G>> {
  const h = new AsyncEnd();
  const g = new AsyncEnd();
  h.other = g;
  g.other = h;
  const service = new GuestUapiService<G>({
    path: o.path,
    driver: o.guest,
    daemon: null,
    bridgeSocket: o.socket,
  });
  await service.start();
  const guest = service.attach(g);
  const host = o.host(h);
  h.self = host;
  g.self = guest;
  h.peer = guest;
  g.peer = host;
  host.start();
  return {
    host,
    service,
    guest,
    close: async () => {
      h.close();
      await service.stop();
    },
  };
}

/** Polls `cond` every 20 ms. @throws Error naming `what` after `ms`. */
export async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
