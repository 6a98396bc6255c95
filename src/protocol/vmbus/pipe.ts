/**
 * The pipe header that prefixes every inband payload on a pipe-mode channel (offer flag
 * `VMBUS_CHANNEL_NAMED_PIPE_MODE`), and the pipe modes of an offer.
 * Sources: Linux include/linux/hyperv.h (`struct vmbuspipe_hdr`, `VMBUS_PIPE_TYPE_*`, `MAX_PIPE_DATA_PAYLOAD`);
 * OpenVMM vm/devices/vmbus/vmbus_ring/src/lib.rs (`PipeHeader`, `PipePacketType`).
 */
import { putU32le, u32le } from '../bytes.ts';
import { ProtocolError } from '../errors.ts';

/**
 * Linux `struct vmbuspipe_hdr` (include/linux/hyperv.h), OpenVMM `PipeHeader`: 8 bytes, packed.
 * `flags` u32 @0 (OpenVMM `packet_type`, {@link PIPE_PACKET_TYPE}); `msgsize` u32 @4 (OpenVMM `len`: exact byte
 * count that follows the header).
 */
export const VMBUSPIPE_HDR = { size: 8, offsets: { flags: 0, msgsize: 4 } } as const;

/** OpenVMM `PipePacketType`. Only DATA travels on IC channels; PARTIAL is receiver bookkeeping, never sent. */
export const PIPE_PACKET_TYPE = { DATA: 1, PARTIAL: 2, SETUP_GPA_DIRECT: 3, TEARDOWN_GPA_DIRECT: 4 } as const;

/** Offer `pipe_mode` values (Linux `VMBUS_PIPE_TYPE_BYTE` / `VMBUS_PIPE_TYPE_MESSAGE`). ICs use MESSAGE. */
export const VMBUS_PIPE_TYPE_BYTE = 0x0;
export const VMBUS_PIPE_TYPE_MESSAGE = 0x4;

/** Largest payload after the pipe header, bytes (Linux `MAX_PIPE_DATA_PAYLOAD`, OpenVMM `MAXIMUM_PIPE_PACKET_SIZE`). */
export const MAX_PIPE_DATA_PAYLOAD = 16384;

/** A decoded `vmbuspipe_hdr`. */
export interface VmbusPipeHdr {
  /** Pipe packet type (1 = DATA). */
  flags: number;
  /** Bytes following the header. */
  msgsize: number;
}

/** Writes the 8-byte header at `offset`. Values are truncated to u32. */
export function encodePipeHdr(h: VmbusPipeHdr, buf: Uint8Array, offset = 0): void {
  putU32le(buf, offset, h.flags);
  putU32le(buf, offset + 4, h.msgsize);
}

/**
 * Reads the header at `offset` and checks that `msgsize` bytes follow it inside `buf`, or inside
 * `fullLength` bytes when `buf` holds only the first bytes of a longer payload.
 * @throws ProtocolError when fewer than 8 bytes remain, or `msgsize` runs past the end.
 */
export function decodePipeHdr(buf: Uint8Array, offset = 0, fullLength = buf.length): VmbusPipeHdr {
  if (offset < 0 || buf.length - offset < VMBUSPIPE_HDR.size) {
    throw new ProtocolError(`pipe header needs 8 bytes, got ${Math.max(0, buf.length - offset)}`, {
      offset,
      structure: 'vmbuspipe_hdr',
    });
  }
  const flags = u32le(buf, offset);
  const msgsize = u32le(buf, offset + 4);
  if (msgsize > fullLength - offset - VMBUSPIPE_HDR.size) {
    throw new ProtocolError(`pipe msgsize ${msgsize} exceeds the ${fullLength - offset - 8} bytes present`, {
      offset: offset + 4,
      structure: 'vmbuspipe_hdr',
    });
  }
  return { flags, msgsize };
}
