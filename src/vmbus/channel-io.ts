/**
 * What a device (VSP on the host, VSC on the guest) sees of an open VMBus channel. Both ends of the wire
 * use the same shape, so device code never touches rings, GPADLs or SynIC directly.
 */

/**
 * A packet delivered to a device. `payload` is valid only during the callback (it is a reused buffer): the
 * receiver's private copy of the packet (the peer cannot change it any more), which the device may edit in
 * place, e.g. to echo a request back as its reply.
 */
export interface IncomingPacket {
  /** `VM_PKT_*` type (6 inband, 7 transfer pages, 9 GPA direct, 0xB completion). */
  type: number;
  /** Descriptor flags; bit0 = completion requested. */
  flags: number;
  /** Transaction id (< 2^53; larger ids from an untrusted peer close the channel). */
  transId: number;
  /** Bytes between the descriptor's extended header and `len8 * 8` (includes sender padding). */
  payload: Uint8Array;
  /** Raw bytes of the extended header (transfer-page or GPA-direct ranges), empty for inband/completion. */
  extHeader: Uint8Array;
  /**
   * The payload's length on the wire when `payload` holds only its first bytes ({@link ChannelIo.readPrefix});
   * absent or equal to `payload.length` otherwise.
   */
  fullPayloadLength?: number;
}

/** The sending half of an open channel. */
export interface ChannelIo {
  /** Channel id (`child_relid`). */
  readonly relid: number;
  /**
   * Writes one packet to the outgoing ring and signals the peer when the ring rules say so.
   * @returns false when the ring has no room (nothing written); `ChannelHandler.onWritable` fires later.
   * @throws HvError `HV_ERR_CHANNEL_CLOSED` after close.
   */
  send(type: number, flags: number, transId: number, payload: Uint8Array, extHeader?: Uint8Array): boolean;
  /**
   * {@link send} of an in-band packet whose payload is `parts[0 .. count)` joined, copied straight into the
   * ring (no joined copy first). Optional: a device falls back to joining the parts itself and `send`.
   */
  sendParts?(
    type: number,
    flags: number,
    transId: number,
    parts: readonly Uint8Array[],
    count: number,
  ): boolean;
  /**
   * From now on deliver only the first `bytes` (rounded up to 8) of each packet's payload, skipping the
   * rest in the ring (0: whole packets again). For a device that reads only the headers of large replies,
   * such as the fcopy host, whose guest echoes every 6 KiB fragment. Optional: without it packets come whole.
   */
  readPrefix?(bytes: number): void;
  /** Closes this channel (protocol error or orderly); the device's `onClose` runs once. */
  close(reason?: Error): void;
  /**
   * Busy-polling, for a device that expects the peer's next packet within a few µs (a request/reply
   * stream such as fcopy fragments): after each drain of the incoming ring the channel keeps
   * interrupt_mask = 1 (so the peer does not signal, Linux hv_begin_read) and watches write_index for up to
   * `spinMicros` µs before unmasking. A peer answering inside that window costs no interrupt on either
   * side. 0 turns it off. A no-op when the peer shares this thread (spinning would only stall it).
   */
  busyPoll?(spinMicros: number): void;
}

/** A device's callbacks for one channel. Exceptions thrown here close the channel, never the process. */
export interface ChannelHandler {
  onPacket(pkt: IncomingPacket): void;
  /** Space freed in the outgoing ring after `send` returned false. */
  onWritable?(): void;
  onClose?(reason?: Error): void;
}

/** Time source for devices, injectable so the deterministic single-thread mode can drive it. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Runs `cb` after `ms`; returns a cancel function. */
  setTimer(ms: number, cb: () => void): () => void;
}

/** The real clock: Date.now and unref'd timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(ms, cb) {
    const t = setTimeout(cb, ms);
    (t as { unref?: () => void }).unref?.();
    return () => clearTimeout(t);
  },
};
