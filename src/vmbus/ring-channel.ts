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
 */
import { HvError } from '../protocol/errors.ts';
import type { ChannelHandler, ChannelIo } from './channel-io.ts';
import { PacketView, RING_WRITE_FULL, RING_WRITE_SIGNAL, RingReader, RingWriter } from './ring.ts';

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
  #handler: ChannelHandler | null = null;
  #closed = false;
  #held = true;
  #heldSignal = false;
  /** Ring bytes the oldest refused packet needs (len8 × 8 + 8), 0 when no send is waiting. */
  #need = 0;
  #draining = false;

  /**
   * @param outRing control page + data of the ring this side writes; `inRing` the one it reads.
   * @param signal raises the peer's interrupt for this channel.
   * @param onClosed runs once after close (owner bookkeeping: CLOSECHANNEL, rescind...).
   * @throws HvError HV_ERR_INVALID_ARGUMENT for a bad ring shape; ProtocolError for corrupt ring indexes.
   */
  constructor(
    relid: number,
    outRing: Uint8Array,
    inRing: Uint8Array,
    signal: () => void,
    onClosed: (reason: Error | undefined) => void,
  ) {
    this.relid = relid;
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
    if (this.#closed) throw new HvError('HV_ERR_CHANNEL_CLOSED', `channel ${this.relid} is closed`);
    let r: number;
    try {
      r = this.#writer.write(type, flags, transId, payload, extHeader);
      if (r === RING_WRITE_FULL) {
        const total = ((16 + (extHeader?.length ?? 0) + payload.length + 7) & ~7) + 8;
        r = this.#blocked(total, type, flags, transId, payload, extHeader);
      }
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

  /** Handles this channel's interrupt: drain the incoming ring, and wake a blocked sender. */
  onInterrupt(): void {
    if (this.#closed || this.#handler === null || this.#held || this.#draining) return;
    this.stats.interrupts++;
    this.#draining = true;
    try {
      const reader = this.#reader;
      const pkt = this.#pkt;
      for (;;) {
        reader.beginPolling();
        while (!this.#closed && reader.read(pkt)) {
          this.stats.packetsIn++;
          this.#handler.onPacket(pkt);
        }
        if (this.#closed) return;
        if (reader.commit()) this.#raise();
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
    total: number,
    type: number,
    flags: number,
    transId: number,
    payload: Uint8Array,
    extHeader: Uint8Array | undefined,
  ): number {
    this.stats.ringFull++;
    const waiting = this.#need !== 0;
    if (total > this.#need) this.#need = total;
    this.#writer.setPendingSendSize(this.#need);
    if (this.#writer.bytesAvailableToWrite() <= total) return RING_WRITE_FULL;
    const r = this.#writer.write(type, flags, transId, payload, extHeader);
    if (r !== RING_WRITE_FULL && !waiting) {
      this.#need = 0;
      this.#writer.clearPendingSend();
    }
    return r;
  }

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
