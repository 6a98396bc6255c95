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

/** Splits a stream into frames; `push` returns the whole frames completed by `chunk`. */
export class FrameReader {
  #buf: Buffer = Buffer.alloc(0);

  /** @throws ProtocolError when a frame announces more than {@link MAX_UAPI_FRAME} bytes. */
  push(chunk: Buffer): Buffer[] {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    const out: Buffer[] = [];
    while (this.#buf.length >= 4) {
      const len = this.#buf.readUInt32LE(0);
      if (len > MAX_UAPI_FRAME) {
        throw new ProtocolError(`uapi frame of ${len} bytes exceeds ${MAX_UAPI_FRAME}`, {
          offset: 0,
          structure: 'uapi frame',
        });
      }
      if (this.#buf.length < 4 + len) break;
      out.push(Buffer.from(this.#buf.subarray(4, 4 + len)));
      this.#buf = this.#buf.subarray(4 + len);
    }
    return out;
  }
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
