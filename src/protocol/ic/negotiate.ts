/**
 * IC version negotiation (`icmsgtype` 0) body: Linux `struct icmsg_negotiate` followed by
 * `icframe_vercnt + icmsg_vercnt` `struct ic_version` entries (framework versions first).
 * Sources: Linux include/linux/hyperv.h (`struct icmsg_negotiate`, `IC_VERSION_NEGOTIATION_MAX_VER_COUNT`,
 * `ICMSG_NEGOTIATE_PKT_SIZE`), drivers/hv/channel_mgmt.c (`vmbus_prep_negotiate_resp`); FreeBSD
 * sys/dev/hyperv/utilities/vmbus_icreg.h (`struct vmbus_icmsg_negotiate`); OpenVMM hyperv_ic_protocol/src/lib.rs
 * (`NegotiateMessage`).
 */
import { HvError, ProtocolError } from '../errors.ts';
import { IC_VERSION, ICMSG_HDR, type IcVersion } from './icmsg.ts';

/**
 * Linux `struct icmsg_negotiate` (8 bytes, packed, before the flexible `icversion_data[]`):
 * `icframe_vercnt` u16 @0, `icmsg_vercnt` u16 @2, `reserved` u32 @4, `icversion_data` @8 (4 bytes each).
 */
export const ICMSG_NEGOTIATE = {
  size: 8,
  offsets: { icframe_vercnt: 0, icmsg_vercnt: 2, reserved: 4, icversion_data: 8 },
} as const;

/** Linux `IC_VERSION_NEGOTIATION_MAX_VER_COUNT`: each count above this is rejected. */
export const IC_VERSION_NEGOTIATION_MAX_VER_COUNT = 100;

/** `icmsgsize` of a negotiate reply carrying one framework and one message version (Linux sets 0x10). */
export const ICMSG_NEGOTIATE_RESPONSE_SIZE = 16;

/** A decoded negotiate body. */
export interface IcNegotiate {
  /** Framework versions (`icframe_vercnt` entries). */
  framework: IcVersion[];
  /** Message (service) versions (`icmsg_vercnt` entries). */
  message: IcVersion[];
}

/** Body bytes for the given counts: 8 + 4 × (fw + msg). */
export function icmsgNegotiateSize(fwCount: number, msgCount: number): number {
  return ICMSG_NEGOTIATE.size + IC_VERSION.size * (fwCount + msgCount);
}

/** Linux `ICMSG_NEGOTIATE_PKT_SIZE`: whole IC payload bytes, 28 + 8 + 4 × (fw + msg). */
export function icmsgNegotiatePktSize(fwCount: number, msgCount: number): number {
  return ICMSG_HDR + icmsgNegotiateSize(fwCount, msgCount);
}

/**
 * Writes the negotiate body at `offset`.
 * @returns bytes written, {@link icmsgNegotiateSize}.
 * @throws HvError `HV_ERR_INVALID_ARGUMENT` when a list holds more than 100 versions or `buf` is too small.
 */
export function encodeIcNegotiate(n: IcNegotiate, buf: Uint8Array, offset = 0): number {
  const max = IC_VERSION_NEGOTIATION_MAX_VER_COUNT;
  if (n.framework.length > max || n.message.length > max) {
    throw new HvError('HV_ERR_INVALID_ARGUMENT', `at most ${max} framework and ${max} message versions`);
  }
  const size = icmsgNegotiateSize(n.framework.length, n.message.length);
  if (offset < 0 || buf.length - offset < size) {
    throw new HvError('HV_ERR_INVALID_ARGUMENT', `negotiate body needs ${size} bytes at offset ${offset}`);
  }
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  v.setUint16(offset, n.framework.length, true);
  v.setUint16(offset + 2, n.message.length, true);
  v.setUint32(offset + 4, 0, true);
  let p = offset + ICMSG_NEGOTIATE.offsets.icversion_data;
  for (const ver of [...n.framework, ...n.message]) {
    v.setUint16(p, ver.major, true);
    v.setUint16(p + 2, ver.minor, true);
    p += IC_VERSION.size;
  }
  return size;
}

/**
 * Decodes a negotiate body (the bytes after offset 28). Allocation is bounded: at most 200 versions.
 * @throws ProtocolError when the body is shorter than 8 bytes, a count exceeds 100, or the versions run
 *   past the body.
 */
export function decodeIcNegotiate(body: Uint8Array): IcNegotiate {
  if (body.length < ICMSG_NEGOTIATE.size) {
    throw new ProtocolError(`icmsg_negotiate needs 8 bytes, got ${body.length}`, {
      offset: 0,
      structure: 'icmsg_negotiate',
    });
  }
  const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const fw = v.getUint16(0, true);
  const msg = v.getUint16(2, true);
  const max = IC_VERSION_NEGOTIATION_MAX_VER_COUNT;
  if (fw > max || msg > max) {
    throw new ProtocolError(`icmsg_negotiate counts ${fw}/${msg} exceed ${max}`, {
      offset: fw > max ? 0 : 2,
      structure: 'icmsg_negotiate',
    });
  }
  if (body.length < icmsgNegotiateSize(fw, msg)) {
    throw new ProtocolError(
      `icmsg_negotiate with ${fw}+${msg} versions needs ${icmsgNegotiateSize(fw, msg)} bytes`,
      {
        offset: ICMSG_NEGOTIATE.offsets.icversion_data,
        structure: 'icmsg_negotiate',
      },
    );
  }
  const read = (i: number): IcVersion => {
    const p = ICMSG_NEGOTIATE.offsets.icversion_data + i * IC_VERSION.size;
    return { major: v.getUint16(p, true), minor: v.getUint16(p + 2, true) };
  };
  const framework: IcVersion[] = [];
  const message: IcVersion[] = [];
  for (let i = 0; i < fw; i++) framework.push(read(i));
  for (let i = 0; i < msg; i++) message.push(read(fw + i));
  return { framework, message };
}
