/**
 * Heartbeat IC body (`icmsgtype` 1, class 57164f39-9115-4e78-ab55-382f3bd5422d).
 * Sources: Linux include/linux/hyperv.h (`struct heartbeat_msg_data`), drivers/hv/hv_util.c
 * (`heartbeat_onchannelcallback`: needs only `seq_num`, replies `seq_num + 1`); OpenVMM
 * hyperv_ic_protocol/src/heartbeat.rs (`HeartbeatMessage`, `ApplicationState`).
 */
import { ProtocolError } from '../errors.ts';
import type { IcVersion } from './icmsg.ts';

/**
 * Linux `struct heartbeat_msg_data` (40 bytes, packed): `seq_num` u64 @0, `reserved` u32[8] @8.
 * OpenVMM's `HeartbeatMessage` is 16 bytes: the same `seq_num`, then `application_state` u32 @8 (Linux's
 * `reserved[0]`) and 4 reserved bytes. Linux and FreeBSD guests echo whatever the host put at @8.
 */
export const HEARTBEAT_MSG_DATA = { size: 40, offsets: { seq_num: 0, reserved: 8 } } as const;

/** Smallest body a guest accepts: `seq_num` only (Linux checks `ICMSG_HDR + sizeof(u64)`, FreeBSD the same). */
export const HEARTBEAT_MIN_BODY = 8;

/** OpenVMM `ApplicationState` values at body offset 8. */
export const HEARTBEAT_APPLICATION_STATE = { UNKNOWN: 0, HEALTHY: 1, CRITICAL: 2, STOPPED: 3 } as const;

/** Message versions: 1.0 (WS2008) and 3.0 (Linux `HB_VERSION_1`, `HB_VERSION`). */
export const HB_VERSION_1: IcVersion = { major: 1, minor: 0 };
export const HB_VERSION: IcVersion = { major: 3, minor: 0 };

/** A decoded heartbeat body. */
export interface HeartbeatMsgData {
  /** u64 sequence number (bigint: the guest increments it modulo 2^64). */
  seq_num: bigint;
  /** u32 at @8 (OpenVMM application_state), 0 when the body is shorter than 12 bytes. */
  application_state: number;
}

/**
 * Writes a full 40-byte body at `offset` (reserved words after `application_state` zeroed).
 * @returns 40.
 */
export function encodeHeartbeatMsgData(m: HeartbeatMsgData, buf: Uint8Array, offset = 0): number {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  v.setBigUint64(offset, BigInt.asUintN(64, m.seq_num), true);
  v.setUint32(offset + 8, m.application_state >>> 0, true);
  buf.fill(0, offset + 12, offset + HEARTBEAT_MSG_DATA.size);
  return HEARTBEAT_MSG_DATA.size;
}

/**
 * Decodes a heartbeat body.
 * @throws ProtocolError when the body is shorter than 8 bytes.
 */
export function decodeHeartbeatMsgData(body: Uint8Array): HeartbeatMsgData {
  if (body.length < HEARTBEAT_MIN_BODY) {
    throw new ProtocolError(`heartbeat_msg_data needs 8 bytes, got ${body.length}`, {
      offset: 0,
      structure: 'heartbeat_msg_data',
    });
  }
  const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
  return {
    seq_num: v.getBigUint64(0, true),
    application_state: body.length >= 12 ? v.getUint32(8, true) : 0,
  };
}

/**
 * Adds 1 to the u64 `seq_num` in place (modulo 2^64), as a guest answers; no allocation.
 * The caller guarantees 8 bytes at `offset`.
 */
export function incrementHeartbeatSeq(body: Uint8Array, offset = 0): void {
  const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const lo = (v.getUint32(offset, true) + 1) >>> 0;
  v.setUint32(offset, lo, true);
  if (lo === 0) v.setUint32(offset + 4, (v.getUint32(offset + 4, true) + 1) >>> 0, true);
}
