/**
 * VMBus control-plane constants: protocol versions, SynIC message and connection ids, status values, offer
 * flags and sizes. Sources: Linux include/linux/hyperv.h (VERSION_*, VMBUS_CHANNEL_* flags,
 * MAX_USER_DEFINED_BYTES), drivers/hv/hyperv_vmbus.h (VMBUS_MESSAGE_CONNECTION_ID*, VMBUS_MESSAGE_SINT,
 * MAX_CHANNEL_RELIDS), include/asm-generic/hyperv-tlfs.h (HV_STATUS_*, HV_MESSAGE_*); OpenVMM
 * vm/devices/vmbus/vmbus_core/src/protocol.rs (Version, FeatureFlags, STATUS_*); FreeBSD
 * sys/dev/hyperv/vmbus/vmbus_reg.h (VMBUS_MSG_DSIZE_MAX, GPADL page limits).
 */

/** A VMBus protocol version is `major << 16 | minor` (u32). */
export const VERSION_WS2008 = 0x0000000d; // 0.13
export const VERSION_WIN7 = 0x00010001; // 1.1
export const VERSION_WIN8 = 0x00020004; // 2.4
export const VERSION_WIN8_1 = 0x00030000; // 3.0
export const VERSION_WIN10 = 0x00040000; // 4.0
export const VERSION_WIN10_V4_1 = 0x00040001; // 4.1
export const VERSION_WIN10_V5 = 0x00050000; // 5.0
export const VERSION_WIN10_V5_1 = 0x00050001; // 5.1
export const VERSION_WIN10_V5_2 = 0x00050002; // 5.2
export const VERSION_WIN10_V5_3 = 0x00050003; // 5.3
/** 6.0, OpenVMM "Copper" (2025 linux-hyperv patch series). */
export const VERSION_WIN10_V6_0 = 0x00060000;

/** Every version a host may know, ascending (OpenVMM `Version` enum order). */
export const ALL_VMBUS_VERSIONS: readonly number[] = [
  VERSION_WS2008,
  VERSION_WIN7,
  VERSION_WIN8,
  VERSION_WIN8_1,
  VERSION_WIN10,
  VERSION_WIN10_V4_1,
  VERSION_WIN10_V5,
  VERSION_WIN10_V5_1,
  VERSION_WIN10_V5_2,
  VERSION_WIN10_V5_3,
  VERSION_WIN10_V6_0,
];

/** Linux drivers/hv/connection.c `vmbus_versions[]`, highest first (6.0 is not in 6.1-era kernels). */
export const LINUX_VMBUS_VERSIONS: readonly number[] = [
  VERSION_WIN10_V5_3,
  VERSION_WIN10_V5_2,
  VERSION_WIN10_V5_1,
  VERSION_WIN10_V5,
  VERSION_WIN10_V4_1,
  VERSION_WIN10,
  VERSION_WIN8_1,
  VERSION_WIN8,
];

/** FreeBSD sys/dev/hyperv/vmbus/vmbus.c `vmbus_version[]`, highest first. */
export const FREEBSD_VMBUS_VERSIONS: readonly number[] = [
  VERSION_WIN10,
  VERSION_WIN8_1,
  VERSION_WIN8,
  VERSION_WIN7,
  VERSION_WS2008,
];

/** `"5.3"` for 0x00050003. */
export function versionString(v: number): string {
  return `${v >>> 16}.${v & 0xffff}`;
}

/** SynIC message type VMBus uses in both directions (Linux `HVMSG_...`-less literal 1 in hv_post_message). */
export const VMBUS_MESSAGE_TYPE = 1;
/** Guest SINT for VMBus messages and events (Linux `VMBUS_MESSAGE_SINT`). */
export const VMBUS_MESSAGE_SINT = 2;
/** Message connection id for every message before 5.0 (Linux `VMBUS_MESSAGE_CONNECTION_ID`). */
export const VMBUS_MESSAGE_CONNECTION_ID = 1;
/** Shared event connection id used by pre-Win8 signalling (OpenVMM `SHARED_EVENT_CONNECTION_ID`). */
export const VMBUS_EVENT_CONNECTION_ID = 2;
/** Connection id INITIATE_CONTACT uses from 5.0 on (Linux `VMBUS_MESSAGE_CONNECTION_ID_4`). */
export const VMBUS_MESSAGE_CONNECTION_ID_4 = 4;

/** Relids are 1..2047 (Linux `MAX_CHANNEL_RELIDS`). Also the number of event-flag bits per SINT. */
export const MAX_CHANNEL_RELIDS = 2048;

/** SynIC message: 256 bytes = 16-byte `struct hv_message_header` + 240 bytes payload. */
export const HV_MESSAGE_SIZE = 256;
export const HV_MESSAGE_HEADER_SIZE = 16;
/** Largest VMBus channel message (Linux `HV_MESSAGE_PAYLOAD_BYTE_COUNT`, FreeBSD `VMBUS_MSG_DSIZE_MAX`). */
export const HV_MESSAGE_PAYLOAD_BYTE_COUNT = 240;

/** Hypercall status values returned by HvPostMessage (Linux hyperv-tlfs.h). */
export const HV_STATUS_SUCCESS = 0;
export const HV_STATUS_INVALID_CONNECTION_ID = 18;
export const HV_STATUS_INSUFFICIENT_BUFFERS = 19;

/** Channel-message status values (OpenVMM vmbus_core protocol.rs). Guests treat any nonzero as failure. */
export const STATUS_SUCCESS = 0;
export const STATUS_UNSUCCESSFUL = 0x8000ffff;
export const STATUS_CONNECTION_REFUSED = 0xc0000236;

/** VERSION_RESPONSE `connection_state` (OpenVMM `ConnectionState`). */
export const CONNECTION_STATE_SUCCESSFUL = 0;
export const CONNECTION_STATE_FAILED_LOW_RESOURCES = 1;
export const CONNECTION_STATE_FAILED_UNKNOWN_FAILURE = 2;

/** Offer `chn_flags` (Linux hyperv.h VMBUS_CHANNEL_*). 0x2/0x4 are confidential-VMBus bits in 6.0. */
export const VMBUS_CHANNEL_ENUMERATE_DEVICE_INTERFACE = 0x1;
export const VMBUS_CHANNEL_SERVER_SUPPORTS_TRANSFER_PAGES = 0x2;
export const VMBUS_CHANNEL_SERVER_SUPPORTS_GPADLS = 0x4;
export const VMBUS_CHANNEL_NAMED_PIPE_MODE = 0x10;
export const VMBUS_CHANNEL_LOOPBACK_OFFER = 0x100;
export const VMBUS_CHANNEL_PARENT_OFFER = 0x200;
export const VMBUS_CHANNEL_REQUEST_MONITORED_NOTIFICATION = 0x400;
export const VMBUS_CHANNEL_TLNPI_PROVIDER_OFFER = 0x2000;

/** Pipe modes in the first u32 of the offer's user-defined area (Linux `VMBUS_PIPE_TYPE_*`). */
export const VMBUS_PIPE_TYPE_BYTE = 0;
export const VMBUS_PIPE_TYPE_MESSAGE = 4;

/** Device-specific bytes in an offer and in OPENCHANNEL (Linux `MAX_USER_DEFINED_BYTES`). */
export const MAX_USER_DEFINED_BYTES = 120;

/** Offer `monitorid` meaning "no monitor bit" (OpenVMM). */
export const MONITOR_ID_NONE = 0xff;

/** PFNs in a GPADL_HEADER with one range (FreeBSD `VMBUS_CHANMSG_GPADL_CONN_PGMAX`). */
export const GPADL_HEADER_MAX_PFNS = 26;
/** PFNs in one GPADL_BODY (FreeBSD `VMBUS_CHANMSG_GPADL_SUBCONN_PGMAX`). */
export const GPADL_BODY_MAX_PFNS = 28;
/** First GPADL handle Linux and FreeBSD hand out (Linux connection.c `next_gpadl_handle`). */
export const GPADL_FIRST_HANDLE = 0xe1e10;

/** 6.0 (Copper) feature flags in INITIATE_CONTACT / VersionResponse2 (OpenVMM `FeatureFlags`). */
export const FeatureFlags = {
  GUEST_SPECIFIED_SIGNAL_PARAMETERS: 0x01,
  CHANNEL_INTERRUPT_REDIRECTION: 0x02,
  MODIFY_CONNECTION: 0x04,
  CLIENT_ID: 0x08,
  CONFIDENTIAL_CHANNELS: 0x10,
  PAUSE_RESUME: 0x20,
  SERVER_SPECIFIED_MONITOR_PAGES: 0x40,
  GPA_PINNING: 0x80,
} as const;
