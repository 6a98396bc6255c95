/**
 * One open channel's data path, the same on both ends: a RingWriter on the outgoing ring, a RingReader on
 * the incoming one, and the signalling rules of vmbus-core-ics.md §2.3 (Linux ring_buffer.c). Implements
 * the device-facing {@link ChannelIo}.
 *
 * Interrupt handling drains the incoming ring in one batch with interrupt_mask = 1 (Linux hv_begin_read),
 * publishes the read index once (hv_pkt_iter_close) and signals the writer only if its pending_send_sz was
 * crossed, then unmasks and re-checks (hv_end_read) so no packet is left behind. A send that finds the ring
 * full sets pending_send_sz, re-checks the free space (lost-wakeup avoidance), and the device's `onWritable`
 * fires once, from the interrupt the peer raises when free space crosses pending_send_sz, and only when the
 * refused packet fits; pending_send_sz is cleared then (OpenVMM outgoing ring, Linux hv_sock/netvsc).
 * A ProtocolError from the ring or an exception from the device closes this channel only.
 *
 * Busy-polling ({@link RingChannel.busyPoll}) keeps interrupt_mask = 1 after a drain and watches
 * write_index for a short window, so a request/reply stream between two threads runs with almost no
 * interrupts (a cross-thread wake-up costs 25-55 µs here; a handoff through shared memory while both poll,
 * well under 1 µs). If this drain sent something, the peer is working on it and the channel spins right
 * away; if not, our own answer may still be coming (a promise), so the poll runs after this turn of the
 * event loop (setImmediate). It stays bounded: one drain spins at most {@link BUSY_POLL_DRAIN_CAP_MS} before
 * yielding to the event loop (and polling again after it, as NAPI re-schedules its poll), and after
 * {@link BUSY_POLL_MISSES} empty windows in a row it rests for a number of drains that doubles while the
 * peer stays slow (a daemon behind a socket is not worth a spinning CPU).
 */
import { HvError } from '../protocol/errors.ts';
import type { ChannelHandler, ChannelIo } from './channel-io.ts';
import { PacketView, RING_WRITE_FULL, RING_WRITE_SIGNAL, RingReader, RingWriter } from './ring.ts';

/** Longest a single drain of one channel may busy-poll before it returns to the event loop, ms. */
export const BUSY_POLL_DRAIN_CAP_MS = 2;
/** Empty spin windows in a row after which busy-polling rests. */
export const BUSY_POLL_MISSES = 3;
/**
 * Drains without spinning after {@link BUSY_POLL_MISSES} empty windows: the first rest is this long, each
 * further one without a packet caught in between twice as long, up to {@link BUSY_POLL_REST_MAX}.
 */
export const BUSY_POLL_REST = 2;
export const BUSY_POLL_REST_MAX = 64;

const SPIN_IDLE = 0;
const SPIN_MORE = 1;
const SPIN_CAPPED = 2;

/** Counters of one channel. */
export interface RingChannelStats {
  packetsIn: number;
  packetsOut: number;
  /** Signals this side sent to the peer (ring rules suppress most). */
  signalsOut: number;
  /** Interrupts this side handled. */
  interrupts: number;
  /** Sends refused because the ring was full. */
  ringFull: number;
}

export class RingChannel implements ChannelIo {
  readonly relid: number;
  readonly stats: RingChannelStats = {
    packetsIn: 0,
    packetsOut: 0,
    signalsOut: 0,
    interrupts: 0,
    ringFull: 0,
  };
  readonly #writer: RingWriter;
  readonly #reader: RingReader;
  readonly #signal: () => void;
  readonly #onClosed: (reason: Error | undefined) => void;
  readonly #pkt = new PacketView();
  /** `send`'s one-part list, reused. */
  readonly #one: Uint8Array[] = [new Uint8Array(0)];
  #handler: ChannelHandler | null = null;
  #closed = false;
  #held = true;
  #heldSignal = false;
  /** Busy-poll window in ms (0 = off), and whether the peer runs on another thread at all. */
  #spinMs = 0;
  readonly #mayPoll: boolean;
  #misses = 0;
  #rest = 0;
  #restLen = BUSY_POLL_REST;
  #pollPending = false;
  /** Ring bytes the oldest refused packet needs (len8 × 8 + 8), 0 when no send is waiting. */
  #need = 0;
  #draining = false;
  /** Payload bytes to copy per packet, 0 = all ({@link readPrefix}). */
  #prefix = 0;

  /**
   * @param outRing control page + data of the ring this side writes; `inRing` the one it reads.
   * @param signal raises the peer's interrupt for this channel.
   * @param onClosed runs once after close (owner bookkeeping: CLOSECHANNEL, rescind...).
   * @param peerRunsConcurrently the peer reads and writes from another thread (busy-polling is allowed).
   * @throws HvError HV_ERR_INVALID_ARGUMENT for a bad ring shape; ProtocolError for corrupt ring indexes.
   */
  constructor(
    relid: number,
    outRing: Uint8Array,
    inRing: Uint8Array,
    signal: () => void,
    onClosed: (reason: Error | undefined) => void,
    peerRunsConcurrently = false,
  ) {
    this.relid = relid;
    this.#mayPoll = peerRunsConcurrently;
    this.#writer = new RingWriter(outRing);
    this.#reader = new RingReader(inRing);
    this.#signal = signal;
    this.#onClosed = onClosed;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Sets the device's callbacks. Signals stay held until {@link activate}. */
  attach(handler: ChannelHandler): void {
    this.#handler = handler;
  }

  /** Releases held signals (after OPENCHANNEL_RESULT went out) and reads anything already in the ring. */
  activate(): void {
    this.#held = false;
    if (this.#heldSignal) {
      this.#heldSignal = false;
      this.#raise();
    }
    this.onInterrupt();
  }

  send(type: number, flags: number, transId: number, payload: Uint8Array, extHeader?: Uint8Array): boolean {
    const one = this.#one;
    one[0] = payload;
    return this.#send(type, flags, transId, one, 1, extHeader);
  }

  sendParts(
    type: number,
    flags: number,
    transId: number,
    parts: readonly Uint8Array[],
    count: number,
  ): boolean {
    return this.#send(type, flags, transId, parts, count, undefined);
  }

  #send(
    type: number,
    flags: number,
    transId: number,
    parts: readonly Uint8Array[],
    count: number,
    extHeader: Uint8Array | undefined,
  ): boolean {
    if (this.#closed) throw new HvError('HV_ERR_CHANNEL_CLOSED', `channel ${this.relid} is closed`);
    let r: number;
    try {
      r = this.#writer.writeParts(type, flags, transId, parts, count, extHeader);
      if (r === RING_WRITE_FULL) r = this.#blocked(type, flags, transId, parts, count, extHeader);
    } catch (e) {
      if (e instanceof HvError && e.code === 'HV_ERR_PROTOCOL') {
        this.close(e);
        throw new HvError('HV_ERR_CHANNEL_CLOSED', `channel ${this.relid} closed: ${e.message}`);
      }
      throw e;
    }
    if (r === RING_WRITE_FULL) return false;
    this.stats.packetsOut++;
    if (r === RING_WRITE_SIGNAL) this.#raise();
    return true;
  }

  readPrefix(bytes: number): void {
    this.#prefix = Math.max(0, bytes);
  }

  /** See {@link ChannelIo.busyPoll}. Turning it on while idle starts a poll at once (the peer may answer soon). */
  busyPoll(spinMicros: number): void {
    if (!this.#mayPoll) return;
    this.#spinMs = Math.max(0, spinMicros) / 1000;
    if (this.#spinMs === 0 || this.#draining || this.#pollPending || this.#rest !== 0) return;
    if (this.#closed || this.#handler === null || this.#held) return;
    this.#reader.beginPolling();
    this.#pollSoon();
  }

  /** Handles this channel's interrupt: drain the incoming ring, and wake a blocked sender. */
  onInterrupt(): void {
    if (this.#closed || this.#handler === null || this.#held || this.#draining) return;
    this.stats.interrupts++;
    this.#draining = true;
    try {
      const reader = this.#reader;
      const pkt = this.#pkt;
      const started = this.#spinMs !== 0 ? performance.now() : 0;
      for (;;) {
        const sent = this.stats.packetsOut;
        reader.beginPolling();
        while (!this.#closed && reader.read(pkt, this.#prefix)) {
          this.stats.packetsIn++;
          // Busy-polling means a request/reply stream: free the request's room before the device answers,
          // so the peer's next request fits at once (Linux vmbus_recvpacket also commits per packet).
          if (this.#spinMs !== 0 && reader.commit()) this.#raise();
          this.#handler.onPacket(pkt);
        }
        if (this.#closed) return;
        if (reader.commit()) this.#raise();
        if (this.#spinMs !== 0 && this.#rest === 0) {
          // Before waiting here, let a sender blocked on ring space go on.
          this.#checkWritable();
          if (this.#closed) return;
          // Something went out in this pass: the peer is working on it, wait here. Nothing went out: our
          // answer may still be on its way (a promise), so let this turn of the event loop end first.
          if (this.stats.packetsOut === sent) {
            this.#pollSoon();
            return;
          }
          const next = this.#spin(started);
          if (next === SPIN_MORE) continue;
          if (next === SPIN_CAPPED) {
            // Budget used up while the stream still flows: yield to the event loop and poll again right
            // after, interrupt_mask still 1, as NAPI re-schedules its poll instead of re-enabling interrupts.
            this.#pollSoon();
            return;
          }
        } else if (this.#rest > 0) this.#rest--;
        if (reader.endPolling() === 0) break;
      }
      this.#checkWritable();
    } catch (e) {
      this.close(e instanceof Error ? e : new Error(String(e)));
    } finally {
      this.#draining = false;
    }
  }

  close(reason?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    const h = this.#handler;
    try {
      h?.onClose?.(reason);
    } catch {
      // The device is going away; its close errors have nowhere to go.
    }
    this.#onClosed(reason);
  }

  /**
   * A write found the ring full. Announce the need in pending_send_sz (the largest refused packet while
   * several wait), then check again: the reader may have freed the room between our write and the
   * announcement, and it signals only on a transition it sees (Linux hv_pkt_iter_close), so without this
   * re-check the wake-up is lost. If room appeared, write now and, if nothing else waits, withdraw the need.
   */
  #blocked(
    type: number,
    flags: number,
    transId: number,
    parts: readonly Uint8Array[],
    count: number,
    extHeader: Uint8Array | undefined,
  ): number {
    this.stats.ringFull++;
    let bytes = 16 + (extHeader?.length ?? 0);
    for (let i = 0; i < count; i++) bytes += parts[i]!.length;
    const total = ((bytes + 7) & ~7) + 8;
    const waiting = this.#need !== 0;
    if (total > this.#need) this.#need = total;
    this.#writer.setPendingSendSize(this.#need);
    if (this.#writer.bytesAvailableToWrite() <= total) return RING_WRITE_FULL;
    const r = this.#writer.writeParts(type, flags, transId, parts, count, extHeader);
    if (r !== RING_WRITE_FULL && !waiting) {
      this.#need = 0;
      this.#writer.clearPendingSend();
    }
    return r;
  }

  /**
   * Spins (interrupt_mask still 1) until the peer publishes a packet or frees the room a refused send
   * waits for, at most the window and never past the drain's budget.
   * @returns SPIN_MORE when there is something to do; SPIN_IDLE to unmask and wait for interrupts again;
   *   SPIN_CAPPED when the drain's budget ran out first.
   */
  #spin(started: number): number {
    const now = performance.now();
    const cap = started + BUSY_POLL_DRAIN_CAP_MS;
    if (now >= cap) return SPIN_CAPPED;
    const end = Math.min(now + this.#spinMs, cap);
    const reader = this.#reader;
    const writer = this.#writer;
    for (let i = 1; ; i++) {
      if (reader.bytesAvailableToRead() !== 0) break;
      if (this.#need !== 0 && writer.bytesAvailableToWrite() > this.#need) break;
      if ((i & 63) === 0 && performance.now() > end) {
        if (end >= cap) return SPIN_CAPPED;
        if (++this.#misses >= BUSY_POLL_MISSES) {
          this.#misses = 0;
          this.#rest = this.#restLen;
          this.#restLen = Math.min(this.#restLen * 2, BUSY_POLL_REST_MAX);
        }
        return SPIN_IDLE;
      }
    }
    this.#misses = 0;
    this.#restLen = BUSY_POLL_REST;
    return SPIN_MORE;
  }

  /** Polls again after this turn of the event loop, interrupt_mask still 1 (see {@link RingChannel.onInterrupt}). */
  #pollSoon(): void {
    if (this.#pollPending) return;
    this.#pollPending = true;
    setImmediate(this.#poll);
  }

  readonly #poll = (): void => {
    this.#pollPending = false;
    if (this.#closed || this.#draining) return;
    try {
      if (this.#spinMs !== 0 && this.#spin(performance.now()) === SPIN_MORE) {
        this.onInterrupt();
        return;
      }
      // Nothing came: unmask, then drain what raced in before the unmask (hv_end_read).
      if (this.#reader.endPolling() !== 0 || this.#need !== 0) this.onInterrupt();
    } catch (e) {
      this.close(e instanceof Error ? e : new Error(String(e)));
    }
  };

  /** After an interrupt: fire onWritable once the refused packet fits, never before (pending stays set). */
  #checkWritable(): void {
    const need = this.#need;
    if (need === 0 || this.#writer.bytesAvailableToWrite() <= need) return;
    this.#need = 0;
    this.#writer.clearPendingSend();
    this.#handler?.onWritable?.();
  }

  #raise(): void {
    if (this.#held) {
      this.#heldSignal = true;
      return;
    }
    this.stats.signalsOut++;
    this.#signal();
  }
}
