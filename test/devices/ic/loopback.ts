/**
 * Test helpers: a manual clock and an in-memory channel pair that connects a host handler to a guest handler.
 * Packets are queued on send (payload copied) and delivered by `pump()`, so a reply never re-enters the
 * sender's `send`. A handler exception closes the receiving channel, as the VMBus layer does.
 */
import type { ChannelHandler, ChannelIo, Clock, IncomingPacket } from '../../../src/vmbus/channel-io.ts';

/** A clock that moves only when told; timers fire in due order during `advance`. */
export class ManualClock implements Clock {
  #now: number;
  #timers: { at: number; cb: () => void; id: number }[] = [];
  #next = 0;

  constructor(start = Date.UTC(2024, 0, 1)) {
    this.#now = start;
  }
  now(): number {
    return this.#now;
  }
  setTimer(ms: number, cb: () => void): () => void {
    const t = { at: this.#now + ms, cb, id: this.#next++ };
    this.#timers.push(t);
    return () => {
      this.#timers = this.#timers.filter((x) => x !== t);
    };
  }
  /** Moves time forward by `ms`, firing due timers in order; `between` runs after each timer (e.g. pump). */
  advance(ms: number, between?: () => void): void {
    const end = this.#now + ms;
    for (;;) {
      const due = this.#timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.#now = due.at;
      due.cb();
      between?.();
    }
    this.#now = end;
  }
}

export interface SentPacket {
  type: number;
  flags: number;
  transId: number;
  payload: Uint8Array;
}

/** One direction's end: records what its owner sent. */
class End implements ChannelIo {
  readonly relid = 7;
  readonly sent: SentPacket[] = [];
  closed: Error | undefined | null = null;
  handler: ChannelHandler | null = null;
  readonly #queue: (p: SentPacket) => void;
  readonly #onClose: (r?: Error) => void;
  constructor(queue: (p: SentPacket) => void, onClose: (r?: Error) => void) {
    this.#queue = queue;
    this.#onClose = onClose;
  }
  send(type: number, flags: number, transId: number, payload: Uint8Array): boolean {
    if (this.closed !== null) throw new Error('closed');
    const p = { type, flags, transId, payload: payload.slice() };
    this.sent.push(p);
    this.#queue(p);
    return true;
  }
  close(reason?: Error): void {
    if (this.closed !== null) return;
    this.closed = reason;
    this.#onClose(reason);
  }
}

export interface Loopback<H extends ChannelHandler, G extends ChannelHandler> {
  host: H;
  guest: G;
  hostCh: End;
  guestCh: End;
  /** Delivers queued packets both ways until none remain. */
  pump(): void;
  /** While false, packets to the guest are dropped (a hung or stopped guest). */
  guestAlive: boolean;
}

export function loopback<H extends ChannelHandler, G extends ChannelHandler>(
  makeHost: (ch: ChannelIo) => H,
  makeGuest: (ch: ChannelIo) => G,
): Loopback<H, G> {
  const toGuest: SentPacket[] = [];
  const toHost: SentPacket[] = [];
  // Closing either end tears down the channel for both devices, once.
  const closeBoth = (r?: Error) => {
    for (const e of [hostCh, guestCh]) {
      if (e.closed === null) e.closed = r;
    }
    hostCh.handler?.onClose?.(r);
    guestCh.handler?.onClose?.(r);
  };
  const hostCh: End = new End((p) => toGuest.push(p), closeBoth);
  const guestCh: End = new End((p) => toHost.push(p), closeBoth);
  const lb = {
    host: makeHost(hostCh),
    guest: makeGuest(guestCh),
    hostCh,
    guestCh,
    guestAlive: true,
    pump() {
      const deliver = (p: SentPacket, end: End) => {
        // The receiver gets its own copy (it may answer by editing it in place); `sent` keeps the original.
        const pkt: IncomingPacket = { ...p, payload: p.payload.slice(), extHeader: new Uint8Array(0) };
        try {
          end.handler?.onPacket(pkt);
        } catch (e) {
          end.close(e as Error);
        }
      };
      while (toGuest.length || toHost.length) {
        const g = toGuest.shift();
        if (g && lb.guestAlive && guestCh.closed === null) deliver(g, guestCh);
        const h = toHost.shift();
        if (h && hostCh.closed === null) deliver(h, hostCh);
      }
    },
  };
  hostCh.handler = lb.host;
  guestCh.handler = lb.guest;
  return lb;
}
