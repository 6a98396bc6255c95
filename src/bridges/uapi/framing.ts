/**
 * Framing of uapi messages over a byte stream (the socket between a daemon's LD_PRELOAD shim and the guest
 * kernel): `u32` little-endian payload length, then the payload. The shim's first frame is HELLO,
 * `"<device path>\0<decimal pid>"`. Frames above {@link MAX_UAPI_FRAME} are a protocol error.
 */
import { ProtocolError } from '../../protocol/errors.ts';

/** Largest frame accepted: the biggest uapi message (hv_do_fcopy 6196, hv_kvp_msg 7432) with room to spare. */
export const MAX_UAPI_FRAME = 64 * 1024;

/** Length prefix + payload as one buffer. */
export function encodeFrame(payload: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(4 + payload.length);
  b.writeUInt32LE(payload.length, 0);
  b.set(payload, 4);
  return b;
}

/**
 * Splits a stream into frames. {@link feed} hands each whole frame over as a view: into the chunk itself
 * when the frame lies inside it (the usual case, no copy), else into one reused buffer that holds a frame
 * split across chunks (at most 4 + {@link MAX_UAPI_FRAME} bytes).
 */
export class FrameReader {
  #buf = new Uint8Array(1024);
  #dv = new DataView(this.#buf.buffer);
  /** Bytes of a split frame held in `#buf`. */
  #len = 0;

  /**
   * Calls `onFrame` for every frame completed by `chunk`, in order; the view is valid only during the call.
   * @throws ProtocolError when a frame announces more than {@link MAX_UAPI_FRAME} bytes (the stream is
   *   unusable afterwards).
   */
  feed(chunk: Uint8Array, onFrame: (frame: Uint8Array) => void): void {
    let at = 0;
    if (this.#len > 0) {
      at = this.#fill(chunk, 0, 4);
      if (this.#len < 4) return;
      const need = 4 + frameLength(this.#dv, 0);
      at = this.#fill(chunk, at, need);
      if (this.#len < need) return;
      this.#len = 0;
      onFrame(this.#buf.subarray(4, need));
    }
    const dv = new DataView(chunk.buffer, chunk.byteOffset, chunk.length);
    while (chunk.length - at >= 4) {
      const len = frameLength(dv, at);
      if (chunk.length - at - 4 < len) break;
      onFrame(chunk.subarray(at + 4, at + 4 + len));
      at += 4 + len;
    }
    if (at < chunk.length) this.#fill(chunk, at, chunk.length - at);
  }

  /** Like {@link feed}, returning copies of the frames. */
  push(chunk: Uint8Array): Buffer[] {
    const out: Buffer[] = [];
    this.feed(chunk, (f) => out.push(Buffer.from(f)));
    return out;
  }

  /** Appends chunk bytes from `at` until `#buf` holds `upTo` bytes (or the chunk ends); returns the new `at`. */
  #fill(chunk: Uint8Array, at: number, upTo: number): number {
    const n = Math.min(upTo - this.#len, chunk.length - at);
    if (n <= 0) return at;
    if (this.#len + n > this.#buf.length) {
      const grown = new Uint8Array(Math.max(this.#len + n, 2 * this.#buf.length));
      grown.set(this.#buf.subarray(0, this.#len));
      this.#buf = grown;
      this.#dv = new DataView(grown.buffer);
    }
    this.#buf.set(chunk.subarray(at, at + n), this.#len);
    this.#len += n;
    return at + n;
  }
}

function frameLength(dv: DataView, at: number): number {
  const len = dv.getUint32(at, true);
  if (len > MAX_UAPI_FRAME) {
    throw new ProtocolError(`uapi frame of ${len} bytes exceeds ${MAX_UAPI_FRAME}`, {
      offset: at,
      structure: 'uapi frame',
    });
  }
  return len;
}

/** Parses HELLO: device path and pid. @throws ProtocolError when it is not `path\0pid`. */
export function parseHello(frame: Uint8Array): { device: string; pid: number } {
  const s = Buffer.from(frame).toString('utf8');
  const nul = s.indexOf('\0');
  const pid = Number(s.slice(nul + 1));
  if (nul <= 0 || !Number.isInteger(pid) || pid < 0 || !s.startsWith('/')) {
    throw new ProtocolError('uapi HELLO is not "<device path>\\0<pid>"', {
      offset: 0,
      structure: 'uapi HELLO',
    });
  }
  return { device: s.slice(0, nul), pid };
}
