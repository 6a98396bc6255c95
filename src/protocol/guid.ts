/**
 * Microsoft GUID in its wire layout: `Data1` u32 LE, `Data2` u16 LE, `Data3` u16 LE, `Data4` 8 bytes as-is
 * (16 bytes). Counterparts: Linux `guid_t` / `GUID_INIT` (include/linux/uuid.h), FreeBSD `struct hyperv_guid`
 * (sys/dev/hyperv/include/hyperv.h), Windows `GUID`.
 * Example: `f8615163-df3e-46c5-913f-f2d2f965ed0e` ⇄ bytes `63 51 61 f8 3e df c5 46 91 3f f2 d2 f9 65 ed 0e`.
 */
import { HvError, ProtocolError } from './errors.ts';

/** Web Crypto, present in Node and browsers; declared here because protocol/ compiles without DOM or Node types. */
declare const crypto: { randomUUID(): string };

const HEX = /^\{?([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})\}?$/i;

/** An immutable GUID. Compare with {@link Guid.equals}; `toString()` is lowercase without braces. */
export class Guid {
  /** Size on the wire in bytes. */
  static readonly SIZE = 16;
  static readonly NIL = new Guid(new Uint8Array(16));

  /** The 16 bytes in wire (mixed-endian) order. */
  readonly bytes: Uint8Array;
  readonly #text: string;

  private constructor(wire: Uint8Array) {
    this.bytes = wire;
    const h = (i: number) => wire[i]!.toString(16).padStart(2, '0');
    this.#text =
      h(3) +
      h(2) +
      h(1) +
      h(0) +
      '-' +
      h(5) +
      h(4) +
      '-' +
      h(7) +
      h(6) +
      '-' +
      h(8) +
      h(9) +
      '-' +
      h(10) +
      h(11) +
      h(12) +
      h(13) +
      h(14) +
      h(15);
  }

  /**
   * Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, with or without braces, any case.
   * @throws HvError `HV_ERR_INVALID_ARGUMENT` when the text is not a GUID.
   */
  static parse(text: string): Guid {
    const m = HEX.exec(text.trim());
    if (!m)
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `not a GUID: '${text}' (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)`,
      );
    const hex = m.slice(1).join('');
    const be = new Uint8Array(16);
    for (let i = 0; i < 16; i++) be[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
    const w = new Uint8Array(16);
    w[0] = be[3]!;
    w[1] = be[2]!;
    w[2] = be[1]!;
    w[3] = be[0]!;
    w[4] = be[5]!;
    w[5] = be[4]!;
    w[6] = be[7]!;
    w[7] = be[6]!;
    w.set(be.subarray(8), 8);
    return new Guid(w);
  }

  /** A random (version 4) GUID. */
  static random(): Guid {
    return Guid.parse(crypto.randomUUID());
  }

  /**
   * Reads 16 bytes at `offset` (copies them).
   * @throws ProtocolError when fewer than 16 bytes remain.
   */
  static read(buf: Uint8Array, offset: number): Guid {
    if (offset < 0 || offset + 16 > buf.length) {
      throw new ProtocolError('GUID runs past the end of the buffer', { offset, structure: 'GUID' });
    }
    return new Guid(buf.slice(offset, offset + 16));
  }

  /** Writes the 16 wire bytes at `offset`. */
  write(buf: Uint8Array, offset: number): void {
    buf.set(this.bytes, offset);
  }

  /** True when the 16 bytes at `offset` equal this GUID (no allocation). */
  matches(buf: Uint8Array, offset: number): boolean {
    for (let i = 0; i < 16; i++) if (buf[offset + i] !== this.bytes[i]) return false;
    return true;
  }

  equals(other: Guid): boolean {
    return this.matches(other.bytes, 0);
  }

  toString(): string {
    return this.#text;
  }

  /** `{...}` form, as Linux sysfs prints `device_id`. */
  toBracedString(): string {
    return `{${this.#text}}`;
  }

  toJSON(): string {
    return this.#text;
  }
}
