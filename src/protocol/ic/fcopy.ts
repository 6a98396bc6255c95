/**
 * File copy IC ("Guest Service Interface", icmsgtype 7, message version 1.1): the bodies the host sends
 * after the 28-byte pipe + icmsg header. Offsets below are from the body start (payload offset 28).
 * Sources: Linux include/uapi/linux/hyperv.h (`struct hv_fcopy_hdr`, `struct hv_start_fcopy`,
 * `struct hv_do_fcopy`, `enum hv_fcopy_op`, `W_MAX_PATH`, `DATA_FRAGMENT`, `OVER_WRITE`, `CREATE_PATH`),
 * drivers/hv/hv_fcopy.c (`WIN8_SRV_VERSION` 1.1); reference/vmbus-core-ics.md §6.8.
 * File and path names travel as NUL-terminated UTF-16LE in 260-unit arrays.
 */
import { u32le } from '../bytes.ts';
import { HvError, ProtocolError } from '../errors.ts';
import { readUtf16Z, writeUtf16Z } from '../uapi/strings.ts';

/** `enum hv_fcopy_op`. */
export const START_FILE_COPY = 0;
export const WRITE_TO_FILE = 1;
export const COMPLETE_FCOPY = 2;
export const CANCEL_FCOPY = 3;

/** `copy_flags` bits. */
export const OVER_WRITE = 0x1;
export const CREATE_PATH = 0x2;

/** Name arrays hold this many UTF-16 units, NUL included (`W_MAX_PATH`). */
export const W_MAX_PATH = 260;
/** Bytes of file data per WRITE_TO_FILE (`DATA_FRAGMENT`, 6 KiB). */
export const DATA_FRAGMENT = 6 * 1024;

/** Message version 1.1 (Linux `WIN8_SRV_VERSION`), framework 3.0. */
export const FCOPY_VERSION_1_1 = { major: 1, minor: 1 } as const;

/** `struct hv_fcopy_hdr` (36 bytes): `operation` u32 @0, `service_id0` GUID @4, `service_id1` GUID @20 (unused). */
export const HV_FCOPY_HDR = { size: 36, offsets: { operation: 0, service_id0: 4, service_id1: 20 } } as const;

/**
 * `struct hv_start_fcopy` (1088 bytes, packed): hdr @0, `file_name[260]` u16 @36, `path_name[260]` u16 @556,
 * `copy_flags` u32 @1076, `file_size` u64 @1080.
 */
export const HV_START_FCOPY = {
  size: 1088,
  offsets: { hdr: 0, file_name: 36, path_name: 556, copy_flags: 1076, file_size: 1080 },
} as const;

/**
 * `struct hv_do_fcopy` (6196 bytes, packed): hdr @0, `pad` u32 @36 (kept from the unpacked original, which
 * aligned `offset` to 8), `offset` u64 @40, `size` u32 @48, `data[6144]` @52.
 */
export const HV_DO_FCOPY = {
  size: 6196,
  offsets: { hdr: 0, pad: 36, offset: 40, size: 48, data: 52 },
} as const;

/** START_FILE_COPY as the host means it. */
export interface StartFcopy {
  fileName: string;
  pathName: string;
  /** OVER_WRITE | CREATE_PATH. */
  copyFlags: number;
  /** Bytes (≤ 2^53 − 1). */
  fileSize: number;
}

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** Writes the 36-byte header (service ids zero) at `offset`. */
export function encodeFcopyHdr(operation: number, buf: Uint8Array, offset = 0): number {
  buf.fill(0, offset, offset + HV_FCOPY_HDR.size);
  view(buf).setUint32(offset, operation, true);
  return HV_FCOPY_HDR.size;
}

/**
 * Encodes a START_FILE_COPY body (1088 bytes) at `offset`.
 * @returns 1088.
 * @throws HvError `HV_ERR_INVALID_ARGUMENT` when a name exceeds 259 UTF-16 units or the size is not a safe integer.
 */
export function encodeStartFcopy(m: StartFcopy, buf: Uint8Array, offset = 0): number {
  if (!Number.isSafeInteger(m.fileSize) || m.fileSize < 0) {
    throw new HvError('HV_ERR_INVALID_ARGUMENT', `file size ${m.fileSize} is not a byte count`);
  }
  const o = HV_START_FCOPY.offsets;
  encodeFcopyHdr(START_FILE_COPY, buf, offset);
  buf.fill(0, offset + o.file_name, offset + o.copy_flags);
  writeUtf16Z(m.fileName, buf, offset + o.file_name, 2 * W_MAX_PATH, 'the file name');
  writeUtf16Z(m.pathName, buf, offset + o.path_name, 2 * W_MAX_PATH, 'the destination folder');
  const v = view(buf);
  v.setUint32(offset + o.copy_flags, m.copyFlags >>> 0, true);
  v.setUint32(offset + o.file_size, m.fileSize % 0x1_0000_0000, true);
  v.setUint32(offset + o.file_size + 4, Math.floor(m.fileSize / 0x1_0000_0000), true);
  return HV_START_FCOPY.size;
}

/**
 * Writes a WRITE_TO_FILE header (pad 0, `offset`, `size`) at `at`; the caller puts the data at `at + 52`.
 * Always returns 6196 (Linux sends and expects the whole struct).
 * @throws HvError `HV_ERR_INVALID_ARGUMENT` when `size` > 6144 or `fileOffset` is not a safe integer.
 */
export function encodeDoFcopyHeader(fileOffset: number, size: number, buf: Uint8Array, at = 0): number {
  if (size > DATA_FRAGMENT || size < 0 || !Number.isSafeInteger(fileOffset) || fileOffset < 0) {
    throw new HvError(
      'HV_ERR_INVALID_ARGUMENT',
      `bad WRITE_TO_FILE fragment (offset ${fileOffset}, ${size} bytes)`,
    );
  }
  const o = HV_DO_FCOPY.offsets;
  const v = view(buf);
  v.setUint32(at, WRITE_TO_FILE, true);
  buf.fill(0, at + 4, at + o.offset);
  v.setUint32(at + o.offset, fileOffset % 0x1_0000_0000, true);
  v.setUint32(at + o.offset + 4, Math.floor(fileOffset / 0x1_0000_0000), true);
  v.setUint32(at + o.size, size, true);
  return HV_DO_FCOPY.size;
}

/** Reads a u64 that must be ≤ 2^53 − 1. @throws ProtocolError otherwise. */
export function readSafeU64(buf: Uint8Array, offset: number, structure: string): number {
  const hi = u32le(buf, offset + 4);
  if (hi > 0x1fffff) throw new ProtocolError(`u64 at ${offset} exceeds 2^53`, { offset, structure });
  return hi * 0x1_0000_0000 + u32le(buf, offset);
}

/**
 * The operation of a body.
 * @throws ProtocolError when the body is shorter than the 36-byte header.
 */
export function decodeFcopyOperation(body: Uint8Array): number {
  if (body.length < HV_FCOPY_HDR.size) {
    throw new ProtocolError(`hv_fcopy_hdr needs 36 bytes, got ${body.length}`, {
      offset: 0,
      structure: 'hv_fcopy_hdr',
    });
  }
  return u32le(body, 0);
}

/**
 * Decodes a START_FILE_COPY body (UTF-16 names, unpaired surrogates dropped as Linux `utf16s_to_utf8s` does).
 * @throws ProtocolError when shorter than 1088 bytes or the size exceeds 2^53.
 */
export function decodeStartFcopy(body: Uint8Array): StartFcopy {
  if (body.length < HV_START_FCOPY.size) {
    throw new ProtocolError(`hv_start_fcopy needs 1088 bytes, got ${body.length}`, {
      offset: 0,
      structure: 'hv_start_fcopy',
    });
  }
  const o = HV_START_FCOPY.offsets;
  return {
    fileName: readUtf16Z(body, o.file_name, 2 * W_MAX_PATH),
    pathName: readUtf16Z(body, o.path_name, 2 * W_MAX_PATH),
    copyFlags: view(body).getUint32(o.copy_flags, true),
    fileSize: readSafeU64(body, o.file_size, 'hv_start_fcopy'),
  };
}

/** WRITE_TO_FILE header fields; the data are `body.subarray(52, 52 + size)`. */
export interface DoFcopy {
  offset: number;
  size: number;
}

/**
 * Decodes a WRITE_TO_FILE header.
 * @throws ProtocolError when shorter than 6196 bytes, `size` > 6144 or `offset` > 2^53.
 */
export function decodeDoFcopy(body: Uint8Array): DoFcopy {
  if (body.length < HV_DO_FCOPY.size) {
    throw new ProtocolError(`hv_do_fcopy needs 6196 bytes, got ${body.length}`, {
      offset: 0,
      structure: 'hv_do_fcopy',
    });
  }
  const o = HV_DO_FCOPY.offsets;
  const size = u32le(body, o.size);
  if (size > DATA_FRAGMENT) {
    throw new ProtocolError(`hv_do_fcopy size ${size} exceeds ${DATA_FRAGMENT}`, {
      offset: o.size,
      structure: 'hv_do_fcopy',
    });
  }
  return { offset: readSafeU64(body, o.offset, 'hv_do_fcopy'), size };
}
