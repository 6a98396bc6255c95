/**
 * Cross-thread SynIC transport: host (main thread) and guest (worker) share one SharedArrayBuffer holding,
 * per direction, a queue of 256-byte `struct hv_message` slots and a 2048-bit event-flag page, plus a
 * MessagePort "doorbell".
 *
 * Wake-up design (ecosystem.md §2.22): a blocking `Atomics.wait` would stall the host's event loop and
 * `Atomics.waitAsync` does not keep a loop alive, so the interrupt is a MessagePort message — but only when
 * the receiver has said it is idle. Each direction has an `idle` word: the receiver, after draining, stores
 * idle = 1 and re-checks for work (so a sender that saw idle = 0 cannot be missed); a sender that publishes
 * data does `compareExchange(idle, 1, 0)` and posts one doorbell message only if it won that exchange.
 * While a receiver is busy, any number of messages and events cost no postMessage at all. Both event loops
 * stay alive through their port listeners; `close()` removes them.
 *
 * A request/reply stream that cannot afford a doorbell per message busy-polls its ring instead
 * (ring-channel.ts): the reader keeps interrupt_mask set, so the sender raises no event at all.
 *
 * Memory ordering: slot bytes are written with plain stores, then the tail index is published with
 * `Atomics.store`; the consumer `Atomics.load`s the tail before reading slots. Event bits use `Atomics.or`
 * and are collected with `Atomics.exchange(word, 0)`. Each queue has one producer thread and one consumer.
 *
 * Layout (Int32 words, then bytes):
 *   words [d*16 + 0] head, [+1] tail, [+2] receiver idle (0 busy, 1 idle: post), [+3] sender refused (queue was full),
 *         [+4] slot freed (tell the sender to retry) — for d = 0 (to host) and 1 (to guest);
 *   word 32: host's listening connection-id mask (ids 0..31);
 *   bytes 256..511 event flags to host, 512..767 event flags to guest;
 *   bytes 1024.. slots to host (slots × 256), then slots to guest.
 */

import { HvError } from '../protocol/errors.ts';
import {
  HV_MESSAGE_HEADER_SIZE,
  HV_MESSAGE_PAYLOAD_BYTE_COUNT,
  HV_MESSAGE_SIZE,
  HV_STATUS_INSUFFICIENT_BUFFERS,
  HV_STATUS_INVALID_CONNECTION_ID,
  HV_STATUS_SUCCESS,
  VMBUS_MESSAGE_TYPE,
} from '../protocol/vmbus/constants.ts';
import { connectionIdMask, SYNIC_DEFAULT_QUEUE_SLOTS, type SynicHandler, type SynicPort } from './synic.ts';

/** The part of a MessagePort (Node worker_threads or web) the doorbell uses. */
export interface DoorbellPort {
  postMessage(value: unknown): void;
  on(event: 'message', listener: (value: unknown) => void): unknown;
  off(event: 'message', listener: (value: unknown) => void): unknown;
}

const HEAD = 0;
const TAIL = 1;
const IDLE = 2;
const REFUSED = 3;
const SLOT_FREED = 4;
const CONN_MASK_WORD = 32;
const EVENTS_OFFSET = 256;
const EVENT_WORDS = 64;
const SLOTS_OFFSET = 1024;
const BUSY = 0;
const IDLE_POST = 1;

/** Bytes of the SharedArrayBuffer for `slots` message slots per direction. */
export function sharedSynicBytes(slots = SYNIC_DEFAULT_QUEUE_SLOTS): number {
  return SLOTS_OFFSET + 2 * slots * HV_MESSAGE_SIZE;
}

/** Creates and initializes the SAB both sides wrap (receivers start idle so the first post rings). */
export function createSharedSynicBuffer(slots = SYNIC_DEFAULT_QUEUE_SLOTS): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(sharedSynicBytes(slots));
  const w = new Int32Array(sab);
  w[IDLE] = 1;
  w[16 + IDLE] = 1;
  return sab;
}

/**
 * One side of the shared SynIC. The host wraps the SAB with side `'host'` and its end of a MessageChannel;
 * the guest worker wraps the same SAB with `'guest'` and the other end.
 */
export class SharedSynicPort implements SynicPort {
  readonly peerRunsConcurrently = true;
  readonly #w: Int32Array;
  readonly #bytes: Uint8Array;
  readonly #dv: DataView;
  readonly #port: DoorbellPort;
  readonly #slots: number;
  /** Word base of the direction this side receives / sends. */
  readonly #rx: number;
  readonly #tx: number;
  readonly #rxSlots: number;
  readonly #txSlots: number;
  readonly #rxEvents: number;
  readonly #txEvents: number;
  readonly #isHost: boolean;
  readonly #listener = () => this.drain();
  #handler: SynicHandler | null = null;
  #draining = false;
  #closed = false;
  readonly #scratch = new Uint8Array(HV_MESSAGE_PAYLOAD_BYTE_COUNT);

  /**
   * @throws HvError HV_ERR_INVALID_ARGUMENT when the SAB is not a shared-SynIC buffer.
   */
  constructor(sab: SharedArrayBuffer, side: 'host' | 'guest', port: DoorbellPort) {
    const slots = (sab.byteLength - SLOTS_OFFSET) / (2 * HV_MESSAGE_SIZE);
    if (!Number.isInteger(slots) || slots < 1) {
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `SynIC buffer of ${sab.byteLength} bytes: expected 1024 + 512 × slots`,
      );
    }
    this.#w = new Int32Array(sab);
    this.#bytes = new Uint8Array(sab);
    this.#dv = new DataView(sab);
    this.#port = port;
    this.#slots = slots;
    this.#isHost = side === 'host';
    const rxDir = this.#isHost ? 0 : 1;
    this.#rx = rxDir * 16;
    this.#tx = (1 - rxDir) * 16;
    this.#rxSlots = SLOTS_OFFSET + rxDir * slots * HV_MESSAGE_SIZE;
    this.#txSlots = SLOTS_OFFSET + (1 - rxDir) * slots * HV_MESSAGE_SIZE;
    this.#rxEvents = (EVENTS_OFFSET + rxDir * 256) / 4;
    this.#txEvents = (EVENTS_OFFSET + (1 - rxDir) * 256) / 4;
    port.on('message', this.#listener);
  }

  listen(handler: SynicHandler): void {
    this.#handler = handler;
    this.drain();
  }

  setConnectionIds(ids: readonly number[]): void {
    Atomics.store(this.#w, CONN_MASK_WORD, connectionIdMask(ids));
  }

  postMessage(connectionId: number, payload: Uint8Array): number {
    if (payload.length > HV_MESSAGE_PAYLOAD_BYTE_COUNT)
      throw new RangeError('SynIC message payload exceeds 240 bytes');
    const w = this.#w;
    if (!this.#isHost) {
      const mask = Atomics.load(w, CONN_MASK_WORD);
      if (connectionId < 0 || connectionId > 31 || (mask & (1 << connectionId)) === 0) {
        return HV_STATUS_INVALID_CONNECTION_ID;
      }
    }
    const t = this.#tx;
    const tail = Atomics.load(w, t + TAIL);
    if (tail - Atomics.load(w, t + HEAD) >= this.#slots) {
      Atomics.store(w, t + REFUSED, 1);
      // Re-check after announcing, so a consumer that just freed a slot is not missed.
      if (tail - Atomics.load(w, t + HEAD) >= this.#slots) return HV_STATUS_INSUFFICIENT_BUFFERS;
      Atomics.store(w, t + REFUSED, 0);
    }
    const at = this.#txSlots + (tail % this.#slots) * HV_MESSAGE_SIZE;
    const dv = this.#dv;
    dv.setUint32(at, VMBUS_MESSAGE_TYPE, true);
    this.#bytes[at + 4] = payload.length;
    this.#bytes[at + 5] = 0;
    dv.setUint32(at + 8, connectionId >>> 0, true);
    dv.setUint32(at + 12, 0, true);
    this.#bytes.set(payload, at + HV_MESSAGE_HEADER_SIZE);
    Atomics.store(w, t + TAIL, (tail + 1) | 0);
    this.#ring(t);
    return HV_STATUS_SUCCESS;
  }

  signalEvent(index: number): void {
    const bit = index & 2047;
    Atomics.or(this.#w, this.#txEvents + (bit >>> 5), 1 << (bit & 31));
    this.#ring(this.#tx);
  }

  /**
   * Delivers everything pending to the handler, then goes idle, re-checking so nothing is lost. Runs on each doorbell; callers may also call it to poll.
   */
  drain(): void {
    if (this.#draining || this.#closed || this.#handler === null) return;
    this.#draining = true;
    try {
      while (this.#drainOnce());
      this.#idle();
    } finally {
      this.#draining = false;
    }
  }

  /** Stores idle = 1 unless work arrived meanwhile (then drains it, taking the wake-up ourselves). */
  #idle(): void {
    const w = this.#w;
    const word = this.#rx + IDLE;
    for (;;) {
      Atomics.store(w, word, IDLE_POST);
      if (!this.#hasWork()) return;
      // Work arrived after the last drain: take the wake-up ourselves unless a sender already rang.
      if (Atomics.compareExchange(w, word, IDLE_POST, BUSY) !== IDLE_POST) return;
      while (this.#drainOnce());
    }
  }

  /** Stops listening on the doorbell port (the port itself belongs to the caller). */
  close(): void {
    this.#closed = true;
    this.#port.off('message', this.#listener);
  }

  #drainOnce(): boolean {
    const w = this.#w;
    const rx = this.#rx;
    const h = this.#handler!;
    let worked = false;
    let head = Atomics.load(w, rx + HEAD);
    const tail = Atomics.load(w, rx + TAIL);
    while (head !== tail) {
      const at = this.#rxSlots + (head % this.#slots) * HV_MESSAGE_SIZE;
      const type = this.#dv.getUint32(at, true);
      const size = Math.min(this.#bytes[at + 4]!, HV_MESSAGE_PAYLOAD_BYTE_COUNT);
      const conn = this.#dv.getUint32(at + 8, true);
      const payload = this.#scratch.subarray(0, size);
      payload.set(this.#bytes.subarray(at + HV_MESSAGE_HEADER_SIZE, at + HV_MESSAGE_HEADER_SIZE + size));
      head = (head + 1) | 0;
      Atomics.store(w, rx + HEAD, head);
      worked = true;
      if (Atomics.compareExchange(w, rx + REFUSED, 1, 0) === 1) {
        Atomics.store(w, rx + SLOT_FREED, 1);
        this.#ring(rx === 0 ? 16 : 0);
      }
      if (type === VMBUS_MESSAGE_TYPE) safe(() => h.onMessage(conn, payload));
    }
    for (let i = 0; i < EVENT_WORDS; i++) {
      if (Atomics.load(w, this.#rxEvents + i) === 0) continue;
      let bits = Atomics.exchange(w, this.#rxEvents + i, 0);
      worked = true;
      while (bits !== 0) {
        const b = 31 - Math.clz32(bits & -bits);
        bits &= bits - 1;
        safe(() => h.onEvent(i * 32 + b));
      }
    }
    // Our own sends were refused earlier and the peer has freed a slot.
    if (Atomics.load(w, this.#tx + SLOT_FREED) !== 0 && Atomics.exchange(w, this.#tx + SLOT_FREED, 0) === 1) {
      worked = true;
      safe(() => h.onSlotFree?.());
    }
    return worked;
  }

  #hasWork(): boolean {
    const w = this.#w;
    if (Atomics.load(w, this.#rx + HEAD) !== Atomics.load(w, this.#rx + TAIL)) return true;
    if (Atomics.load(w, this.#tx + SLOT_FREED) !== 0) return true;
    for (let i = 0; i < EVENT_WORDS; i++) if (Atomics.load(w, this.#rxEvents + i) !== 0) return true;
    return false;
  }

  /** Wakes the receiver of direction `dir` with a doorbell message if it is idle. */
  #ring(dir: number): void {
    if (Atomics.compareExchange(this.#w, dir + IDLE, IDLE_POST, BUSY) === IDLE_POST)
      this.#port.postMessage(0);
  }
}

function safe(f: () => void): void {
  try {
    f();
  } catch {
    // Handler bugs stay on their side; server and client catch and count their own errors.
  }
}
