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
