/**
 * Little-endian integer access on a Uint8Array without a DataView, for per-packet paths (a DataView per
 * call is an allocation; these are plain loads and stores). Offsets are bytes from the array's start; the
 * caller has checked the bounds.
 */

/** The u32 at `at` (little-endian). */
export function u32le(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

/** Writes `v` (taken modulo 2^32) as a little-endian u32 at `at`. */
export function putU32le(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
  b[at + 2] = (v >>> 16) & 0xff;
  b[at + 3] = (v >>> 24) & 0xff;
}

/** The u16 at `at` (little-endian). */
export function u16le(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8);
}

/** Writes `v` (taken modulo 2^16) as a little-endian u16 at `at`. */
export function putU16le(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
}

/**
 * One reusable subarray: {@link SubarrayCache.of} returns the view it made last time while the buffer and
 * the bounds are the same, so a per-packet path that keeps re-reading one buffer (a ring reader's copy, a
 * gather buffer) makes no view object per packet.
 */
export class SubarrayCache {
  #of: Uint8Array | null = null;
  #start = 0;
  #end = 0;
  #view: Uint8Array = new Uint8Array(0);

  /** `buf.subarray(start, end)`, the previous object when `buf`, `start` and `end` are unchanged. */
  of(buf: Uint8Array, start: number, end: number): Uint8Array {
    if (buf !== this.#of || start !== this.#start || end !== this.#end) {
      this.#of = buf;
      this.#start = start;
      this.#end = end;
      this.#view = buf.subarray(start, end);
    }
    return this.#view;
  }
}
