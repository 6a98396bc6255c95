/**
 * Fixed-size string fields of the Hyper-V wire and uapi structures: NUL-terminated UTF-16LE arrays on the
 * VMBus side (`__u16 key[...]` as bytes, `adapter_id[128]`, ...) and NUL-terminated UTF-8 arrays on the
 * kernel↔daemon side (`__u8 key[512]`, ...). Conversion rules follow Linux fs/nls/nls_base.c
 * (`utf16s_to_utf8s`: stops at a NUL unit, drops an unpaired surrogate; `utf8s_to_utf16s`).
 * Pure functions (no Node types); every length is bounded by the field size given.
 */
import { HvError } from '../errors.ts';

/** UTF-8 encodes `s` into `out` (stops before overflowing). @returns units of `s` consumed and bytes written. */
function encodeInto(s: string, out: Uint8Array): { read: number; written: number } {
  let w = 0;
  let i = 0;
  for (; i < s.length; i++) {
    let c = s.charCodeAt(i);
    let units = 1;
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        units = 2;
      }
    }
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
    const n = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    if (w + n > out.length) break;
    if (n === 1) out[w++] = c;
    else if (n === 2) {
      out[w++] = 0xc0 | (c >> 6);
      out[w++] = 0x80 | (c & 63);
    } else if (n === 3) {
      out[w++] = 0xe0 | (c >> 12);
      out[w++] = 0x80 | ((c >> 6) & 63);
      out[w++] = 0x80 | (c & 63);
    } else {
      out[w++] = 0xf0 | (c >> 18);
      out[w++] = 0x80 | ((c >> 12) & 63);
      out[w++] = 0x80 | ((c >> 6) & 63);
      out[w++] = 0x80 | (c & 63);
    }
    i += units - 1;
  }
  return { read: i, written: w };
}

/** UTF-8 decodes `b`; malformed sequences become U+FFFD. */
function decodeUtf8(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; ) {
    const c = b[i]!;
    const n = c < 0x80 ? 1 : c >= 0xf0 && c < 0xf8 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
    if (n === 0 || i + n > b.length) {
      s += '\ufffd';
      i++;
      continue;
    }
    let cp = n === 1 ? c : n === 2 ? c & 31 : n === 3 ? c & 15 : c & 7;
    let ok = true;
    for (let k = 1; k < n; k++) {
      const d = b[i + k]!;
      if ((d & 0xc0) !== 0x80) ok = false;
      cp = (cp << 6) | (d & 63);
    }
    if (
      !ok ||
      cp > 0x10ffff ||
      (cp >= 0xd800 && cp <= 0xdfff) ||
      (n === 3 && cp < 0x800) ||
      (n === 4 && cp < 0x10000)
    ) {
      s += '\ufffd';
      i++;
      continue;
    }
    s += String.fromCodePoint(cp);
    i += n;
  }
  return s;
}

/**
 * Reads a UTF-16LE string of at most `maxBytes` bytes at `off` (stops at the first NUL unit); unpaired
 * surrogates are dropped as Linux `utf16s_to_utf8s` does. Never reads outside `buf`.
 */
export function readUtf16Z(buf: Uint8Array, off: number, maxBytes: number): string {
  const end = Math.min(buf.length, off + maxBytes);
  let s = '';
  for (let i = off; i + 1 < end; i += 2) {
    const u = buf[i]! | (buf[i + 1]! << 8);
    if (u === 0) break;
    if (u >= 0xd800 && u <= 0xdbff) {
      const n = i + 3 < end ? buf[i + 2]! | (buf[i + 3]! << 8) : 0;
      if (n >= 0xdc00 && n <= 0xdfff) {
        s += String.fromCharCode(u, n);
        i += 2;
      }
      continue;
    }
    if (u >= 0xdc00 && u <= 0xdfff) continue;
    s += String.fromCharCode(u);
  }
  return s;
}

/** True when `s` holds an unpaired surrogate (it cannot be sent as well-formed UTF-16). */
export function hasLoneSurrogate(s: string): boolean {
  return /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
}

/**
 * Writes `s` as UTF-16LE plus a NUL unit at `off`, zero-filling nothing else.
 * @returns bytes written including the NUL (2 × (units + 1)).
 * @throws HvError `HV_ERR_INVALID_ARGUMENT` when that exceeds `maxBytes` or `s` has an unpaired surrogate.
 */
export function writeUtf16Z(
  s: string,
  buf: Uint8Array,
  off: number,
  maxBytes: number,
  what = 'string',
): number {
  const bytes = 2 * (s.length + 1);
  if (bytes > maxBytes) {
    throw new HvError(
      'HV_ERR_INVALID_ARGUMENT',
      `${what} is ${bytes} bytes as UTF-16 with its NUL; at most ${maxBytes} bytes (${maxBytes / 2 - 1} characters) fit`,
    );
  }
  if (hasLoneSurrogate(s))
    throw new HvError('HV_ERR_INVALID_ARGUMENT', `${what} holds an unpaired UTF-16 surrogate`);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    buf[off + 2 * i] = c & 0xff;
    buf[off + 2 * i + 1] = c >>> 8;
  }
  buf[off + 2 * s.length] = 0;
  buf[off + 2 * s.length + 1] = 0;
  return bytes;
}

/** Like {@link writeUtf16Z} but truncates to `maxUnits` code units instead of throwing (Linux `utf8s_to_utf16s` cap). */
export function writeUtf16ZTruncated(s: string, buf: Uint8Array, off: number, maxUnits: number): number {
  let t = s.length > maxUnits ? s.slice(0, maxUnits) : s;
  if (t.length && /[\ud800-\udbff]$/.test(t)) t = t.slice(0, -1);
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    buf[off + 2 * i] = c & 0xff;
    buf[off + 2 * i + 1] = c >>> 8;
  }
  buf[off + 2 * t.length] = 0;
  buf[off + 2 * t.length + 1] = 0;
  return 2 * (t.length + 1);
}

/** Reads a NUL-terminated UTF-8 string of at most `max` bytes at `off` (a C string in a fixed array). */
export function readCString(buf: Uint8Array, off: number, max: number): string {
  const end = Math.min(buf.length, off + max);
  let i = off;
  while (i < end && buf[i] !== 0) i++;
  return decodeUtf8(buf.subarray(off, i));
}

/** Byte length of `s` as UTF-8. */
export function utf8Length(s: string): number {
  let n = 0;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    n += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  }
  return n;
}

/**
 * Writes `s` as UTF-8 plus NUL at `off` into a field of `max` bytes.
 * @returns bytes written including the NUL.
 * @throws HvError `HV_ERR_INVALID_ARGUMENT` when it does not fit.
 */
export function writeCString(s: string, buf: Uint8Array, off: number, max: number, what = 'string'): number {
  const r = encodeInto(s, buf.subarray(off, off + max - 1));
  if (r.read < s.length) {
    throw new HvError('HV_ERR_INVALID_ARGUMENT', `${what} needs more than ${max - 1} bytes of UTF-8`);
  }
  buf[off + r.written] = 0;
  return r.written + 1;
}

/** Like {@link writeCString} but cuts the string (on a character boundary) to fit, as the kernel's converters do. */
export function writeCStringTruncated(s: string, buf: Uint8Array, off: number, max: number): number {
  const r = encodeInto(s, buf.subarray(off, off + max - 1));
  buf[off + r.written] = 0;
  return r.written + 1;
}
