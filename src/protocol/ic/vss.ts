/**
 * VSS (backup) IC, icmsgtype 5, message version 5.0: the 12-byte `hv_vss_msg` body after the 28-byte
 * pipe + icmsg header. Layout (offsets from the body start, payload offset 28): `operation` u8 @0,
 * `reserved[7]` @1, union @8 { `hv_vss_check_feature.flags` u32, `hv_vss_check_dm_info.flags` u32 }.
 * The kernel↔daemon form (include/uapi/linux/hyperv.h `struct hv_vss_msg`) is the same 12 bytes, with the
 * first 4 bytes read as the int `error` in daemon replies (see protocol/uapi/vss.ts).
 * Sources: Linux include/uapi/linux/hyperv.h (`enum hv_vss_op`, `struct hv_vss_hdr`, `struct hv_vss_msg`,
 * `VSS_HBU_NO_AUTO_RECOVERY`), drivers/hv/hv_snapshot.c (VSS_VERSION 5.0); FreeBSD hv_snapshot.c;
 * reference/vmbus-core-ics.md §6.7.
 */
import { ProtocolError } from '../errors.ts';

/** `enum hv_vss_op`. */
export const VSS_OP_CREATE = 0;
export const VSS_OP_DELETE = 1;
export const VSS_OP_HOT_BACKUP = 2;
export const VSS_OP_GET_DM_INFO = 3;
export const VSS_OP_BU_COMPLETE = 4;
export const VSS_OP_FREEZE = 5;
export const VSS_OP_THAW = 6;
export const VSS_OP_AUTO_RECOVER = 7;
/** Daemon registration (uapi only): legacy form gets no reply, REGISTER1 gets a 4-byte version. */
export const VSS_OP_REGISTER = 128;
export const VSS_OP_REGISTER1 = 129;

/** `hv_vss_check_feature.flags` the guest returns for HOT_BACKUP (Linux `VSS_HBU_NO_AUTO_RECOVERY`). */
export const VSS_HBU_NO_AUTO_RECOVERY = 0x00000005;

/** Message version 5.0, the only one Linux and FreeBSD speak. */
export const VSS_VERSION_5_0 = { major: 5, minor: 0 } as const;

/** `struct hv_vss_msg` (12 bytes): `operation` u8 @0 (or int `error` @0 in daemon replies), `flags` u32 @8. */
export const HV_VSS_MSG = { size: 12, offsets: { operation: 0, error: 0, reserved: 1, flags: 8 } } as const;

/** A decoded VSS body. */
export interface VssMsg {
  operation: number;
  flags: number;
}

/** Writes the 12-byte body at `offset` (reserved zero). @returns 12. */
export function encodeVssMsg(m: VssMsg, buf: Uint8Array, offset = 0): number {
  buf.fill(0, offset, offset + HV_VSS_MSG.size);
  buf[offset] = m.operation & 0xff;
  new DataView(buf.buffer, buf.byteOffset, buf.byteLength).setUint32(offset + 8, m.flags >>> 0, true);
  return HV_VSS_MSG.size;
}

/**
 * Decodes a 12-byte VSS body (longer bodies: the first 12 bytes).
 * @throws ProtocolError when shorter than 12 bytes.
 */
export function decodeVssMsg(body: Uint8Array): VssMsg {
  if (body.length < HV_VSS_MSG.size) {
    throw new ProtocolError(`hv_vss_msg needs 12 bytes, got ${body.length}`, {
      offset: 0,
      structure: 'hv_vss_msg',
    });
  }
  return {
    operation: body[0]!,
    flags: new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(8, true),
  };
}
