/**
 * VSTOR (synthetic SCSI over VMBus) constants: operations, protocol versions, flags, SRB status and the
 * NTSTATUS values a host puts in `vstor_packet.status`. Names are Linux drivers/scsi/storvsc_drv.c's
 * (`VSTOR_OPERATION_*`, `VMSTOR_PROTO_VERSION_*`, `SRB_STATUS_*`, `SRB_FLAGS_*`); values cross-checked with
 * FreeBSD sys/dev/hyperv/storvsc/hv_vstorage.h and OpenVMM storvsp_protocol/src/lib.rs, scsi_defs/src/srb.rs
 * (reference devices.md B.1–B.7).
 */

/** `enum vstor_packet_operation` (Linux storvsc_drv.c). */
export const VSTOR_OPERATION_COMPLETE_IO = 1;
export const VSTOR_OPERATION_REMOVE_DEVICE = 2;
export const VSTOR_OPERATION_EXECUTE_SRB = 3;
export const VSTOR_OPERATION_RESET_LUN = 4;
export const VSTOR_OPERATION_RESET_ADAPTER = 5;
export const VSTOR_OPERATION_RESET_BUS = 6;
export const VSTOR_OPERATION_BEGIN_INITIALIZATION = 7;
export const VSTOR_OPERATION_END_INITIALIZATION = 8;
export const VSTOR_OPERATION_QUERY_PROTOCOL_VERSION = 9;
export const VSTOR_OPERATION_QUERY_PROPERTIES = 10;
export const VSTOR_OPERATION_ENUMERATE_BUS = 11;
export const VSTOR_OPERATION_FCHBA_DATA = 12;
export const VSTOR_OPERATION_CREATE_SUB_CHANNELS = 13;
/** Defined only by OpenVMM; unused by Linux and FreeBSD (semantics UNVERIFIED). */
export const VSTOR_OPERATION_EVENT_NOTIFICATION = 14;

/** `vstor_packet.flags`: the guest wants a completion (Linux REQUEST_COMPLETION_FLAG). */
export const REQUEST_COMPLETION_FLAG = 0x1;

/** `VMSTOR_PROTO_VERSION(major, minor)` = major << 8 | minor. */
export const VMSTOR_PROTO_VERSION_WIN6 = 0x0200;
export const VMSTOR_PROTO_VERSION_WIN7 = 0x0402;
export const VMSTOR_PROTO_VERSION_WIN8 = 0x0501;
export const VMSTOR_PROTO_VERSION_WIN8_1 = 0x0600;
export const VMSTOR_PROTO_VERSION_WIN10 = 0x0602;

/** Versions current Linux offers, newest first (storvsc_drv.c `protocol_version[]`). */
export const LINUX_VSTOR_VERSIONS = [
  VMSTOR_PROTO_VERSION_WIN10,
  VMSTOR_PROTO_VERSION_WIN8_1,
  VMSTOR_PROTO_VERSION_WIN8,
] as const;
/** Versions FreeBSD (and older Linux) offer, newest first (hv_storvsc_drv_freebsd.c `vmstor_proto_list`). */
export const FREEBSD_VSTOR_VERSIONS = [
  VMSTOR_PROTO_VERSION_WIN10,
  VMSTOR_PROTO_VERSION_WIN8_1,
  VMSTOR_PROTO_VERSION_WIN8,
  VMSTOR_PROTO_VERSION_WIN7,
  VMSTOR_PROTO_VERSION_WIN6,
] as const;

/** `vstor_packet` header: operation u32 @0, flags u32 @4, status u32 @8; payload union from 12. */
export const VSTOR_PACKET_HEADER_SIZE = 12;
/** Payload union size on WIN8+ (`sizeof(struct vmscsi_request)` = 0x34). */
export const VSTOR_PAYLOAD_SIZE = 0x34;
/** `sizeof(struct vstor_packet)` = 64. */
export const VSTOR_PACKET_SIZE = VSTOR_PACKET_HEADER_SIZE + VSTOR_PAYLOAD_SIZE;
/** Linux `vmscsi_size_delta` for pre-WIN8 hosts: the 16-byte Win8 extension of vmscsi_request. */
export const VMSCSI_SIZE_DELTA = 16;
/** Pre-WIN8 `vmscsi_request` length (0x24) and vstor_packet size (48). */
export const VMSCSI_REQUEST_SIZE_WIN7 = VSTOR_PAYLOAD_SIZE - VMSCSI_SIZE_DELTA;

/** CDB bytes in a vmscsi_request (STORVSC_MAX_CMD_LEN). */
export const STORVSC_MAX_CMD_LEN = 0x10;
/** Sense buffer sizes: WIN8+ (STORVSC_SENSE_BUFFER_SIZE) and pre-WIN8 (POST_WIN7_STORVSC_SENSE_BUFFER_SIZE's old value). */
export const STORVSC_SENSE_BUFFER_SIZE = 0x14;
export const PRE_WIN8_STORVSC_SENSE_BUFFER_SIZE = 0x12;

/** vmscsi_request.data_in (Linux WRITE_TYPE / READ_TYPE / UNKNOWN_TYPE). */
export const WRITE_TYPE = 0;
export const READ_TYPE = 1;
export const UNKNOWN_TYPE = 2;

/** vmscsi_request.srb_flags (Windows SRB_FLAGS_*; Linux storvsc_drv.c). */
export const SRB_FLAGS_QUEUE_ACTION_ENABLE = 0x00000002;
export const SRB_FLAGS_DISABLE_SYNCH_TRANSFER = 0x00000008;
export const SRB_FLAGS_DATA_IN = 0x00000040;
export const SRB_FLAGS_DATA_OUT = 0x00000080;
export const SRB_FLAGS_NO_QUEUE_FREEZE = 0x00000100;
/** queue_tag / queue_action when the device supports tagging (Linux SP_UNTAGGED, SRB_SIMPLE_TAG_REQUEST). */
export const SP_UNTAGGED = 0xff;
export const SRB_SIMPLE_TAG_REQUEST = 0x20;

/** SRB status byte: low 6 bits status, plus these flag bits. */
export const SRB_STATUS_QUEUE_FROZEN = 0x40;
export const SRB_STATUS_AUTOSENSE_VALID = 0x80;
export const SRB_STATUS_PENDING = 0x00;
export const SRB_STATUS_SUCCESS = 0x01;
export const SRB_STATUS_ABORTED = 0x02;
export const SRB_STATUS_ERROR = 0x04;
export const SRB_STATUS_BUSY = 0x05;
export const SRB_STATUS_INVALID_REQUEST = 0x06;
export const SRB_STATUS_INVALID_PATH_ID = 0x07;
export const SRB_STATUS_NO_DEVICE = 0x08;
export const SRB_STATUS_TIMEOUT = 0x09;
export const SRB_STATUS_SELECTION_TIMEOUT = 0x0a;
export const SRB_STATUS_COMMAND_TIMEOUT = 0x0b;
export const SRB_STATUS_BUS_RESET = 0x0e;
export const SRB_STATUS_DATA_OVERRUN = 0x12;
export const SRB_STATUS_BAD_SRB_BLOCK_LENGTH = 0x15;
export const SRB_STATUS_REQUEST_FLUSHED = 0x16;
export const SRB_STATUS_INVALID_LUN = 0x20;
export const SRB_STATUS_INVALID_TARGET_ID = 0x21;
export const SRB_STATUS_BAD_FUNCTION = 0x22;
export const SRB_STATUS_INTERNAL_ERROR = 0x30;

/** The SRB status without its flag bits (Linux SRB_STATUS(status)). */
export function srbStatusCode(srbStatus: number): number {
  return srbStatus & 0x3f;
}

/** `vstor_packet.status` NTSTATUS values (OpenVMM storvsp). */
export const STATUS_SUCCESS = 0;
export const STATUS_DEVICE_BUSY = 0x80000011;
export const STATUS_BUFFER_OVERFLOW = 0x80000005;
export const STATUS_UNSUCCESSFUL = 0xc0000001;
export const STATUS_INVALID_PARAMETER = 0xc000000d;
export const STATUS_INVALID_DEVICE_REQUEST = 0xc0000010;
export const STATUS_REVISION_MISMATCH = 0xc0000059;
export const STATUS_IO_TIMEOUT = 0xc00000b5;
export const STATUS_DEVICE_DOES_NOT_EXIST = 0xc00000c0;
export const STATUS_CANCELLED = 0xc0000120;
export const STATUS_INVALID_DEVICE_STATE = 0xc0000184;
export const STATUS_IO_DEVICE_ERROR = 0xc0000185;

/** Packet status for a completed SRB, mapped from its SRB status as OpenVMM storvsp does (devices.md B.7). */
export function ntStatusForSrb(srbStatus: number): number {
  switch (srbStatusCode(srbStatus)) {
    case SRB_STATUS_SUCCESS:
      return STATUS_SUCCESS;
    case SRB_STATUS_BUSY:
      return STATUS_DEVICE_BUSY;
    case SRB_STATUS_INVALID_LUN:
    case SRB_STATUS_INVALID_TARGET_ID:
    case SRB_STATUS_NO_DEVICE:
    case 0x11: // SRB_STATUS_NO_HBA
      return STATUS_DEVICE_DOES_NOT_EXIST;
    case SRB_STATUS_TIMEOUT:
    case SRB_STATUS_COMMAND_TIMEOUT:
      return STATUS_IO_TIMEOUT;
    case SRB_STATUS_SELECTION_TIMEOUT:
      return 0xc000009d;
    case SRB_STATUS_BAD_FUNCTION:
    case SRB_STATUS_BAD_SRB_BLOCK_LENGTH:
      return STATUS_INVALID_DEVICE_REQUEST;
    case SRB_STATUS_DATA_OVERRUN:
      return STATUS_BUFFER_OVERFLOW;
    case SRB_STATUS_REQUEST_FLUSHED:
      return STATUS_UNSUCCESSFUL;
    case SRB_STATUS_ABORTED:
      return STATUS_CANCELLED;
    default:
      return STATUS_IO_DEVICE_ERROR;
  }
}

/** Channel properties flag: the host can open sub-channels (Linux STORAGE_CHANNEL_SUPPORTS_MULTI_CHANNEL). */
export const STORAGE_CHANNEL_SUPPORTS_MULTI_CHANNEL = 0x1;

/** OpenVMM's max_transfer_bytes (256 KiB). */
export const STORVSP_MAX_TRANSFER_BYTES = 0x40000;

/** Ring size Linux storvsc uses each way: `storvsc_ringbuffer_size` = 128 KiB (storvsc_drv.c). */
export const STORVSC_RING_BYTES = 128 * 1024;

/** Human name of a VSTOR operation, for logs. */
export function vstorOperationName(op: number): string {
  return VSTOR_OPERATION_NAMES[op] ?? `VSTOR_OPERATION_${op}`;
}

const VSTOR_OPERATION_NAMES: Readonly<Record<number, string>> = {
  1: 'VSTOR_OPERATION_COMPLETE_IO',
  2: 'VSTOR_OPERATION_REMOVE_DEVICE',
  3: 'VSTOR_OPERATION_EXECUTE_SRB',
  4: 'VSTOR_OPERATION_RESET_LUN',
  5: 'VSTOR_OPERATION_RESET_ADAPTER',
  6: 'VSTOR_OPERATION_RESET_BUS',
  7: 'VSTOR_OPERATION_BEGIN_INITIALIZATION',
  8: 'VSTOR_OPERATION_END_INITIALIZATION',
  9: 'VSTOR_OPERATION_QUERY_PROTOCOL_VERSION',
  10: 'VSTOR_OPERATION_QUERY_PROPERTIES',
  11: 'VSTOR_OPERATION_ENUMERATE_BUS',
  12: 'VSTOR_OPERATION_FCHBA_DATA',
  13: 'VSTOR_OPERATION_CREATE_SUB_CHANNELS',
  14: 'VSTOR_OPERATION_EVENT_NOTIFICATION',
};
