/**
 * What packet number `seq` of the two-thread ring stress looks like, computed the same way on both threads:
 * its payload length (8 .. 8 KiB, mostly small) and where in a shared pseudo-random pool its bytes come from.
 */

export const STRESS_PACKETS = 10_000_000;
/** Ring data area: small, so the ring is full (and empty) very often. */
export const STRESS_RING_DATA_BYTES = 16 * 1024;
export const STRESS_MAX_PAYLOAD = 8192;
const POOL_BYTES = 1 << 16;

/** Doorbell words in the control SAB (the "interrupts" between the threads) and the writer's status. */
export const BELL = { reader: 0, writer: 1, status: 2 } as const;
export const STATUS = { running: 0, done: 1, failed: 2 } as const;

/** murmur3's fmix32: a cheap bijective scramble of seq. */
function mix(x: number): number {
  let h = x | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Payload bytes of packet `seq`: 1 in 16 is 8..8192 bytes, the rest 8..256. */
export function payloadLength(seq: number): number {
  const h = mix(seq);
  return (h & 15) === 0 ? 8 + ((h >>> 4) % (STRESS_MAX_PAYLOAD - 7)) : 8 + ((h >>> 4) % 249);
}

/** Offset of packet `seq`'s bytes in the pool (any alignment). */
export function poolOffset(seq: number): number {
  return mix(seq ^ 0x5bd1e995) % (POOL_BYTES - STRESS_MAX_PAYLOAD);
}

/** The same xorshift32 byte pool on both threads. */
export function makePool(): Uint8Array {
  const pool = new Uint8Array(POOL_BYTES);
  let x = 0x2545f491;
  for (let i = 0; i < POOL_BYTES; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    pool[i] = x & 0xff;
  }
  return pool;
}
