/**
 * Shared test fixtures for the VMBus control-plane tests: an echo device (host side echoes every inband
 * packet back) and a guest driver that records what it receives.
 */

import type { MessagePort } from 'node:worker_threads';
import { Guid } from '../../src/protocol/guid.ts';
import { VM_PKT_DATA_INBAND } from '../../src/protocol/vmbus/packet.ts';
import type { ChannelHandler, ChannelIo, IncomingPacket } from '../../src/vmbus/channel-io.ts';
import type { GuestOffer, VmbusDriver } from '../../src/vmbus/client.ts';
import type { OpenInfo } from '../../src/vmbus/server.ts';
import type { DoorbellPort } from '../../src/vmbus/synic-shared.ts';

export { VM_PKT_DATA_INBAND } from '../../src/protocol/vmbus/packet.ts';

export const ECHO_CLASS = Guid.parse('6d7b3c3e-0d62-4b1c-9a8d-8b7a0b1e0e01');
export const ECHO_INSTANCE = Guid.parse('1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f0');

/** Host device: echoes each packet's payload with the same transaction id. */
export function echoDevice(log?: { opened: OpenInfo[]; closed: (Error | undefined)[] }) {
  return (ch: ChannelIo, info: OpenInfo): ChannelHandler => {
    log?.opened.push(info);
    return {
      onPacket(p: IncomingPacket) {
        ch.send(VM_PKT_DATA_INBAND, 0, p.transId, p.payload.slice());
      },
      onClose(reason) {
        log?.closed.push(reason);
      },
    };
  };
}

/** Guest driver recording received packets and its lifecycle. */
export class RecordingDriver implements VmbusDriver {
  readonly name: string;
  readonly sendRingBytes: number;
  readonly recvRingBytes: number;
  readonly received: { relid: number; transId: number; payload: Uint8Array }[] = [];
  readonly attached: GuestOffer[] = [];
  readonly detached: { offer: GuestOffer; reason: Error | undefined }[] = [];
  readonly io = new Map<number, ChannelIo>();

  constructor(name = 'echo', ringBytes = 16384) {
    this.name = name;
    this.sendRingBytes = ringBytes;
    this.recvRingBytes = ringBytes;
  }

  attach(offer: GuestOffer, ch: ChannelIo): ChannelHandler {
    this.attached.push(offer);
    this.io.set(offer.relid, ch);
    return {
      onPacket: (p) => {
        this.received.push({ relid: offer.relid, transId: p.transId, payload: p.payload.slice() });
      },
    };
  }

  detach(offer: GuestOffer, reason?: Error): void {
    this.io.delete(offer.relid);
    this.detached.push({ offer, reason });
  }
}

/** A doorbell over `port` that counts the messages it posts (`rings`): each one is a wake-up the SynIC paid for. */
export function counting(port: MessagePort): DoorbellPort & { rings: number } {
  const d = {
    rings: 0,
    postMessage(v: unknown) {
      d.rings++;
      port.postMessage(v);
    },
    on: (e: 'message', l: (v: unknown) => void) => port.on(e, l),
    off: (e: 'message', l: (v: unknown) => void) => port.off(e, l),
  };
  return d;
}
