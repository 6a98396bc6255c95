/**
 * Time synchronization IC bodies (`icmsgtype` 4, class 9527e630-d0ae-497b-adce-e80ab0175caf).
 * Times are u64: `parenttime` is host UTC in 100-ns units since 1601-01-01 (Windows FILETIME);
 * `vmreferencetime` is the partition reference counter (100-ns ticks) when the host sampled `parenttime`.
 * Sources: Linux include/linux/hyperv.h (`struct ictimesync_data`, `struct ictimesync_ref_data`,
 * `ICTIMESYNCFLAG_*`, `WLTIMEDELTA`), drivers/hv/hv_util.c (`timesync_onchannelcallback`, `adj_guesttime`);
 * FreeBSD sys/dev/hyperv/utilities/vmbus_icreg.h (`vmbus_icmsg_timesync4`); OpenVMM
 * hyperv_ic_protocol/src/timesync.rs (`TimesyncMessage`, `TimesyncMessageV4`).
 */
import { ProtocolError } from '../errors.ts';
import type { IcVersion } from './icmsg.ts';

/** `flags` values (Linux `ICTIMESYNCFLAG_*`). SYNC asks the guest to set its clock; SAMPLE is a hint. */
export const ICTIMESYNCFLAG_PROBE = 0;
export const ICTIMESYNCFLAG_SYNC = 1;
export const ICTIMESYNCFLAG_SAMPLE = 2;

/** 100-ns intervals from 1601-01-01 to 1970-01-01 (Linux `WLTIMEDELTA`). */
export const WLTIMEDELTA = 116444736000000000n;

/** Message versions 1.0, 3.0, 4.0 (Linux `TS_VERSION_1`, `TS_VERSION_3`, `TS_VERSION`). 4.0 uses the ref struct. */
export const TS_VERSION_1: IcVersion = { major: 1, minor: 0 };
export const TS_VERSION_3: IcVersion = { major: 3, minor: 0 };
export const TS_VERSION: IcVersion = { major: 4, minor: 0 };

/**
 * Linux `struct ictimesync_data` (25 bytes, packed), message versions 1.0 and 3.0: `parenttime` u64 @0,
 * `childtime` u64 @8, `roundtriptime` u64 @16, `flags` u8 @24. OpenVMM's `TimesyncMessage` appends 3 reserved
 * bytes (28); {@link ICTIMESYNC_DATA_WIRE_SIZE} is what our host sends.
 */
export const ICTIMESYNC_DATA = {
  size: 25,
  offsets: { parenttime: 0, childtime: 8, roundtriptime: 16, flags: 24 },
} as const;

/**
 * Linux `struct ictimesync_ref_data` (22 bytes, packed), message version 4.0: `parenttime` u64 @0,
 * `vmreferencetime` u64 @8, `flags` u8 @16, `leapflags` u8 @17, `stratum` u8 @18, `reserved` u8[3] @19.
 * FreeBSD (`rsvd[5]`) and OpenVMM (`reserved[5]`) declare 5 reserved bytes: 24 bytes. The layout oracle checks
 * Linux's 22; our host sends 24 ({@link ICTIMESYNC_REF_DATA_WIRE_SIZE}) so every guest's length check passes.
 */
export const ICTIMESYNC_REF_DATA = {
  size: 22,
  offsets: { parenttime: 0, vmreferencetime: 8, flags: 16, leapflags: 17, stratum: 18, reserved: 19 },
} as const;

/** Body bytes our host sends for v1/v3 (OpenVMM size) and v4 (OpenVMM/FreeBSD size). */
export const ICTIMESYNC_DATA_WIRE_SIZE = 28;
export const ICTIMESYNC_REF_DATA_WIRE_SIZE = 24;

/** A decoded v1/v3 body (`ictimesync_data`). */
export interface IcTimesyncData {
  parenttime: bigint;
  childtime: bigint;
  roundtriptime: bigint;
  flags: number;
}

/** A decoded v4 body (`ictimesync_ref_data`). */
export interface IcTimesyncRefData {
  parenttime: bigint;
  vmreferencetime: bigint;
  flags: number;
  leapflags: number;
  stratum: number;
}

/** Writes a 28-byte v1/v3 body (reserved bytes zeroed). @returns 28. */
export function encodeIcTimesyncData(m: IcTimesyncData, buf: Uint8Array, offset = 0): number {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  v.setBigUint64(offset, BigInt.asUintN(64, m.parenttime), true);
  v.setBigUint64(offset + 8, BigInt.asUintN(64, m.childtime), true);
  v.setBigUint64(offset + 16, BigInt.asUintN(64, m.roundtriptime), true);
  v.setUint8(offset + 24, m.flags);
  buf.fill(0, offset + 25, offset + ICTIMESYNC_DATA_WIRE_SIZE);
  return ICTIMESYNC_DATA_WIRE_SIZE;
}

/** Writes a 24-byte v4 body (reserved bytes zeroed). @returns 24. */
export function encodeIcTimesyncRefData(m: IcTimesyncRefData, buf: Uint8Array, offset = 0): number {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  v.setBigUint64(offset, BigInt.asUintN(64, m.parenttime), true);
  v.setBigUint64(offset + 8, BigInt.asUintN(64, m.vmreferencetime), true);
  v.setUint8(offset + 16, m.flags);
  v.setUint8(offset + 17, m.leapflags);
  v.setUint8(offset + 18, m.stratum);
  buf.fill(0, offset + 19, offset + ICTIMESYNC_REF_DATA_WIRE_SIZE);
  return ICTIMESYNC_REF_DATA_WIRE_SIZE;
}

/**
 * Decodes a v1/v3 body.
 * @throws ProtocolError when the body is shorter than 25 bytes (Linux's check).
 */
export function decodeIcTimesyncData(body: Uint8Array): IcTimesyncData {
  if (body.length < ICTIMESYNC_DATA.size) {
    throw new ProtocolError(`ictimesync_data needs 25 bytes, got ${body.length}`, {
      offset: 0,
      structure: 'ictimesync_data',
    });
  }
  const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
  return {
    parenttime: v.getBigUint64(0, true),
    childtime: v.getBigUint64(8, true),
    roundtriptime: v.getBigUint64(16, true),
    flags: v.getUint8(24),
  };
}

/**
 * Decodes a v4 body.
 * @throws ProtocolError when the body is shorter than 22 bytes (Linux's check).
 */
export function decodeIcTimesyncRefData(body: Uint8Array): IcTimesyncRefData {
  if (body.length < ICTIMESYNC_REF_DATA.size) {
    throw new ProtocolError(`ictimesync_ref_data needs 22 bytes, got ${body.length}`, {
      offset: 0,
      structure: 'ictimesync_ref_data',
    });
  }
  const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
  return {
    parenttime: v.getBigUint64(0, true),
    vmreferencetime: v.getBigUint64(8, true),
    flags: v.getUint8(16),
    leapflags: v.getUint8(17),
    stratum: v.getUint8(18),
  };
}

/** Unix milliseconds → FILETIME-style 100-ns units since 1601 (`parenttime`). */
export function unixMsToParentTime(ms: number): bigint {
  return BigInt(Math.round(ms * 10_000)) + WLTIMEDELTA;
}

/** `parenttime` (100-ns since 1601) → Unix milliseconds (fractional below 1 ms kept). */
export function parentTimeToUnixMs(t: bigint): number {
  return Number(t - WLTIMEDELTA) / 10_000;
}
