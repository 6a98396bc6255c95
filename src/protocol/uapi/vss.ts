/**
 * The VSS kernel↔daemon messages of `/dev/vmbus/hv_vss` (Linux drivers/hv/hv_snapshot.c, tools/hv/hv_vss_daemon.c,
 * include/uapi/linux/hyperv.h `struct hv_vss_msg`; reference/vmbus-core-ics.md §7.4). Every daemon write is
 * exactly 12 bytes:
 * - registration: `operation` = VSS_OP_REGISTER1 (129); the kernel answers a 4-byte u32 (VSS_OP_REGISTER1;
 *   the daemon only checks the length). Legacy VSS_OP_REGISTER (128) gets no answer.
 * - requests: the kernel sends a zeroed 12-byte `hv_vss_msg` with `operation` FREEZE, THAW or HOT_BACKUP.
 * - replies: the same 12 bytes with the int `error` @0 = 0 or HV_E_FAIL.
 */
import { ProtocolError } from '../errors.ts';
import { HV_VSS_MSG, VSS_OP_REGISTER1 } from '../ic/vss.ts';

/** Length of the kernel's answer to REGISTER1 (a u32). */
export const VSS_REGISTER_REPLY_SIZE = 4;

/** Encodes a 12-byte message with `operation` set (requests, registration). */
export function encodeUapiVssOp(
  operation: number,
  buf: Uint8Array = new Uint8Array(HV_VSS_MSG.size),
): Uint8Array {
  buf.fill(0, 0, HV_VSS_MSG.size);
  buf[0] = operation & 0xff;
  return buf.subarray(0, HV_VSS_MSG.size);
}

/** Encodes a 12-byte daemon reply: int `error` @0, `flags` @8. */
export function encodeUapiVssReply(
  error: number,
  flags = 0,
  buf: Uint8Array = new Uint8Array(HV_VSS_MSG.size),
): Uint8Array {
  buf.fill(0, 0, HV_VSS_MSG.size);
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  v.setUint32(0, error >>> 0, true);
  v.setUint32(8, flags >>> 0, true);
  return buf.subarray(0, HV_VSS_MSG.size);
}

/** The kernel's 4-byte answer to REGISTER1. */
export function encodeVssRegisterReply(): Uint8Array {
  const b = new Uint8Array(VSS_REGISTER_REPLY_SIZE);
  new DataView(b.buffer).setUint32(0, VSS_OP_REGISTER1, true);
  return b;
}

/** A 12-byte daemon write, read both ways (as the kernel does: op byte for registration, int for replies). */
export interface UapiVssWrite {
  /** Byte 0 (`vss_hdr.operation`). */
  operation: number;
  /** Bytes 0..3 as u32 (`error`). */
  error: number;
  flags: number;
}

/**
 * Decodes a daemon write.
 * @throws ProtocolError unless exactly 12 bytes (the kernel returns EINVAL for other lengths).
 */
export function decodeUapiVssWrite(msg: Uint8Array): UapiVssWrite {
  if (msg.length !== HV_VSS_MSG.size) {
    throw new ProtocolError(`hv_vss_msg writes must be 12 bytes, got ${msg.length}`, {
      offset: 0,
      structure: 'hv_vss_msg',
    });
  }
  const v = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  return { operation: msg[0]!, error: v.getUint32(0, true), flags: v.getUint32(8, true) };
}
