/**
 * VMBus channel messages (ids 0–29): the control protocol carried in 240-byte SynIC message payloads.
 * Layouts: Linux include/linux/hyperv.h (`struct vmbus_channel_*`, see channel-message-layouts.ts), the 5.x
 * and 6.0 additions from OpenVMM vm/devices/vmbus/vmbus_core/src/protocol.rs. All integers little-endian.
 *
 * Decoding is total: any byte string gives a {@link ChannelMessage} or a ProtocolError. A message must be at
 * least its type's size; longer input selects the bigger variant where OpenVMM has one (InitiateContact2,
 * VersionResponse2/3, OpenChannel2, TL_CONNECT_REQUEST v2) and is otherwise ignored past the size, as
 * Linux checks only a minimum payload length. Control messages are not a hot path: codecs allocate.
 */
import { ProtocolError } from '../errors.ts';
import { Guid } from '../guid.ts';
import { HV_MESSAGE_PAYLOAD_BYTE_COUNT, MAX_USER_DEFINED_BYTES, VERSION_WIN10_V5 } from './constants.ts';

export const CHANNELMSG_INVALID = 0;
export const CHANNELMSG_OFFERCHANNEL = 1;
export const CHANNELMSG_RESCIND_CHANNELOFFER = 2;
export const CHANNELMSG_REQUESTOFFERS = 3;
export const CHANNELMSG_ALLOFFERS_DELIVERED = 4;
export const CHANNELMSG_OPENCHANNEL = 5;
export const CHANNELMSG_OPENCHANNEL_RESULT = 6;
export const CHANNELMSG_CLOSECHANNEL = 7;
export const CHANNELMSG_GPADL_HEADER = 8;
export const CHANNELMSG_GPADL_BODY = 9;
export const CHANNELMSG_GPADL_CREATED = 10;
export const CHANNELMSG_GPADL_TEARDOWN = 11;
export const CHANNELMSG_GPADL_TORNDOWN = 12;
export const CHANNELMSG_RELID_RELEASED = 13;
export const CHANNELMSG_INITIATE_CONTACT = 14;
export const CHANNELMSG_VERSION_RESPONSE = 15;
export const CHANNELMSG_UNLOAD = 16;
export const CHANNELMSG_UNLOAD_RESPONSE = 17;
/** 18–20: Linux CHANNELMSG_18..20; OpenVMM OPEN_RESERVED_CHANNEL, CLOSE_RESERVED_CHANNEL, CLOSE_RESERVED_RESPONSE. */
export const CHANNELMSG_OPEN_RESERVED_CHANNEL = 18;
export const CHANNELMSG_CLOSE_RESERVED_CHANNEL = 19;
export const CHANNELMSG_CLOSE_RESERVED_RESPONSE = 20;
export const CHANNELMSG_TL_CONNECT_REQUEST = 21;
export const CHANNELMSG_MODIFYCHANNEL = 22;
export const CHANNELMSG_TL_CONNECT_RESULT = 23;
export const CHANNELMSG_MODIFYCHANNEL_RESPONSE = 24;
/** 25–29: OpenVMM (6.0 "Copper" with feature flags). */
export const CHANNELMSG_MODIFY_CONNECTION = 25;
export const CHANNELMSG_MODIFY_CONNECTION_RESPONSE = 26;
export const CHANNELMSG_PAUSE = 27;
export const CHANNELMSG_PAUSE_RESPONSE = 28;
export const CHANNELMSG_RESUME = 29;

/** Name of each message type for logs (`OFFERCHANNEL` ...), indexed by msgtype. */
export const CHANNELMSG_NAMES: readonly string[] = [
  'INVALID', 'OFFERCHANNEL', 'RESCIND_CHANNELOFFER', 'REQUESTOFFERS', 'ALLOFFERS_DELIVERED', 'OPENCHANNEL',
  'OPENCHANNEL_RESULT', 'CLOSECHANNEL', 'GPADL_HEADER', 'GPADL_BODY', 'GPADL_CREATED', 'GPADL_TEARDOWN',
  'GPADL_TORNDOWN', 'RELID_RELEASED', 'INITIATE_CONTACT', 'VERSION_RESPONSE', 'UNLOAD', 'UNLOAD_RESPONSE',
  'OPEN_RESERVED_CHANNEL', 'CLOSE_RESERVED_CHANNEL', 'CLOSE_RESERVED_RESPONSE', 'TL_CONNECT_REQUEST',
  'MODIFYCHANNEL', 'TL_CONNECT_RESULT', 'MODIFYCHANNEL_RESPONSE', 'MODIFY_CONNECTION',
  'MODIFY_CONNECTION_RESPONSE', 'PAUSE', 'PAUSE_RESPONSE', 'RESUME',
]; // biome-ignore format: table

/** OFFERCHANNEL (1), 196 bytes: Linux `struct vmbus_channel_offer_channel`. */
export interface OfferChannel {
  msgtype: typeof CHANNELMSG_OFFERCHANNEL;
  /** Class (interface type) GUID @8; for hv_sock the service id. */
  ifType: Guid;
  /** Instance GUID @24; for hv_sock the endpoint id. */
  ifInstance: Guid;
  /** Bytes 40..55 (Linux reserved1/reserved2; FreeBSD latency, revision, server context size). */
  reserved: Uint8Array;
  /** `chn_flags` @56 (VMBUS_CHANNEL_*). */
  chnFlags: number;
  /** `mmio_megabytes` @58, MiB of MMIO space the device wants. */
  mmioMegabytes: number;
  /** `u.std.user_def` @60, 120 bytes (pipe mode: pipe_mode u32 first, then 116 bytes). */
  userDefined: Uint8Array;
  /** `sub_channel_index` @180: 0 = primary. */
  subChannelIndex: number;
  /** `reserved3` @182 (OpenVMM `mmio_megabytes_optional`). */
  mmioMegabytesOptional: number;
  /** `child_relid` @184. */
  childRelid: number;
  /** `monitorid` @188 (0..127, 0xFF none). */
  monitorId: number;
  /** Byte 189 bit0. */
  monitorAllocated: boolean;
  /** u16 @190 bit0. */
  isDedicatedInterrupt: boolean;
  /** `connection_id` @192: what the guest signals for this channel. */
  connectionId: number;
}

/** Messages with only `child_relid` @8 (12 bytes): RESCIND_CHANNELOFFER, CLOSECHANNEL, RELID_RELEASED. */
export interface RelidMessage {
  msgtype:
    | typeof CHANNELMSG_RESCIND_CHANNELOFFER
    | typeof CHANNELMSG_CLOSECHANNEL
    | typeof CHANNELMSG_RELID_RELEASED
    | typeof CHANNELMSG_CLOSE_RESERVED_RESPONSE;
  childRelid: number;
}

/** Header-only messages (8 bytes). */
export interface EmptyMessage {
  msgtype:
    | typeof CHANNELMSG_REQUESTOFFERS
    | typeof CHANNELMSG_ALLOFFERS_DELIVERED
    | typeof CHANNELMSG_UNLOAD
    | typeof CHANNELMSG_UNLOAD_RESPONSE
    | typeof CHANNELMSG_PAUSE
    | typeof CHANNELMSG_PAUSE_RESPONSE
    | typeof CHANNELMSG_RESUME;
}

/**
 * OPENCHANNEL (5), 148 bytes: Linux `struct vmbus_channel_open_channel`. OpenChannel2 (156 bytes, OpenVMM,
 * 6.0) adds `connection_id` u32 @148, `event_flag` u16 @152, `flags` u16 @154.
 */
export interface OpenChannel {
  msgtype: typeof CHANNELMSG_OPENCHANNEL;
  childRelid: number;
  openid: number;
  ringbufferGpadlhandle: number;
  targetVp: number;
  /** Page (4 KiB) index in the ring GPADL where the host→guest ring starts. */
  downstreamRingbufferPageoffset: number;
  /** 120 bytes. */
  userdata: Uint8Array;
  open2?: { connectionId: number; eventFlag: number; flags: number };
}

/** OPENCHANNEL_RESULT (6), 20 bytes: Linux `struct vmbus_channel_open_result`. */
export interface OpenResult {
  msgtype: typeof CHANNELMSG_OPENCHANNEL_RESULT;
  childRelid: number;
  openid: number;
  /** 0 = success. */
  status: number;
}

/**
 * GPADL_HEADER (8): Linux `struct vmbus_channel_gpadl_header`, 20 bytes + range data. `data` is the range
 * bytes this message carries (a multiple of 8; the rest follow in GPADL_BODY messages).
 */
export interface GpadlHeader {
  msgtype: typeof CHANNELMSG_GPADL_HEADER;
  childRelid: number;
  gpadl: number;
  /** Total bytes of every gpa_range with its PFNs, across header and bodies. */
  rangeBuflen: number;
  rangecount: number;
  data: Uint8Array;
}

/** GPADL_BODY (9): Linux `struct vmbus_channel_gpadl_body`, 16 bytes + PFN bytes (multiple of 8). */
export interface GpadlBody {
  msgtype: typeof CHANNELMSG_GPADL_BODY;
  /** Linux sends 0; OpenVMM ignores it. */
  msgnumber: number;
  gpadl: number;
  data: Uint8Array;
}

/** GPADL_CREATED (10), 20 bytes: Linux `struct vmbus_channel_gpadl_created`. */
export interface GpadlCreated {
  msgtype: typeof CHANNELMSG_GPADL_CREATED;
  childRelid: number;
  gpadl: number;
  /** 0 = success; OpenVMM uses STATUS_UNSUCCESSFUL for failures. */
  creationStatus: number;
}

/** GPADL_TEARDOWN (11), 16 bytes: Linux `struct vmbus_channel_gpadl_teardown`. */
export interface GpadlTeardown {
  msgtype: typeof CHANNELMSG_GPADL_TEARDOWN;
  childRelid: number;
  gpadl: number;
}

/** GPADL_TORNDOWN (12), 12 bytes: Linux `struct vmbus_channel_gpadl_torndown`. */
export interface GpadlTorndown {
  msgtype: typeof CHANNELMSG_GPADL_TORNDOWN;
  gpadl: number;
}

/**
 * INITIATE_CONTACT (14), 40 bytes: Linux `struct vmbus_channel_initiate_contact`. The u64 @16 is the
 * interrupt page GPA below 5.0; from 5.0 it is `msg_sint` u8 @16, `msg_vtl` u8 @17, reserved u16 @18 and
 * (6.0) `feature_flags` u32 @20 — the codec picks by `vmbusVersionRequested`. InitiateContact2 (56 bytes,
 * OpenVMM, 6.0 with feature CLIENT_ID) adds `client_id` GUID @40.
 */
export interface InitiateContact {
  msgtype: typeof CHANNELMSG_INITIATE_CONTACT;
  vmbusVersionRequested: number;
  targetVcpu: number;
  /** GPA (bytes) of the interrupt page; 0 from 5.0 on. */
  interruptPage: number;
  msgSint: number;
  msgVtl: number;
  featureFlags: number;
  /** Parent→child monitor page GPA (bytes). */
  monitorPage1: number;
  /** Child→parent monitor page GPA (bytes). */
  monitorPage2: number;
  clientId?: Guid;
}

/**
 * VERSION_RESPONSE (15), 16 bytes: Linux `struct vmbus_channel_version_response`. VersionResponse2 (20,
 * OpenVMM) adds `supported_features` u32 @16; VersionResponse3 (40) adds padding u32 @20 and the
 * host-chosen monitor page GPAs u64 @24 (parent→child) and @32 (child→parent).
 */
export interface VersionResponse {
  msgtype: typeof CHANNELMSG_VERSION_RESPONSE;
  /** Nonzero = accepted. */
  versionSupported: number;
  connectionState: number;
  /** From 5.0: message connection id for all later messages. */
  msgConnId: number;
  supportedFeatures?: number;
  monitorPages?: { parentToChild: number; childToParent: number };
}

/** OPEN_RESERVED_CHANNEL (18), 28 bytes (OpenVMM `OpenReservedChannel`). */
export interface OpenReservedChannel {
  msgtype: typeof CHANNELMSG_OPEN_RESERVED_CHANNEL;
  channelId: number;
  targetVp: number;
  targetSint: number;
  ringBufferGpadl: number;
  downstreamPageOffset: number;
}

/** CLOSE_RESERVED_CHANNEL (19), 20 bytes (OpenVMM `CloseReservedChannel`). */
export interface CloseReservedChannel {
  msgtype: typeof CHANNELMSG_CLOSE_RESERVED_CHANNEL;
  channelId: number;
  targetVp: number;
  targetSint: number;
}

/** TL_CONNECT_REQUEST (21), 40 bytes: Linux `struct vmbus_channel_tl_connect_request`; v2 (56) adds silo_id @40. */
export interface TlConnectRequest {
  msgtype: typeof CHANNELMSG_TL_CONNECT_REQUEST;
  guestEndpointId: Guid;
  hostServiceId: Guid;
  siloId?: Guid;
}

/** TL_CONNECT_RESULT (23), 44 bytes (OpenVMM `TlConnectResult`): endpoint @8, service @24, status i32 @40. */
export interface TlConnectResult {
  msgtype: typeof CHANNELMSG_TL_CONNECT_RESULT;
  endpointId: Guid;
  serviceId: Guid;
  /** Stored as u32 (STATUS_CONNECTION_REFUSED = 0xC0000236). */
  status: number;
}

/** MODIFYCHANNEL (22), 16 bytes: Linux `struct vmbus_channel_modifychannel`. */
export interface ModifyChannel {
  msgtype: typeof CHANNELMSG_MODIFYCHANNEL;
  childRelid: number;
  targetVp: number;
}

/** MODIFYCHANNEL_RESPONSE (24), 16 bytes: Linux `struct vmbus_channel_modifychannel_response`. */
export interface ModifyChannelResponse {
  msgtype: typeof CHANNELMSG_MODIFYCHANNEL_RESPONSE;
  childRelid: number;
  status: number;
}

/** MODIFY_CONNECTION (25), 24 bytes (OpenVMM `ModifyConnection`): monitor page GPAs u64 @8, @16. */
export interface ModifyConnection {
  msgtype: typeof CHANNELMSG_MODIFY_CONNECTION;
  parentToChildMonitorPageGpa: number;
  childToParentMonitorPageGpa: number;
}

/** MODIFY_CONNECTION_RESPONSE (26), 9 bytes (OpenVMM `ModifyConnectionResponse`: connection_state u8 @8). */
export interface ModifyConnectionResponse {
  msgtype: typeof CHANNELMSG_MODIFY_CONNECTION_RESPONSE;
  connectionState: number;
}

export type ChannelMessage =
  | OfferChannel
  | RelidMessage
  | EmptyMessage
  | OpenChannel
  | OpenResult
  | GpadlHeader
  | GpadlBody
  | GpadlCreated
  | GpadlTeardown
  | GpadlTorndown
  | InitiateContact
  | VersionResponse
  | OpenReservedChannel
  | CloseReservedChannel
  | TlConnectRequest
  | TlConnectResult
  | ModifyChannel
  | ModifyChannelResponse
  | ModifyConnection
  | ModifyConnectionResponse;

/** Minimum (base variant) size of each message type in bytes, indexed by msgtype; 0 = not a valid type. */
export const CHANNEL_MESSAGE_SIZES: readonly number[] = [
  0, 196, 12, 8, 8, 148, 20, 12, 20, 16, 20, 16, 12, 12, 40, 16, 8, 8, 28, 20, 12, 40, 16, 44, 16, 24, 9, 8, 8, 8,
]; // biome-ignore format: table

const STRUCTURE = 'vmbus_channel_message';
const TWO32 = 0x1_0000_0000;

function fail(message: string, offset: number, structure = STRUCTURE): never {
  throw new ProtocolError(message, { channel: -1, offset, structure });
}

/** u64 as a number; a value above 2^53 − 1 is a ProtocolError (GPAs and PFNs never reach it). */
function readU64(dv: DataView, off: number, structure: string): number {
  const hi = dv.getUint32(off + 4, true);
  if (hi > 0x1fffff) fail(`u64 at offset ${off} exceeds 2^53`, off, structure);
  return hi * TWO32 + dv.getUint32(off, true);
}

function writeU64(dv: DataView, off: number, v: number): void {
  dv.setUint32(off, v >>> 0, true);
  dv.setUint32(off + 4, Math.floor(v / TWO32), true);
}

function fixedBytes(b: Uint8Array, len: number, what: string): Uint8Array {
  if (b.length > len) throw new RangeError(`${what} is ${b.length} bytes; at most ${len}`);
  return b;
}

/**
 * Decodes one channel message (the SynIC payload, `payload_size` bytes).
 * @throws ProtocolError (structure `vmbus_channel_message` or the Linux struct name) when the type is unknown,
 *   the message is shorter than its type's size, or a field is out of range.
 */
export function decodeChannelMessage(buf: Uint8Array): ChannelMessage {
  if (buf.length < 8) fail(`channel message of ${buf.length} bytes is shorter than its 8-byte header`, 0);
  if (buf.length > HV_MESSAGE_PAYLOAD_BYTE_COUNT)
    fail(`channel message of ${buf.length} bytes exceeds 240`, 0);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const msgtype = dv.getUint32(0, true);
  const min = CHANNEL_MESSAGE_SIZES[msgtype] ?? 0;
  if (min === 0) fail(`unknown channel message type ${msgtype}`, 0);
  const name = `CHANNELMSG_${CHANNELMSG_NAMES[msgtype]}`;
  if (buf.length < min) fail(`${name} needs ${min} bytes, got ${buf.length}`, buf.length, name);
  const u32 = (o: number) => dv.getUint32(o, true);
  const u16 = (o: number) => dv.getUint16(o, true);
  switch (msgtype) {
    case CHANNELMSG_OFFERCHANNEL:
      return {
        msgtype,
        ifType: Guid.read(buf, 8),
        ifInstance: Guid.read(buf, 24),
        reserved: buf.slice(40, 56),
        chnFlags: u16(56),
        mmioMegabytes: u16(58),
        userDefined: buf.slice(60, 180),
        subChannelIndex: u16(180),
        mmioMegabytesOptional: u16(182),
        childRelid: u32(184),
        monitorId: buf[188]!,
        monitorAllocated: (buf[189]! & 1) !== 0,
        isDedicatedInterrupt: (u16(190) & 1) !== 0,
        connectionId: u32(192),
      };
    case CHANNELMSG_RESCIND_CHANNELOFFER:
    case CHANNELMSG_CLOSECHANNEL:
    case CHANNELMSG_RELID_RELEASED:
    case CHANNELMSG_CLOSE_RESERVED_RESPONSE:
      return { msgtype, childRelid: u32(8) };
    case CHANNELMSG_REQUESTOFFERS:
    case CHANNELMSG_ALLOFFERS_DELIVERED:
    case CHANNELMSG_UNLOAD:
    case CHANNELMSG_UNLOAD_RESPONSE:
    case CHANNELMSG_PAUSE:
    case CHANNELMSG_PAUSE_RESPONSE:
    case CHANNELMSG_RESUME:
      return { msgtype };
    case CHANNELMSG_OPENCHANNEL: {
      const m: OpenChannel = {
        msgtype,
        childRelid: u32(8),
        openid: u32(12),
        ringbufferGpadlhandle: u32(16),
        targetVp: u32(20),
        downstreamRingbufferPageoffset: u32(24),
        userdata: buf.slice(28, 148),
      };
      if (buf.length >= 156) m.open2 = { connectionId: u32(148), eventFlag: u16(152), flags: u16(154) };
      return m;
    }
    case CHANNELMSG_OPENCHANNEL_RESULT:
      return { msgtype, childRelid: u32(8), openid: u32(12), status: u32(16) };
    case CHANNELMSG_GPADL_HEADER:
      return {
        msgtype,
        childRelid: u32(8),
        gpadl: u32(12),
        rangeBuflen: u16(16),
        rangecount: u16(18),
        data: buf.slice(20, 20 + ((buf.length - 20) & ~7)),
      };
    case CHANNELMSG_GPADL_BODY:
      return {
        msgtype,
        msgnumber: u32(8),
        gpadl: u32(12),
        data: buf.slice(16, 16 + ((buf.length - 16) & ~7)),
      };
    case CHANNELMSG_GPADL_CREATED:
      return { msgtype, childRelid: u32(8), gpadl: u32(12), creationStatus: u32(16) };
    case CHANNELMSG_GPADL_TEARDOWN:
      return { msgtype, childRelid: u32(8), gpadl: u32(12) };
    case CHANNELMSG_GPADL_TORNDOWN:
      return { msgtype, gpadl: u32(8) };
    case CHANNELMSG_INITIATE_CONTACT: {
      const s = 'vmbus_channel_initiate_contact';
      const v = u32(8);
      const modern = v >= VERSION_WIN10_V5;
      const m: InitiateContact = {
        msgtype,
        vmbusVersionRequested: v,
        targetVcpu: u32(12),
        interruptPage: modern ? 0 : readU64(dv, 16, s),
        msgSint: modern ? buf[16]! : 0,
        msgVtl: modern ? buf[17]! : 0,
        featureFlags: modern ? u32(20) : 0,
        monitorPage1: readU64(dv, 24, s),
        monitorPage2: readU64(dv, 32, s),
      };
      if (buf.length >= 56) m.clientId = Guid.read(buf, 40);
      return m;
    }
    case CHANNELMSG_VERSION_RESPONSE: {
      const m: VersionResponse = {
        msgtype,
        versionSupported: buf[8]!,
        connectionState: buf[9]!,
        msgConnId: u32(12),
      };
      if (buf.length >= 20) m.supportedFeatures = u32(16);
      if (buf.length >= 40) {
        const s = 'vmbus_channel_version_response';
        m.monitorPages = { parentToChild: readU64(dv, 24, s), childToParent: readU64(dv, 32, s) };
      }
      return m;
    }
    case CHANNELMSG_OPEN_RESERVED_CHANNEL:
      return {
        msgtype,
        channelId: u32(8),
        targetVp: u32(12),
        targetSint: u32(16),
        ringBufferGpadl: u32(20),
        downstreamPageOffset: u32(24),
      };
    case CHANNELMSG_CLOSE_RESERVED_CHANNEL:
      return { msgtype, channelId: u32(8), targetVp: u32(12), targetSint: u32(16) };
    case CHANNELMSG_TL_CONNECT_REQUEST: {
      const m: TlConnectRequest = {
        msgtype,
        guestEndpointId: Guid.read(buf, 8),
        hostServiceId: Guid.read(buf, 24),
      };
      if (buf.length >= 56) m.siloId = Guid.read(buf, 40);
      return m;
    }
    case CHANNELMSG_TL_CONNECT_RESULT:
      return { msgtype, endpointId: Guid.read(buf, 8), serviceId: Guid.read(buf, 24), status: u32(40) };
    case CHANNELMSG_MODIFYCHANNEL:
      return { msgtype, childRelid: u32(8), targetVp: u32(12) };
    case CHANNELMSG_MODIFYCHANNEL_RESPONSE:
      return { msgtype, childRelid: u32(8), status: u32(12) };
    case CHANNELMSG_MODIFY_CONNECTION: {
      const s = 'vmbus_channel_modify_connection';
      return {
        msgtype,
        parentToChildMonitorPageGpa: readU64(dv, 8, s),
        childToParentMonitorPageGpa: readU64(dv, 16, s),
      };
    }
    default: // CHANNELMSG_MODIFY_CONNECTION_RESPONSE: the only type left with a nonzero size
      return { msgtype: CHANNELMSG_MODIFY_CONNECTION_RESPONSE, connectionState: buf[8]! };
  }
}

/** Encoded size of `m` in bytes (≤ 240). */
export function channelMessageSize(m: ChannelMessage): number {
  switch (m.msgtype) {
    case CHANNELMSG_OPENCHANNEL:
      return m.open2 ? 156 : 148;
    case CHANNELMSG_GPADL_HEADER:
      return 20 + m.data.length;
    case CHANNELMSG_GPADL_BODY:
      return 16 + m.data.length;
    case CHANNELMSG_INITIATE_CONTACT:
      return m.clientId ? 56 : 40;
    case CHANNELMSG_VERSION_RESPONSE:
      return m.monitorPages ? 40 : m.supportedFeatures !== undefined ? 20 : 16;
    case CHANNELMSG_TL_CONNECT_REQUEST:
      return m.siloId ? 56 : 40;
    default:
      return CHANNEL_MESSAGE_SIZES[m.msgtype]!;
  }
}

/**
 * Encodes `m` into a new buffer of {@link channelMessageSize} bytes (header padding 0).
 * @throws RangeError when a byte field is longer than its slot or the message exceeds 240 bytes (a caller
 *   bug, never peer input).
 */
export function encodeChannelMessage(m: ChannelMessage): Uint8Array {
  const size = channelMessageSize(m);
  if (size > HV_MESSAGE_PAYLOAD_BYTE_COUNT)
    throw new RangeError(`channel message of ${size} bytes exceeds 240`);
  const buf = new Uint8Array(size);
  const dv = new DataView(buf.buffer);
  const u32 = (o: number, v: number) => dv.setUint32(o, v >>> 0, true);
  const u16 = (o: number, v: number) => dv.setUint16(o, v & 0xffff, true);
  u32(0, m.msgtype);
  switch (m.msgtype) {
    case CHANNELMSG_OFFERCHANNEL:
      m.ifType.write(buf, 8);
      m.ifInstance.write(buf, 24);
      buf.set(fixedBytes(m.reserved, 16, 'offer reserved'), 40);
      u16(56, m.chnFlags);
      u16(58, m.mmioMegabytes);
      buf.set(fixedBytes(m.userDefined, MAX_USER_DEFINED_BYTES, 'offer user_def'), 60);
      u16(180, m.subChannelIndex);
      u16(182, m.mmioMegabytesOptional);
      u32(184, m.childRelid);
      buf[188] = m.monitorId;
      buf[189] = m.monitorAllocated ? 1 : 0;
      u16(190, m.isDedicatedInterrupt ? 1 : 0);
      u32(192, m.connectionId);
      break;
    case CHANNELMSG_RESCIND_CHANNELOFFER:
    case CHANNELMSG_CLOSECHANNEL:
    case CHANNELMSG_RELID_RELEASED:
    case CHANNELMSG_CLOSE_RESERVED_RESPONSE:
      u32(8, m.childRelid);
      break;
    case CHANNELMSG_OPENCHANNEL:
      u32(8, m.childRelid);
      u32(12, m.openid);
      u32(16, m.ringbufferGpadlhandle);
      u32(20, m.targetVp);
      u32(24, m.downstreamRingbufferPageoffset);
      buf.set(fixedBytes(m.userdata, MAX_USER_DEFINED_BYTES, 'open userdata'), 28);
      if (m.open2) {
        u32(148, m.open2.connectionId);
        u16(152, m.open2.eventFlag);
        u16(154, m.open2.flags);
      }
      break;
    case CHANNELMSG_OPENCHANNEL_RESULT:
      u32(8, m.childRelid);
      u32(12, m.openid);
      u32(16, m.status);
      break;
    case CHANNELMSG_GPADL_HEADER:
      u32(8, m.childRelid);
      u32(12, m.gpadl);
      u16(16, m.rangeBuflen);
      u16(18, m.rangecount);
      buf.set(m.data, 20);
      break;
    case CHANNELMSG_GPADL_BODY:
      u32(8, m.msgnumber);
      u32(12, m.gpadl);
      buf.set(m.data, 16);
      break;
    case CHANNELMSG_GPADL_CREATED:
      u32(8, m.childRelid);
      u32(12, m.gpadl);
      u32(16, m.creationStatus);
      break;
    case CHANNELMSG_GPADL_TEARDOWN:
      u32(8, m.childRelid);
      u32(12, m.gpadl);
      break;
    case CHANNELMSG_GPADL_TORNDOWN:
      u32(8, m.gpadl);
      break;
    case CHANNELMSG_INITIATE_CONTACT:
      u32(8, m.vmbusVersionRequested);
      u32(12, m.targetVcpu);
      if (m.vmbusVersionRequested >= VERSION_WIN10_V5) {
        buf[16] = m.msgSint;
        buf[17] = m.msgVtl;
        u32(20, m.featureFlags);
      } else {
        writeU64(dv, 16, m.interruptPage);
      }
      writeU64(dv, 24, m.monitorPage1);
      writeU64(dv, 32, m.monitorPage2);
      m.clientId?.write(buf, 40);
      break;
    case CHANNELMSG_VERSION_RESPONSE:
      buf[8] = m.versionSupported;
      buf[9] = m.connectionState;
      u32(12, m.msgConnId);
      if (m.supportedFeatures !== undefined && size >= 20) u32(16, m.supportedFeatures);
      if (m.monitorPages) {
        writeU64(dv, 24, m.monitorPages.parentToChild);
        writeU64(dv, 32, m.monitorPages.childToParent);
      }
      break;
    case CHANNELMSG_OPEN_RESERVED_CHANNEL:
      u32(8, m.channelId);
      u32(12, m.targetVp);
      u32(16, m.targetSint);
      u32(20, m.ringBufferGpadl);
      u32(24, m.downstreamPageOffset);
      break;
    case CHANNELMSG_CLOSE_RESERVED_CHANNEL:
      u32(8, m.channelId);
      u32(12, m.targetVp);
      u32(16, m.targetSint);
      break;
    case CHANNELMSG_TL_CONNECT_REQUEST:
      m.guestEndpointId.write(buf, 8);
      m.hostServiceId.write(buf, 24);
      m.siloId?.write(buf, 40);
      break;
    case CHANNELMSG_TL_CONNECT_RESULT:
      m.endpointId.write(buf, 8);
      m.serviceId.write(buf, 24);
      u32(40, m.status);
      break;
    case CHANNELMSG_MODIFYCHANNEL:
      u32(8, m.childRelid);
      u32(12, m.targetVp);
      break;
    case CHANNELMSG_MODIFYCHANNEL_RESPONSE:
      u32(8, m.childRelid);
      u32(12, m.status);
      break;
    case CHANNELMSG_MODIFY_CONNECTION:
      writeU64(dv, 8, m.parentToChildMonitorPageGpa);
      writeU64(dv, 16, m.childToParentMonitorPageGpa);
      break;
    case CHANNELMSG_MODIFY_CONNECTION_RESPONSE:
      buf[8] = m.connectionState;
      break;
    default: // header-only messages
      break;
  }
  return buf;
}

/** `"OFFERCHANNEL"` for 1; `"type 99"` for unknown ids. */
export function channelMessageName(msgtype: number): string {
  return CHANNELMSG_NAMES[msgtype] ?? `type ${msgtype}`;
}
