/**
 * The integration-component (IC) message header shared by every utility service, and the framing of an IC
 * packet payload: `vmbuspipe_hdr` (8) + `icmsg_hdr` (20) + body, body at byte 28 (Linux `ICMSG_HDR`).
 * Sources: Linux include/linux/hyperv.h (`struct icmsg_hdr`, `struct ic_version`, `ICMSGTYPE_*`,
 * `ICMSGHDRFLAG_*`), include/uapi/linux/hyperv.h (`HV_S_OK`, `HV_E_FAIL`, ...); OpenVMM
 * vm/devices/hyperv_ic_protocol/src/lib.rs (`Header`, `MessageType`, `HeaderFlags`, `Status`).
 */
import { putU16le, putU32le, u16le, u32le } from '../bytes.ts';
import { ProtocolError } from '../errors.ts';
import { decodePipeHdr, encodePipeHdr, PIPE_PACKET_TYPE, VMBUSPIPE_HDR } from '../vmbus/pipe.ts';

/** Linux `struct ic_version`: `major` u16 @0, `minor` u16 @2 (4 bytes; major first on the wire). */
export const IC_VERSION = { size: 4, offsets: { major: 0, minor: 2 } } as const;

/**
 * Linux `struct icmsg_hdr` (20 bytes, packed), OpenVMM `Header`. Offsets are from the start of this struct,
 * which sits at byte 8 of the packet payload, after the pipe header.
 */
export const ICMSG_HDR_LAYOUT = {
  size: 20,
  offsets: {
    icverframe: 0,
    icmsgtype: 4,
    icvermsg: 6,
    icmsgsize: 10,
    status: 12,
    ictransaction_id: 16,
    icflags: 17,
    reserved: 18,
  },
} as const;

/** Offset of the IC body in the packet payload: pipe header + icmsg_hdr = 28 (Linux `ICMSG_HDR`). */
export const ICMSG_HDR = VMBUSPIPE_HDR.size + ICMSG_HDR_LAYOUT.size;

/** `icmsgtype` values (Linux `ICMSGTYPE_*`; RDV and VM_SESSION from OpenVMM `MessageType`). */
export const ICMSGTYPE_NEGOTIATE = 0;
export const ICMSGTYPE_HEARTBEAT = 1;
export const ICMSGTYPE_KVPEXCHANGE = 2;
export const ICMSGTYPE_SHUTDOWN = 3;
export const ICMSGTYPE_TIMESYNC = 4;
export const ICMSGTYPE_VSS = 5;
export const ICMSGTYPE_RDV = 6;
export const ICMSGTYPE_FCOPY = 7;
export const ICMSGTYPE_VM_SESSION = 8;

/** `icflags` bits (Linux `ICMSGHDRFLAG_*`). Requests carry TRANSACTION|REQUEST, replies TRANSACTION|RESPONSE. */
export const ICMSGHDRFLAG_TRANSACTION = 1;
export const ICMSGHDRFLAG_REQUEST = 2;
export const ICMSGHDRFLAG_RESPONSE = 4;

/** HRESULT status values carried in `icmsg_hdr.status` (include/uapi/linux/hyperv.h). */
export const HV_S_OK = 0x00000000;
export const HV_E_FAIL = 0x80004005;
export const HV_S_CONT = 0x80070103;
export const HV_ERROR_NOT_SUPPORTED = 0x80070032;
export const HV_ERROR_MACHINE_LOCKED = 0x800704f7;
export const HV_ERROR_DEVICE_NOT_CONNECTED = 0x8007048f;
export const HV_INVALIDARG = 0x80070057;
export const HV_GUID_NOTFOUND = 0x80041002;
export const HV_ERROR_ALREADY_EXISTS = 0x80070050;
export const HV_ERROR_DISK_FULL = 0x80070070;

/** A protocol version `major.minor` (`struct ic_version`). */
export interface IcVersion {
  readonly major: number;
  readonly minor: number;
}

/** A decoded `icmsg_hdr` (field names are Linux's). */
export interface IcMsgHdr {
  icverframe: IcVersion;
  icmsgtype: number;
  icvermsg: IcVersion;
  /** Body bytes after the 28-byte header block, as the sender claims them. */
  icmsgsize: number;
  /** HRESULT, set by the responder. */
  status: number;
  ictransaction_id: number;
  icflags: number;
}

/** A decoded IC packet payload. `body` is a view into the decoded buffer (no copy). */
export interface IcMessage {
  hdr: IcMsgHdr;
  /** Bytes after offset 28 up to the end given by the pipe header's `msgsize`. */
  body: Uint8Array;
}

/** Orders versions: negative when a < b, 0 when equal, positive when a > b. */
export function compareIcVersions(a: IcVersion, b: IcVersion): number {
  return a.major - b.major || a.minor - b.minor;
}

/** `major.minor` text, as Linux logs it and Get-VMIntegrationService shows it. */
export function formatIcVersion(v: IcVersion): string {
  return `${v.major}.${v.minor}`;
}

/**
 * Writes pipe header (DATA, `msgsize` = 20 + `bodyLength`) and `icmsg_hdr` at `offset`; the caller writes the body
 * at `offset + ICMSG_HDR`. `icmsgsize` is written as given (Linux replies keep a size unrelated to the pipe length).
 * @returns the total packet payload length, `28 + bodyLength` bytes.
 */
export function encodeIcMessageHeader(
  hdr: IcMsgHdr,
  bodyLength: number,
  buf: Uint8Array,
  offset = 0,
): number {
  encodePipeHdr({ flags: PIPE_PACKET_TYPE.DATA, msgsize: ICMSG_HDR_LAYOUT.size + bodyLength }, buf, offset);
  encodeIcMsgHdr(hdr, buf, offset + VMBUSPIPE_HDR.size);
  return ICMSG_HDR + bodyLength;
}

/** Writes the 20-byte `icmsg_hdr` at `offset` (reserved bytes zeroed). */
export function encodeIcMsgHdr(hdr: IcMsgHdr, buf: Uint8Array, offset = 0): void {
  const o = ICMSG_HDR_LAYOUT.offsets;
  putU16le(buf, offset + o.icverframe, hdr.icverframe.major);
  putU16le(buf, offset + o.icverframe + 2, hdr.icverframe.minor);
  putU16le(buf, offset + o.icmsgtype, hdr.icmsgtype);
  putU16le(buf, offset + o.icvermsg, hdr.icvermsg.major);
  putU16le(buf, offset + o.icvermsg + 2, hdr.icvermsg.minor);
  putU16le(buf, offset + o.icmsgsize, hdr.icmsgsize);
  putU32le(buf, offset + o.status, hdr.status);
  buf[offset + o.ictransaction_id] = hdr.ictransaction_id;
  buf[offset + o.icflags] = hdr.icflags;
  putU16le(buf, offset + o.reserved, 0);
}

/**
 * Reads the 20-byte `icmsg_hdr` at `offset`.
 * @throws ProtocolError when fewer than 20 bytes remain.
 */
export function decodeIcMsgHdr(buf: Uint8Array, offset = 0): IcMsgHdr {
  if (offset < 0 || buf.length - offset < ICMSG_HDR_LAYOUT.size) {
    throw new ProtocolError(`icmsg_hdr needs 20 bytes, got ${Math.max(0, buf.length - offset)}`, {
      offset,
      structure: 'icmsg_hdr',
    });
  }
  const o = ICMSG_HDR_LAYOUT.offsets;
  return {
    icverframe: { major: u16le(buf, offset + o.icverframe), minor: u16le(buf, offset + o.icverframe + 2) },
    icmsgtype: u16le(buf, offset + o.icmsgtype),
    icvermsg: { major: u16le(buf, offset + o.icvermsg), minor: u16le(buf, offset + o.icvermsg + 2) },
    icmsgsize: u16le(buf, offset + o.icmsgsize),
    status: u32le(buf, offset + o.status),
    ictransaction_id: buf[offset + o.ictransaction_id]!,
    icflags: buf[offset + o.icflags]!,
  };
}

/**
 * Decodes an IC packet payload: pipe header, `icmsg_hdr`, and the body as bounded by the pipe `msgsize`
 * (the exact length; the VMBus payload may carry up to 7 padding bytes more). When `payload` is only the
 * first bytes of a `fullLength`-byte payload (a channel reading prefixes), `msgsize` is checked against
 * `fullLength` and `body` holds what is present.
 * @throws ProtocolError when the payload is shorter than 28 bytes, the pipe type is not DATA, or `msgsize`
 *   is below 20 or runs past the payload.
 */
export function decodeIcMessage(payload: Uint8Array, fullLength = payload.length): IcMessage {
  const pipe = decodePipeHdr(payload, 0, fullLength);
  if (pipe.flags !== PIPE_PACKET_TYPE.DATA) {
    throw new ProtocolError(`IC pipe packet type ${pipe.flags}, expected DATA (1)`, {
      offset: 0,
      structure: 'vmbuspipe_hdr',
    });
  }
  if (pipe.msgsize < ICMSG_HDR_LAYOUT.size) {
    throw new ProtocolError(`IC pipe msgsize ${pipe.msgsize} is smaller than icmsg_hdr (20)`, {
      offset: 4,
      structure: 'vmbuspipe_hdr',
    });
  }
  const hdr = decodeIcMsgHdr(payload, VMBUSPIPE_HDR.size);
  return { hdr, body: payload.subarray(ICMSG_HDR, VMBUSPIPE_HDR.size + pipe.msgsize) };
}
