/**
 * One direction of a VMBus channel ring, byte-exact with Linux drivers/hv/ring_buffer.c
 * (hv_ringbuffer_write, hv_signal_on_write, hv_pkt_iter_first/next/close, hv_begin_read/hv_end_read) and
 * OpenVMM vm/devices/vmbus/vmbus_ring (OutgoingRing/IncomingRing). Reference: vmbus-core-ics.md §2, §3.
 *
 * A ring is a Uint8Array: the 4096-byte control page (`struct hv_ring_buffer`) followed by the data area
 * (a multiple of 4096 bytes). Each packet in the data area is descriptor + extended header + payload + zero
 * padding to 8 bytes (`len8 × 8` bytes) and then an 8-byte trailer whose high u32 is the write_index at which
 * the packet started. The data area is circular; packets wrap at any 8-byte position.
 *
 * Memory ordering: packet bytes are written with plain stores and indexes published with `Atomics.store`
 * (sequentially consistent), so a peer in another thread that `Atomics.load`s the index sees the bytes.
 * The ring's peer is untrusted: indexes and descriptors it writes are validated, a corrupt ring raises a
 * ProtocolError (structure `hv_ring_buffer` or `vmpacket_descriptor`) and the caller closes the channel.
 */
import { SubarrayCache } from '../protocol/bytes.ts';
import { HvError, ProtocolError } from '../protocol/errors.ts';
import { type PacketDescriptor, readDescriptor, setU64 } from '../protocol/vmbus/packet.ts';
import {
  RING_CONTROL_SIZE,
  RING_FEATURE_PENDING_SEND_SZ,
  RING_WORD,
  ringBytesToRead,
  ringBytesToWrite,
} from '../protocol/vmbus/ring-control.ts';
import type { IncomingPacket } from './channel-io.ts';

/** {@link RingWriter.write} result: no room, nothing written (ring unchanged). */
export const RING_WRITE_FULL = -1;
/** {@link RingWriter.write} result: written, the reader need not be signalled. */
export const RING_WRITE_OK = 0;
/** {@link RingWriter.write} result: written, and the ring rules say signal the reader now. */
export const RING_WRITE_SIGNAL = 1;

const W_WRITE = RING_WORD.write_index;
const W_READ = RING_WORD.read_index;
const W_MASK = RING_WORD.interrupt_mask;
const W_PENDING = RING_WORD.pending_send_sz;
const W_FEATURES = RING_WORD.feature_bits;
/** At or below this many bytes, copy with an Int32 loop (no subarray object); above it use `set`. */
const SMALL_COPY = 256;
const ZERO8 = new Uint8Array(8);

interface RingParts {
  ctl: Int32Array;
  data: Uint8Array;
  words: Int32Array;
  view: DataView;
  size: number;
}

function ringParts(mem: Uint8Array): RingParts {
  const size = mem.length - RING_CONTROL_SIZE;
  if (size < 4096 || size % 4096 !== 0 || mem.byteOffset % 8 !== 0) {
    throw new HvError(
      'HV_ERR_INVALID_ARGUMENT',
      `a ring needs a 4096-byte control page plus a data area that is a non-zero multiple of 4096 bytes, 8-byte aligned; got ${mem.length} bytes at offset ${mem.byteOffset}`,
    );
  }
  const buf = mem.buffer as ArrayBuffer;
  const dataOff = mem.byteOffset + RING_CONTROL_SIZE;
  return {
    ctl: new Int32Array(buf, mem.byteOffset, RING_CONTROL_SIZE / 4),
    data: new Uint8Array(buf, dataOff, size),
    words: new Int32Array(buf, dataOff, size / 4),
    view: new DataView(buf, dataOff, size),
    size,
  };
}

function corrupt(message: string, offset: number): never {
  throw new ProtocolError(message, { offset, structure: 'hv_ring_buffer' });
}

/** Loads and validates an index the peer owns: < data size and a multiple of 8 (OpenVMM `validate`). */
function loadIndex(ctl: Int32Array, word: number, size: number): number {
  const v = Atomics.load(ctl, word) >>> 0;
  if (v >= size || (v & 7) !== 0)
    corrupt(`ring index ${v} is not a multiple of 8 below the data size ${size}`, word * 4);
  return v;
}

/**
 * Initializes a ring's control page as its owner (the guest) does before OPENCHANNEL: zeroes the whole
 * control page (indexes 0, interrupt_mask 0, pending_send_sz 0) and sets feature bit0 when `featurePendingSendSz`.
 * @throws HvError `HV_ERR_INVALID_ARGUMENT` when `mem` is not a control page + 4096×n data bytes.
 */
export function initRing(mem: Uint8Array, featurePendingSendSz: boolean): void {
  const { ctl } = ringParts(mem);
  mem.fill(0, 0, RING_CONTROL_SIZE);
  if (featurePendingSendSz) Atomics.store(ctl, W_FEATURES, RING_FEATURE_PENDING_SEND_SZ);
}

/**
 * The producer of one ring. Keeps its own write index (the ring's copy is only published), so a peer that
 * scribbles on write_index cannot make it overwrite unread data.
 */
export class RingWriter {
  /** Bytes in the data area. */
  readonly dataSize: number;
  readonly #ctl: Int32Array;
  readonly #data: Uint8Array;
  readonly #view: DataView;
  readonly #scratch = new Uint8Array(16);
  readonly #scratchView = new DataView(this.#scratch.buffer);
  /** `write`'s one-part list, reused. */
  readonly #one: Uint8Array[] = [ZERO8];
  #write: number;
  #batching = false;
  #batchStart = 0;

  /**
   * Attaches to a ring (control page + data). Takes write_index from the control page.
   * @throws HvError `HV_ERR_INVALID_ARGUMENT` for a bad ring shape; ProtocolError if write_index is corrupt.
   */
  constructor(mem: Uint8Array) {
    const p = ringParts(mem);
    this.dataSize = p.size;
    this.#ctl = p.ctl;
    this.#data = p.data;
    this.#view = p.view;
    this.#write = loadIndex(p.ctl, W_WRITE, p.size);
  }

  /** Largest payload (no extended header) that fits in an empty ring: data size − 16 (descriptor) − 8 (trailer) − 8. */
  get maxPayload(): number {
    return this.dataSize - 32;
  }

  /**
   * Writes one packet: descriptor (offset8 = (16 + extHeader.length) / 8, len8 = ceil(bytes / 8)),
   * `extHeader`, `payload`, zero padding to 8 bytes, trailer. Allocation-free unless the packet wraps.
   * Space rule (all implementations): written only if len8 × 8 + 8 < bytes available to write (strictly).
   * @param transId integer in [0, 2^53), written as two u32 halves
   * @returns {@link RING_WRITE_FULL} (-1, nothing written), {@link RING_WRITE_SIGNAL} (1, signal the reader:
   *   interrupt_mask was 0 and the ring was empty before) or {@link RING_WRITE_OK} (0). Inside
   *   {@link beginBatch}/{@link endBatch} it returns -1 or 0 and nothing is published until endBatch.
   * @throws HvError `HV_ERR_INVALID_ARGUMENT` when the packet can never fit this ring, extHeader is not a
   *   multiple of 8 bytes, or the descriptor fields overflow u16; ProtocolError if the peer corrupted read_index.
   */
  write(type: number, flags: number, transId: number, payload: Uint8Array, extHeader?: Uint8Array): number {
    const one = this.#one;
    one[0] = payload;
    return this.writeParts(type, flags, transId, one, 1, extHeader);
  }

  /**
   * {@link write} with the payload gathered from `parts[0 .. count)` in order, each copied once, straight
   * into the ring (Linux hv_ringbuffer_write takes a kvec list the same way): a header built in a small
   * buffer and data that lives elsewhere go out without being joined first. Same results and errors.
   */
  writeParts(
    type: number,
    flags: number,
    transId: number,
    parts: readonly Uint8Array[],
    count: number,
    extHeader?: Uint8Array,
  ): number {
    const ext = extHeader === undefined ? 0 : extHeader.length;
    let payloadLen = 0;
    for (let i = 0; i < count; i++) payloadLen += parts[i]!.length;
    const pktLen = 16 + ext + payloadLen;
    const padded = (pktLen + 7) & ~7;
    const total = padded + 8;
    if (total >= this.dataSize || (ext & 7) !== 0 || padded > 0xffff * 8) this.#tooBig(payloadLen, ext);
    const size = this.dataSize;
    const w = this.#write;
    const read = loadIndex(this.#ctl, W_READ, size);
    if (total >= ringBytesToWrite(w, read, size)) return RING_WRITE_FULL;
    const offset8 = (16 + ext) >>> 3;
    const len8 = padded >>> 3;
    const data = this.#data;
    if (w + total <= size) {
      const v = this.#view;
      v.setUint16(w, type, true);
      v.setUint16(w + 2, offset8, true);
      v.setUint16(w + 4, len8, true);
      v.setUint16(w + 6, flags, true);
      setU64(v, w + 8, transId);
      let at = w + 16;
      if (ext !== 0) {
        data.set(extHeader!, at);
        at += ext;
      }
      for (let i = 0; i < count; i++) {
        const p = parts[i]!;
        data.set(p, at);
        at += p.length;
      }
      for (let i = w + pktLen; i < w + padded; i++) data[i] = 0;
      v.setUint32(w + padded, 0, true);
      v.setUint32(w + padded + 4, w, true);
    } else {
      const s = this.#scratchView;
      s.setUint16(0, type, true);
      s.setUint16(2, offset8, true);
      s.setUint16(4, len8, true);
      s.setUint16(6, flags, true);
      setU64(s, 8, transId);
      let at = this.#copySmall(this.#scratch, 16, w);
      if (ext !== 0) at = this.#copyIn(extHeader!, at);
      for (let i = 0; i < count; i++) at = this.#copyIn(parts[i]!, at);
      at = this.#copySmall(ZERO8, padded - pktLen, at);
      s.setUint32(0, 0, true);
      s.setUint32(4, w, true);
      this.#copySmall(this.#scratch, 8, at);
    }
    const end = w + total;
    this.#write = end >= size ? end - size : end;
    if (this.#batching) return RING_WRITE_OK;
    return this.#publish(w);
  }

  /** Starts a batch: following writes are not published until {@link endBatch} (one publish, one signal decision). */
  beginBatch(): void {
    if (!this.#batching) {
      this.#batching = true;
      this.#batchStart = this.#write;
    }
  }

  /**
   * Publishes everything written since {@link beginBatch}.
   * @returns 1 if the reader must be signalled (mask 0 and the ring was empty before the batch), else 0.
   */
  endBatch(): number {
    if (!this.#batching) return RING_WRITE_OK;
    this.#batching = false;
    if (this.#write === this.#batchStart) return RING_WRITE_OK;
    return this.#publish(this.#batchStart);
  }

  /** Bytes available to write now (a packet needs len8 × 8 + 8 strictly below this). */
  bytesAvailableToWrite(): number {
    return ringBytesToWrite(this.#write, loadIndex(this.#ctl, W_READ, this.dataSize), this.dataSize);
  }

  /**
   * Announces that this blocked writer needs `bytes` of ring (usually the failed packet's len8 × 8 + 8),
   * rounded up to 8 as OpenVMM does. The reader signals once free space exceeds it (if feature bit0 is set).
   * After calling this, re-check {@link bytesAvailableToWrite} before waiting, to avoid a lost wakeup.
   */
  setPendingSendSize(bytes: number): void {
    Atomics.store(this.#ctl, W_PENDING, (bytes + 7) & ~7);
  }

  /** Clears pending_send_sz (no longer waiting). */
  clearPendingSend(): void {
    Atomics.store(this.#ctl, W_PENDING, 0);
  }

  #publish(oldWrite: number): number {
    Atomics.store(this.#ctl, W_WRITE, this.#write);
    // Linux hv_signal_on_write: mask first, then whether the reader had caught up with the old write_index.
    if (Atomics.load(this.#ctl, W_MASK) !== 0) return RING_WRITE_OK;
    return Atomics.load(this.#ctl, W_READ) >>> 0 === oldWrite ? RING_WRITE_SIGNAL : RING_WRITE_OK;
  }

  /** Copies the first `len` (≤ 16) bytes of `src` to ring offset `at`, wrapping, without a subarray. */
  #copySmall(src: Uint8Array, len: number, at: number): number {
    const data = this.#data;
    const size = this.dataSize;
    for (let i = 0; i < len; i++) {
      data[at] = src[i]!;
      at = at + 1 === size ? 0 : at + 1;
    }
    return at;
  }

  /** Copies `src` to ring offset `at` (wrapping) and returns the offset after it. */
  #copyIn(src: Uint8Array, at: number): number {
    const size = this.dataSize;
    const first = Math.min(src.length, size - at);
    if (first === src.length) this.#data.set(src, at);
    else {
      this.#data.set(src.subarray(0, first), at);
      this.#data.set(src.subarray(first), 0);
    }
    const end = at + src.length;
    return end >= size ? end - size : end;
  }

  #tooBig(payload: number, ext: number): never {
    throw new HvError(
      'HV_ERR_INVALID_ARGUMENT',
      `packet with a ${payload}-byte payload and ${ext}-byte extended header cannot be written to a ring with ${this.dataSize} data bytes (the extended header must be a multiple of 8 bytes and the payload at most ${Math.min(this.maxPayload, 0xffff * 8 - 16) - ext} bytes)`,
    );
  }
}

/**
 * One packet read by {@link RingReader.read}: a reusable object filled in place. The bytes live in the
 * reader's private copy (`buffer`, descriptor at 0) and stay valid until the next `read`.
 * `payload`/`extHeader` create subarrays on access; hot paths use `buffer`, `payloadOffset`, `payloadLength`.
 */
export class PacketView implements IncomingPacket {
  /** `VM_PKT_*`. */
  type = 0;
  /** Descriptor flags (bit0 = completion requested). */
  flags = 0;
  /** Transaction id (< 2^53). */
  transId = 0;
  /** The whole packet (`len8 × 8` bytes from the descriptor) at offset 0 of this buffer. */
  buffer: Uint8Array = new Uint8Array(0);
  /** Byte offset of the payload in `buffer` (offset8 × 8). The extended header is bytes 16 .. payloadOffset. */
  payloadOffset = 16;
  /** Payload bytes copied: (len8 − offset8) × 8, sender padding included, unless only a prefix was read. */
  payloadLength = 0;
  /** Payload bytes in the ring, (len8 − offset8) × 8 (more than `payloadLength` when a prefix was read). */
  fullPayloadLength = 0;

  readonly #payload = new SubarrayCache();

  /** The payload as a view of `buffer`; packets of the same shape share one view object (no allocation). */
  get payload(): Uint8Array {
    return this.#payload.of(this.buffer, this.payloadOffset, this.payloadOffset + this.payloadLength);
  }

  get extHeader(): Uint8Array {
    return this.buffer.subarray(16, this.payloadOffset);
  }
}

/**
 * The consumer of one ring. Reads advance a private read index; {@link commit} publishes it (Linux
 * hv_pkt_iter_close), so a batch of reads frees space and decides about signalling once.
 */
export class RingReader {
  /** Bytes in the data area. */
  readonly dataSize: number;
  readonly #ctl: Int32Array;
  readonly #data: Uint8Array;
  readonly #words: Int32Array;
  #buf: Uint8Array;
  #bufWords: Int32Array;
  #bufView: DataView;
  readonly #desc: PacketDescriptor = { type: 0, offset8: 0, len8: 0, flags: 0, transId: 0 };
  #read: number;
  #published: number;

  /**
   * Attaches to a ring (control page + data); takes read_index from the control page.
   * @throws HvError `HV_ERR_INVALID_ARGUMENT` for a bad ring shape; ProtocolError if read_index is corrupt.
   */
  constructor(mem: Uint8Array) {
    const p = ringParts(mem);
    this.dataSize = p.size;
    this.#ctl = p.ctl;
    this.#data = p.data;
    this.#words = p.words;
    this.#read = loadIndex(p.ctl, W_READ, p.size);
    this.#published = this.#read;
    this.#buf = new Uint8Array(Math.min(p.size, 65536));
    this.#bufWords = new Int32Array(this.#buf.buffer);
    this.#bufView = new DataView(this.#buf.buffer);
  }

  /**
   * Reads the next packet into `out` (allocation-free; the packet is first copied out of the ring so the
   * peer cannot change it while it is parsed, as Linux hv_pkt_iter_first does). With `payloadPrefix` > 0
   * only that many payload bytes (rounded up to 8) are copied and the rest is skipped: for a reader that
   * needs only the headers of large packets (`out.fullPayloadLength` tells the real size).
   * @returns false when no packet is available (nothing changes).
   * @throws ProtocolError when the ring is corrupt: bad write_index, a partial packet, or a descriptor that
   *   breaks OpenVMM parse_packet's rules (offset8 >= 2, len8 >= offset8, len8 × 8 within the published bytes,
   *   type 6/7/9/0xB, flags 0/1) or carries a trans_id >= 2^53. The ring is unusable afterwards: close the channel.
   */
  read(out: PacketView, payloadPrefix = 0): boolean {
    const size = this.dataSize;
    const r = this.#read;
    const avail = ringBytesToRead(loadIndex(this.#ctl, W_WRITE, size), r, size);
    if (avail === 0) return false;
    if (avail < 24) corrupt(`${avail} published bytes cannot hold a packet and its trailer`, 0);
    this.#copyOut(r, 0, 16);
    const d = this.#desc;
    readDescriptor(this.#bufView, 0, avail - 8, d);
    const bytes = d.len8 * 8;
    if (bytes > this.#buf.length) this.#grow(bytes);
    const payloadAt = d.offset8 * 8;
    const copy = payloadPrefix > 0 ? Math.min(bytes, payloadAt + ((payloadPrefix + 7) & ~7)) : bytes;
    if (copy > 16) this.#copyOut(r + 16 >= size ? r + 16 - size : r + 16, 16, copy - 16);
    const next = r + bytes + 8;
    this.#read = next >= size ? next - size : next;
    out.type = d.type;
    out.flags = d.flags;
    out.transId = d.transId;
    out.buffer = this.#buf;
    out.payloadOffset = payloadAt;
    out.payloadLength = copy - payloadAt;
    out.fullPayloadLength = bytes - payloadAt;
    return true;
  }

  /**
   * Publishes the private read index (frees the space of every packet read since the last commit).
   * @returns true iff the writer must be signalled, by Linux hv_pkt_iter_close's exact test: feature bit0 set
   *   in this ring, pending_send_sz (low 3 bits masked, as OpenVMM) != 0, space to write now > pending and
   *   it was not already > pending before this batch.
   * @throws ProtocolError if the peer corrupted write_index.
   */
  commit(): boolean {
    const start = this.#published;
    const r = this.#read;
    if (r === start) return false;
    Atomics.store(this.#ctl, W_READ, r);
    this.#published = r;
    if ((Atomics.load(this.#ctl, W_FEATURES) & RING_FEATURE_PENDING_SEND_SZ) === 0) return false;
    const pending = (Atomics.load(this.#ctl, W_PENDING) & ~7) >>> 0;
    if (pending === 0) return false;
    const size = this.dataSize;
    const canWrite = ringBytesToWrite(loadIndex(this.#ctl, W_WRITE, size), r, size);
    const freed = r >= start ? r - start : size - start + r;
    if (canWrite - freed > pending) return false;
    return canWrite > pending;
  }

  /** Bytes published by the writer and not yet read (private read index). @throws ProtocolError on a corrupt write_index. */
  bytesAvailableToRead(): number {
    return ringBytesToRead(loadIndex(this.#ctl, W_WRITE, this.dataSize), this.#read, this.dataSize);
  }

  /** Sets interrupt_mask = 1: the reader is polling, the writer need not signal (Linux hv_begin_read). */
  beginPolling(): void {
    Atomics.store(this.#ctl, W_MASK, 1);
  }

  /**
   * Sets interrupt_mask = 0 (with a full barrier) and returns the bytes available to read; if non-zero the
   * caller must read again rather than wait, because the writer may have skipped the signal (Linux
   * hv_end_read). Commit before calling this.
   */
  endPolling(): number {
    Atomics.store(this.#ctl, W_MASK, 0);
    return this.bytesAvailableToRead();
  }

  /** Copies `len` (multiple of 8) ring bytes from ring offset `from` (wrapping) to the private buffer at `to`. */
  #copyOut(from: number, to: number, len: number): void {
    const first = Math.min(len, this.dataSize - from);
    this.#copySeg(from, to, first);
    if (len > first) this.#copySeg(0, to + first, len - first);
  }

  #copySeg(from: number, to: number, len: number): void {
    if (len <= SMALL_COPY) {
      const src = this.#words;
      const dst = this.#bufWords;
      const s = from >>> 2;
      const d = to >>> 2;
      const n = len >>> 2;
      for (let i = 0; i < n; i++) dst[d + i] = src[s + i]!;
    } else {
      this.#buf.set(this.#data.subarray(from, from + len), to);
    }
  }

  /** Grows the private buffer (bounded by the data size, since len8 × 8 was checked against published bytes). */
  #grow(bytes: number): void {
    let n = this.#buf.length;
    while (n < bytes) n *= 2;
    const old = this.#buf;
    this.#buf = new Uint8Array(Math.min(n, this.dataSize));
    this.#buf.set(old.subarray(0, 16));
    this.#bufWords = new Int32Array(this.#buf.buffer);
    this.#bufView = new DataView(this.#buf.buffer);
  }
}
