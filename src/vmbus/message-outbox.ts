/**
 * Ordered sending of channel messages over a SynIC port: when HvPostMessage says
 * HV_STATUS_INSUFFICIENT_BUFFERS the message waits here, in order, until the port's `onSlotFree`. A peer
 * that never frees a slot cannot grow this without bound: past `limit` messages are dropped and counted
 * (the connection is then broken, as with a real guest that stops answering).
 */
import { type ChannelMessage, encodeChannelMessage } from '../protocol/vmbus/channel-messages.ts';
import { HV_STATUS_INSUFFICIENT_BUFFERS, HV_STATUS_SUCCESS } from '../protocol/vmbus/constants.ts';
import type { SynicPort } from './synic.ts';

export class MessageOutbox {
  readonly #port: SynicPort;
  readonly #queue: { conn: number; bytes: Uint8Array }[] = [];
  readonly #limit: number;
  /** Messages dropped because the queue was at its limit. */
  dropped = 0;
  /** Messages handed to the port. */
  sent = 0;

  constructor(port: SynicPort, limit = 4096) {
    this.#port = port;
    this.#limit = limit;
  }

  get queued(): number {
    return this.#queue.length;
  }

  /**
   * Encodes and posts `msg` on `connectionId` (or queues it behind earlier ones).
   * @returns the HvPostMessage status; INSUFFICIENT_BUFFERS means "queued", any other failure is final.
   */
  post(connectionId: number, msg: ChannelMessage): number {
    const bytes = encodeChannelMessage(msg);
    if (this.#queue.length > 0) return this.#enqueue(connectionId, bytes);
    const status = this.#port.postMessage(connectionId, bytes);
    if (status === HV_STATUS_INSUFFICIENT_BUFFERS) return this.#enqueue(connectionId, bytes);
    if (status === HV_STATUS_SUCCESS) this.sent++;
    return status;
  }

  /** Retries queued messages in order (call from `onSlotFree`). */
  flush(): void {
    while (this.#queue.length > 0) {
      const m = this.#queue[0]!;
      const status = this.#port.postMessage(m.conn, m.bytes);
      if (status === HV_STATUS_INSUFFICIENT_BUFFERS) return;
      this.#queue.shift();
      if (status === HV_STATUS_SUCCESS) this.sent++;
      else this.dropped++;
    }
  }

  /** Drops everything queued (connection reset). */
  clear(): void {
    this.#queue.length = 0;
  }

  #enqueue(conn: number, bytes: Uint8Array): number {
    if (this.#queue.length >= this.#limit) this.dropped++;
    else this.#queue.push({ conn, bytes });
    return HV_STATUS_INSUFFICIENT_BUFFERS;
  }
}
