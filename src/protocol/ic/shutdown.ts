/**
 * Shutdown IC body (`icmsgtype` 3, class 0e0b6031-5213-4934-818b-38d90ced39db).
 * Sources: Linux include/linux/hyperv.h (`struct shutdown_msg_data`), drivers/hv/hv_util.c
 * (`shutdown_onchannelcallback`, `sd_versions`); FreeBSD sys/dev/hyperv/utilities/vmbus_shutdown.c; OpenVMM
 * hyperv_ic_protocol/src/shutdown.rs (`ShutdownMessage`, `ShutdownFlags`).
 */
import { ProtocolError } from '../errors.ts';
import type { IcVersion } from './icmsg.ts';

/**
 * Linux `struct shutdown_msg_data` (2060 bytes, packed): `reason_code` u32 @0, `timeout_seconds` u32 @4,
 * `flags` u32 @8, `display_message` u8[2048] @12. The message's text encoding is not documented anywhere
 * (UNVERIFIED); the codec treats it as opaque bytes.
 */
export const SHUTDOWN_MSG_DATA = {
  size: 2060,
  offsets: { reason_code: 0, timeout_seconds: 4, flags: 8, display_message: 12 },
} as const;

/** Length of `display_message`, bytes. */
export const SHUTDOWN_DISPLAY_MESSAGE_SIZE = 2048;

/** Fixed part a decoder needs (reason, timeout, flags). Linux itself insists on the full 2060 bytes. */
export const SHUTDOWN_MIN_BODY = 12;

/**
 * `flags` bits (OpenVMM `ShutdownFlags`; Linux switches on the whole value: 0/1 power off, 2/3 reboot,
 * 4/5 hibernate, bit0 = force which Linux always applies).
 */
export const SHUTDOWN_FLAG_FORCE = 1;
export const SHUTDOWN_FLAG_RESTART = 2;
export const SHUTDOWN_FLAG_HIBERNATE = 4;

/** `reason_code` OpenVMM's host sends: Windows `SHTDN_REASON_FLAG_PLANNED`. */
export const SHTDN_REASON_FLAG_PLANNED = 0x80000000;

/** Message versions (Linux `SD_VERSION_1`, `SD_VERSION`, `SD_VERSION_3_1`, `SD_VERSION_3_2`). 3.2 is required for
 * the host to send a hibernate request (Linux commit "hv_utils: Add the support of hibernation"). */
export const SD_VERSION_1: IcVersion = { major: 1, minor: 0 };
export const SD_VERSION: IcVersion = { major: 3, minor: 0 };
export const SD_VERSION_3_1: IcVersion = { major: 3, minor: 1 };
export const SD_VERSION_3_2: IcVersion = { major: 3, minor: 2 };

/** A decoded shutdown body. */
export interface ShutdownMsgData {
  reason_code: number;
  timeout_seconds: number;
  flags: number;
  /** Up to 2048 bytes; on decode a view into the input (no copy). */
  display_message: Uint8Array;
}

/**
 * Writes the full 2060-byte body at `offset`; `display_message` is copied and zero-padded.
 * @returns 2060.
 * A `display_message` over 2048 bytes is truncated.
 */
export function encodeShutdownMsgData(m: ShutdownMsgData, buf: Uint8Array, offset = 0): number {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  v.setUint32(offset, m.reason_code >>> 0, true);
  v.setUint32(offset + 4, m.timeout_seconds >>> 0, true);
  v.setUint32(offset + 8, m.flags >>> 0, true);
  const msgAt = offset + SHUTDOWN_MSG_DATA.offsets.display_message;
  const msg = m.display_message.subarray(0, SHUTDOWN_DISPLAY_MESSAGE_SIZE);
  buf.set(msg, msgAt);
  buf.fill(0, msgAt + msg.length, offset + SHUTDOWN_MSG_DATA.size);
  return SHUTDOWN_MSG_DATA.size;
}

/**
 * Decodes a shutdown body. `display_message` is whatever follows byte 12, at most 2048 bytes.
 * @throws ProtocolError when the body is shorter than 12 bytes.
 */
export function decodeShutdownMsgData(body: Uint8Array): ShutdownMsgData {
  if (body.length < SHUTDOWN_MIN_BODY) {
    throw new ProtocolError(`shutdown_msg_data needs at least 12 bytes, got ${body.length}`, {
      offset: 0,
      structure: 'shutdown_msg_data',
    });
  }
  const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
  return {
    reason_code: v.getUint32(0, true),
    timeout_seconds: v.getUint32(4, true),
    flags: v.getUint32(8, true),
    display_message: body.subarray(12, 12 + SHUTDOWN_DISPLAY_MESSAGE_SIZE),
  };
}
