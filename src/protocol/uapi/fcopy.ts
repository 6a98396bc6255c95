/**
 * The file copy kernel↔daemon messages of `/dev/vmbus/hv_fcopy` (Linux ≤ 6.9 drivers/hv/hv_fcopy.c and
 * tools/hv/hv_fcopy_daemon.c; include/uapi/linux/hyperv.h; reference/vmbus-core-ics.md §7.5):
 * - registration: the daemon writes a 4-byte int version (`FCOPY_CURRENT_VERSION` = 1); the kernel answers
 *   a 4-byte u32 `FCOPY_CURRENT_VERSION` (nothing for `FCOPY_VERSION_0`).
 * - requests: START_FILE_COPY as `hv_start_fcopy` (1088 bytes) with both names converted in place to
 *   NUL-terminated UTF-8; WRITE_TO_FILE as the raw `hv_do_fcopy` (6196 bytes); COMPLETE/CANCEL as the raw
 *   body received from the host (≥ the 36-byte header).
 * - reply: a 4-byte int status (HV_S_OK, HV_E_FAIL, HV_ERROR_ALREADY_EXISTS, HV_ERROR_DISK_FULL) that the
 *   kernel copies into `icmsg_hdr.status`.
 */
import { putU32le, u32le } from '../bytes.ts';
import { ProtocolError } from '../errors.ts';
import {
  CANCEL_FCOPY,
  COMPLETE_FCOPY,
  decodeDoFcopy,
  decodeFcopyOperation,
  encodeFcopyHdr,
  HV_DO_FCOPY,
  HV_START_FCOPY,
  readSafeU64,
  START_FILE_COPY,
  type StartFcopy,
  WRITE_TO_FILE,
} from '../ic/fcopy.ts';
import { readCString, writeCString } from './strings.ts';

/** `hv_fcopy_daemon` protocol versions (include/uapi/linux/hyperv.h). */
export const FCOPY_VERSION_0 = 0;
export const FCOPY_VERSION_1 = 1;
export const FCOPY_CURRENT_VERSION = FCOPY_VERSION_1;

/** Size of the registration message, the kernel's version reply and the daemon's status reply (an int). */
export const FCOPY_INT_MSG = 4;

/**
 * Linux writes at most `W_MAX_PATH - 1` (259) bytes of UTF-8 per name (`utf16s_to_utf8s` cap) and silently
 * cuts longer non-ASCII names; we fill the whole 520-byte array (519 bytes + NUL) and refuse what does not fit.
 */
export const FCOPY_UAPI_NAME_MAX = 520;

/** A kernel→daemon message as the daemon sees it. `data` is a view into the decoded buffer. */
export type UapiFcopyMessage =
  | ({ op: 'start' } & StartFcopy)
  | { op: 'write'; offset: number; size: number; data: Uint8Array }
  | { op: 'complete' }
  | { op: 'cancel' }
  | { op: 'unknown'; operation: number };

/**
 * Encodes the daemon-facing START_FILE_COPY (1088 bytes) at `offset`, names as NUL-terminated UTF-8.
 * @throws HvError `HV_ERR_INVALID_ARGUMENT` when a name needs more than 519 bytes of UTF-8.
 */
export function encodeUapiStartFcopy(m: StartFcopy, buf: Uint8Array, offset = 0): number {
  const o = HV_START_FCOPY.offsets;
  buf.fill(0, offset, offset + HV_START_FCOPY.size);
  encodeFcopyHdr(START_FILE_COPY, buf, offset);
  writeCString(m.fileName, buf, offset + o.file_name, FCOPY_UAPI_NAME_MAX, 'the file name');
  writeCString(m.pathName, buf, offset + o.path_name, FCOPY_UAPI_NAME_MAX, 'the destination folder');
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  v.setUint32(offset + o.copy_flags, m.copyFlags >>> 0, true);
  v.setUint32(offset + o.file_size, m.fileSize % 0x1_0000_0000, true);
  v.setUint32(offset + o.file_size + 4, Math.floor(m.fileSize / 0x1_0000_0000), true);
  return HV_START_FCOPY.size;
}

/**
 * Decodes one kernel→daemon message (what `hv_fcopy_daemon` reads with `pread`).
 * @throws ProtocolError when shorter than its operation's struct (36 / 1088 / 6196 bytes), a WRITE size
 *   exceeds 6144 or a u64 exceeds 2^53.
 */
export function decodeUapiFcopyMessage(msg: Uint8Array): UapiFcopyMessage {
  const op = decodeFcopyOperation(msg);
  switch (op) {
    case START_FILE_COPY: {
      if (msg.length < HV_START_FCOPY.size) {
        throw new ProtocolError(`hv_start_fcopy needs 1088 bytes, got ${msg.length}`, {
          offset: 0,
          structure: 'hv_start_fcopy',
        });
      }
      const o = HV_START_FCOPY.offsets;
      return {
        op: 'start',
        fileName: readCString(msg, o.file_name, FCOPY_UAPI_NAME_MAX),
        pathName: readCString(msg, o.path_name, FCOPY_UAPI_NAME_MAX),
        copyFlags: new DataView(msg.buffer, msg.byteOffset, msg.byteLength).getUint32(o.copy_flags, true),
        fileSize: readSafeU64(msg, o.file_size, 'hv_start_fcopy'),
      };
    }
    case WRITE_TO_FILE: {
      const d = decodeDoFcopy(msg);
      const at = HV_DO_FCOPY.offsets.data;
      return { op: 'write', offset: d.offset, size: d.size, data: msg.subarray(at, at + d.size) };
    }
    case COMPLETE_FCOPY:
      return { op: 'complete' };
    case CANCEL_FCOPY:
      return { op: 'cancel' };
    default:
      return { op: 'unknown', operation: op };
  }
}

/** Writes a 4-byte int (registration version or reply status) at 0 of `buf` and returns the 4-byte view. */
export function encodeFcopyInt(value: number, buf: Uint8Array = new Uint8Array(FCOPY_INT_MSG)): Uint8Array {
  putU32le(buf, 0, value);
  return buf.length === FCOPY_INT_MSG ? buf : buf.subarray(0, FCOPY_INT_MSG);
}

/**
 * Reads a 4-byte int message as u32 (a status HRESULT or a version).
 * @throws ProtocolError when the message is not exactly 4 bytes (the kernel rejects other lengths).
 */
export function decodeFcopyInt(msg: Uint8Array): number {
  if (msg.length !== FCOPY_INT_MSG) {
    throw new ProtocolError(`fcopy daemon messages are 4-byte ints, got ${msg.length} bytes`, {
      offset: 0,
      structure: 'hv_fcopy int',
    });
  }
  return u32le(msg, 0);
}
