/**
 * Fixed-format sense data (SPC-4 §4.5.3, response code 0x70), 18 bytes as OpenVMM's `SenseData`:
 *   @0 response code 0x70 (| 0x80 VALID), @2 sense key (low 4 bits), @3 information u32 BE,
 *   @7 additional sense length (10), @8 command-specific u32, @12 ASC, @13 ASCQ, @14 FRU, @15..17 SKS.
 */
import { ProtocolError } from '../errors.ts';

export const FIXED_SENSE_SIZE = 18;
export const SENSE_RESPONSE_CODE_CURRENT_FIXED = 0x70;

export interface SenseData {
  senseKey: number;
  asc: number;
  ascq: number;
}

/** Writes fixed-format sense into `out` at `offset` (18 bytes, truncated to what fits). */
export function writeFixedSense(out: Uint8Array, offset: number, s: SenseData): number {
  const n = Math.min(FIXED_SENSE_SIZE, out.length - offset);
  out.fill(0, offset, offset + n);
  const set = (i: number, b: number) => {
    if (i < n) out[offset + i] = b;
  };
  set(0, SENSE_RESPONSE_CODE_CURRENT_FIXED);
  set(2, s.senseKey & 0x0f);
  set(7, FIXED_SENSE_SIZE - 8);
  set(12, s.asc);
  set(13, s.ascq);
  return n;
}

/**
 * Reads sense key / ASC / ASCQ from fixed (0x70/0x71) or descriptor (0x72/0x73) sense.
 * @throws ProtocolError when too short for its format or the response code is unknown.
 */
export function decodeSense(bytes: Uint8Array): SenseData {
  const code = (bytes[0] ?? 0) & 0x7f;
  if (code === 0x70 || code === 0x71) {
    if (bytes.length < 14)
      throw new ProtocolError(`fixed sense of ${bytes.length} bytes < 14`, {
        offset: 0,
        structure: 'sense_data',
      });
    return { senseKey: bytes[2]! & 0x0f, asc: bytes[12]!, ascq: bytes[13]! };
  }
  if (code === 0x72 || code === 0x73) {
    if (bytes.length < 4)
      throw new ProtocolError('descriptor sense < 4 bytes', { offset: 0, structure: 'sense_data' });
    return { senseKey: bytes[1]! & 0x0f, asc: bytes[2]!, ascq: bytes[3]! };
  }
  throw new ProtocolError(`sense response code 0x${code.toString(16)} unknown`, {
    offset: 0,
    structure: 'sense_data',
  });
}
