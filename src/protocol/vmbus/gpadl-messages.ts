/**
 * GPADL range encoding and its split over GPADL_HEADER / GPADL_BODY messages. Linux drivers/hv/channel.c
 * (`create_gpadl_header`): one `struct gpa_range` {byte_count u32, byte_offset u32, pfn_array u64[]} with
 * byte_offset 0, at most 26 PFNs in the header message and 28 in each body (240-byte message limit);
 * `range_buflen` (u16) counts the range header and every PFN. OpenVMM vmbus_server channels.rs checks the
 * ranges the same way {@link parseGpaRanges} does.
 */
import { HvError, ProtocolError } from '../errors.ts';
import {
  CHANNELMSG_GPADL_BODY,
  CHANNELMSG_GPADL_HEADER,
  type GpadlBody,
  type GpadlHeader,
} from './channel-messages.ts';
import { GPADL_BODY_MAX_PFNS, GPADL_HEADER_MAX_PFNS } from './constants.ts';
import { type GpaRange, gpaRangePageCount, HV_HYP_PAGE_SIZE } from './packet.ts';

/** Largest PFN count one range can describe: `range_buflen` is a u16 (8 + 8 × n ≤ 65535). */
export const GPADL_MAX_PFNS = Math.floor((0xffff - 8) / 8);

/**
 * The GPADL_HEADER and GPADL_BODY messages that create GPADL `gpadl` on `childRelid` over `pfns`, one range
 * covering `pfns.length` whole pages (as Linux and FreeBSD send).
 * @throws HvError HV_ERR_INVALID_ARGUMENT for no pages, more than {@link GPADL_MAX_PFNS}, or a PFN that is not
 *   an integer in [0, 2^52).
 */
export function gpadlMessages(
  childRelid: number,
  gpadl: number,
  pfns: ArrayLike<number>,
): [GpadlHeader, ...GpadlBody[]] {
  const n = pfns.length;
  if (n === 0 || n > GPADL_MAX_PFNS) {
    throw new HvError('HV_ERR_INVALID_ARGUMENT', `a GPADL needs 1..${GPADL_MAX_PFNS} pages, got ${n}`);
  }
  const words = new Uint8Array(8 + 8 * n);
  const dv = new DataView(words.buffer);
  dv.setUint32(0, n * HV_HYP_PAGE_SIZE, true);
  dv.setUint32(4, 0, true);
  for (let i = 0; i < n; i++) {
    const p = pfns[i]!;
    if (!Number.isInteger(p) || p < 0 || p >= 2 ** 52) {
      throw new HvError('HV_ERR_INVALID_ARGUMENT', `PFN ${p} is not an integer in [0, 2^52)`);
    }
    dv.setUint32(8 + 8 * i, p >>> 0, true);
    dv.setUint32(12 + 8 * i, Math.floor(p / 0x1_0000_0000), true);
  }
  const headerBytes = 8 + 8 * Math.min(n, GPADL_HEADER_MAX_PFNS);
  const out: [GpadlHeader, ...GpadlBody[]] = [
    {
      msgtype: CHANNELMSG_GPADL_HEADER,
      childRelid,
      gpadl,
      rangeBuflen: words.length,
      rangecount: 1,
      data: words.slice(0, headerBytes),
    },
  ];
  for (let off = headerBytes; off < words.length; off += 8 * GPADL_BODY_MAX_PFNS) {
    const end = Math.min(words.length, off + 8 * GPADL_BODY_MAX_PFNS);
    out.push({ msgtype: CHANNELMSG_GPADL_BODY, msgnumber: 0, gpadl, data: words.slice(off, end) });
  }
  return out;
}

/**
 * Parses `rangecount` ranges from the accumulated range bytes (`range_buflen` bytes from header + bodies).
 * Each range must have byte_count > 0, byte_offset < 4096, exactly ceil((offset + count) / 4096) PFNs each
 * below 2^52, and the ranges must use every byte.
 * @throws ProtocolError (structure `gpa_range`) on any violation.
 */
export function parseGpaRanges(data: Uint8Array, rangecount: number, channel = -1): GpaRange[] {
  const fail = (msg: string, offset: number): never => {
    throw new ProtocolError(msg, { channel, offset, structure: 'gpa_range' });
  };
  if (rangecount === 0) fail('GPADL with no ranges', 0);
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const ranges: GpaRange[] = [];
  let off = 0;
  for (let r = 0; r < rangecount; r++) {
    if (off + 8 > data.length) fail(`range ${r} header runs past range_buflen`, off);
    const byteCount = dv.getUint32(off, true);
    const byteOffset = dv.getUint32(off + 4, true);
    if (byteCount === 0) fail(`range ${r} has byte_count 0`, off);
    if (byteOffset >= HV_HYP_PAGE_SIZE)
      fail(`range ${r} byte_offset ${byteOffset} is not below 4096`, off + 4);
    const count = gpaRangePageCount(byteOffset, byteCount);
    off += 8;
    if (off + 8 * count > data.length) fail(`range ${r} needs ${count} PFNs past range_buflen`, off);
    const pfns = new Array<number>(count);
    for (let i = 0; i < count; i++, off += 8) {
      const hi = dv.getUint32(off + 4, true);
      if (hi >= 0x100000) fail(`PFN ${i} of range ${r} exceeds 2^52`, off);
      pfns[i] = hi * 0x1_0000_0000 + dv.getUint32(off, true);
    }
    ranges.push({ byteCount, byteOffset, pfns });
  }
  if (off !== data.length) fail(`ranges use ${off} of ${data.length} range_buflen bytes`, off);
  return ranges;
}
