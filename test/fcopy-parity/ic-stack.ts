/**
 * A uapi-backed IC without a VM around it, for the fcopy and VSS parity tests: host device ⇄ (in-memory
 * channel, asynchronous delivery) ⇄ guest driver ⇄ its `/dev/vmbus/hv_*` node (GuestUapiService) ⇄ uapi
 * socket bridge, where a daemon (ours standalone, or Debian's through hvshim) attaches.
 */
import { GuestUapiService, type UapiDriver } from '../../src/guest/uapi-service.ts';
import type { ChannelHandler, ChannelIo } from '../../src/vmbus/channel-io.ts';
import { asyncChannelPair } from '../fixtures/async-channel.ts';

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
  const pair = asyncChannelPair(11, (f) => setImmediate(f));
  const h = pair.host;
  const g = pair.guest;
  const service = new GuestUapiService<G>({
    path: o.path,
    driver: o.guest,
    daemon: null,
    bridgeSocket: o.socket,
  });
  await service.start();
  const guest = service.attach(g);
  const host = o.host(h);
  pair.connect(host, guest);
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
