/**
 * Full-ring fixtures shared by ring-full.test.ts and its worker: packets of 4000..11992 bytes through rings
 * with 12288 data bytes (16 KiB with the control page), so one or two fit at a time and nearly every send
 * meets a full ring. The guest sends request i (every third one floodSize(i) bytes, the others 64, so the
 * host can be asked for more than the guest's ring holds), the host replies with packet i (floodSize(i)
 * bytes, each byte (i + k) & 0xff), the guest checks order, length and bytes. Both sides keep a FIFO of what the ring refused and
 * send it from `onWritable`; an `onWritable` whose head packet still does not fit is counted as spurious.
 */

import { VM_PKT_DATA_INBAND } from '../../src/protocol/vmbus/packet.ts';
import type { ChannelHandler, ChannelIo, IncomingPacket } from '../../src/vmbus/channel-io.ts';

/** Ring size of both directions, control page included. */
export const FLOOD_RING_BYTES = 16384;

/** Payload bytes of packet `i`: a multiple of 8 in 4000..11992 (the ring's data area is 12288 bytes). */
export function floodSize(i: number): number {
  return 8 * (500 + ((i * 7919) % 1000));
}

/** Request bytes of packet `i`. */
export function floodRequestSize(i: number): number {
  return i % 3 === 0 ? floodSize(i) : 64;
}

export function floodPayload(i: number, size = floodSize(i)): Uint8Array {
  const p = new Uint8Array(size);
  for (let k = 0; k < p.length; k++) p[k] = (i + k) & 0xff;
  return p;
}

/** Sends in order; what the ring refuses waits in a FIFO for `onWritable`. */
export class Backlog {
  readonly #ch: ChannelIo;
  readonly #queue: { transId: number; payload: Uint8Array }[] = [];
  readonly #source: (() => { transId: number; payload: Uint8Array } | null) | undefined;
  /** onWritable calls. */
  writable = 0;
  /** onWritable calls whose head packet still did not fit (there was no room). */
  spurious = 0;
  /** Sends the ring refused. */
  refused = 0;

  /** `source` supplies further packets (null when done) once the FIFO is empty. */
  constructor(ch: ChannelIo, source?: () => { transId: number; payload: Uint8Array } | null) {
    this.#ch = ch;
    this.#source = source;
  }

  /** Starts sending what `source` supplies. */
  start(): void {
    this.#flush();
  }

  get length(): number {
    return this.#queue.length;
  }

  push(transId: number, payload: Uint8Array): void {
    this.#queue.push({ transId, payload });
    if (this.#queue.length === 1) this.#flush();
  }

  onWritable(): void {
    this.writable++;
    if (this.#queue.length > 0 && !this.#flush()) this.spurious++;
  }

  /** @returns false when the head packet did not fit. */
  #flush(): boolean {
    let first = true;
    for (;;) {
      if (this.#queue.length === 0) {
        const next = this.#source?.() ?? null;
        if (next === null) return true;
        this.#queue.push(next);
      }
      const p = this.#queue[0]!;
      if (!this.#ch.send(VM_PKT_DATA_INBAND, 0, p.transId, p.payload)) {
        this.refused++;
        return !first;
      }
      first = false;
      this.#queue.shift();
    }
  }
}

/** Host device: answers request i with packet i (same trans_id), through a {@link Backlog}. */
export function floodEchoDevice(onBacklog: (b: Backlog) => void, slow?: (i: number) => void) {
  return (ch: ChannelIo): ChannelHandler => {
    const b = new Backlog(ch);
    onBacklog(b);
    let n = 0;
    return {
      onPacket(p: IncomingPacket) {
        slow?.(n++);
        b.push(p.transId, floodPayload(p.transId));
      },
      onWritable: () => b.onWritable(),
    };
  };
}

/**
 * Guest side: sends `total` packets through a {@link Backlog} (from attach on) and checks each echo.
 * `error` holds the first mismatch.
 */
export class FloodGuest {
  readonly total: number;
  received = 0;
  error: string | null = null;
  backlog: Backlog | null = null;
  readonly #slow: ((i: number) => void) | undefined;

  constructor(total: number, slow?: (i: number) => void) {
    this.total = total;
    this.#slow = slow;
  }

  attach(ch: ChannelIo): ChannelHandler {
    let next = 0;
    const b = new Backlog(ch, () =>
      next < this.total ? { transId: next, payload: floodPayload(next, floodRequestSize(next++)) } : null,
    );
    this.backlog = b;
    b.start();
    return {
      onPacket: (p) => this.#check(p),
      onWritable: () => b.onWritable(),
    };
  }

  #check(p: IncomingPacket): void {
    const i = this.received;
    this.#slow?.(i);
    if (this.error !== null) return;
    const len = floodSize(i);
    const pl = p.payload;
    if (p.transId !== i) this.error = `echo ${i}: got trans_id ${p.transId}`;
    else if (pl.length !== len) this.error = `echo ${i}: ${pl.length} bytes, sent ${len}`;
    else {
      for (let k = 0; k < len; k++) {
        if (pl[k] !== ((i + k) & 0xff)) {
          this.error = `echo ${i}: byte ${k} differs`;
          break;
        }
      }
    }
    this.received++;
  }
}

/** Burns about `us` microseconds of CPU (a peer that is slow to read its ring). */
export function busy(us: number): void {
  const until = performance.now() + us / 1000;
  while (performance.now() < until) {
    // spin
  }
}

/** Bytes of packet `i` in the one-outstanding pattern: 6240..11832, so two never fit in 12288 bytes. */
export function pingSize(i: number): number {
  return 8 * (780 + ((i * 7919) % 700));
}

/**
 * Host device in the file-copy pattern: one request outstanding; request i + 1 is sent from inside the
 * handler of reply i (before the host has published its read index), as the fcopy host does. Both are
 * {@link pingSize} bytes, so a send often finds the ring full and, with nothing else in flight, only the
 * peer's pending_send_sz signal can wake it. `state.replies` counts good replies; `state.error` the first bad one.
 */
export function pingHostDevice(
  total: number,
  state: { replies: number; error: string | null; backlog: Backlog | null },
) {
  return (ch: ChannelIo): ChannelHandler => {
    const b = new Backlog(ch);
    state.backlog = b;
    queueMicrotask(() => b.push(0, floodPayload(0, pingSize(0))));
    return {
      onPacket(p: IncomingPacket) {
        const i = state.replies;
        if (p.transId !== i || p.payload.length !== pingSize(i) || p.payload[7] !== ((i + 7) & 0xff)) {
          state.error ??= `reply ${i}: trans_id ${p.transId}, ${p.payload.length} bytes`;
          return;
        }
        state.replies++;
        if (i + 1 < total) b.push(i + 1, floodPayload(i + 1, pingSize(i + 1)));
      },
      onWritable: () => b.onWritable(),
    };
  };
}

/** Guest driver of the same pattern: answers request i at once with packet i. */
export function pingGuestHandler(ch: ChannelIo, onBacklog: (b: Backlog) => void): ChannelHandler {
  const b = new Backlog(ch);
  onBacklog(b);
  return {
    onPacket: (p) => b.push(p.transId, floodPayload(p.transId, pingSize(p.transId))),
    onWritable: () => b.onWritable(),
  };
}
