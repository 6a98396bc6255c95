/**
 * The Linux KVP kernel↔daemon message, `struct hv_kvp_msg` of include/uapi/linux/hyperv.h, as read from and
 * written to `/dev/vmbus/hv_kvp` (drivers/hv/hv_kvp.c, tools/hv/hv_kvp_daemon.c). 7432 bytes as compiled by
 * gcc (a 4-byte `kvp_hdr`/`error` union, then a body union padded to 7428 at byte 4). All strings are
 * NUL-terminated UTF-8; sizes in bytes including the NUL. reference/vmbus-core-ics.md §7.2, real-peers.md §2.2.
 */
import { ProtocolError } from '../errors.ts';
import {
  HV_KVP_EXCHANGE_MAX_KEY_SIZE,
  HV_KVP_EXCHANGE_MAX_VALUE_SIZE,
  type KvpIpInfo,
  MAX_ADAPTER_ID_SIZE,
  MAX_GATEWAY_SIZE,
  MAX_IP_ADDR_SIZE,
} from '../ic/kvp.ts';
import { readCString, writeCString, writeCStringTruncated } from './strings.ts';

/** `sizeof(struct hv_kvp_msg)` with gcc on x86-64. */
export const HV_KVP_MSG_SIZE = 7432;

/** Legacy register opcode (`KVP_OP_REGISTER`) and the one current daemons use (`KVP_OP_REGISTER1`). */
export const KVP_OP_REGISTER = 4;
export const KVP_OP_REGISTER1 = 100;
/** `HV_DRV_VERSION` the Linux driver answers REGISTER1 with. */
export const HV_DRV_VERSION = '3.1';

/** Byte offsets inside `struct hv_kvp_msg`. */
export const HV_KVP_MSG = {
  size: HV_KVP_MSG_SIZE,
  offsets: {
    operation: 0,
    pool: 1,
    /** `int error`, overlays operation/pool/pad in the daemon's reply. */
    error: 0,
    body: 4,
    /** kvp_get / kvp_set value record. */
    value_type: 4,
    key_size: 8,
    value_size: 12,
    key: 16,
    value: 528,
    /** kvp_delete. */
    delete_key_size: 4,
    delete_key: 8,
    /** kvp_enum_data: index, then a value record at 8. */
    enum_index: 4,
    enum_value_type: 8,
    enum_key_size: 12,
    enum_value_size: 16,
    enum_key: 20,
    enum_value: 532,
    /** kvp_ip_val (`hv_kvp_ipaddr_value` at 4; the UTF-16 arrays hold UTF-8 here). */
    adapter_id: 4,
    addr_family: 260,
    dhcp_enabled: 261,
    ip_addr: 262,
    sub_net: 2310,
    gate_way: 4358,
    dns_addr: 5382,
    /** kvp_register.version[512]. */
    version: 4,
  },
} as const;

const O = HV_KVP_MSG.offsets;
const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** Checks a message read from or written to the device is a whole `hv_kvp_msg`. @throws ProtocolError. */
export function checkKvpMsg(msg: Uint8Array, structure = 'hv_kvp_msg'): void {
  if (msg.length < HV_KVP_MSG_SIZE) {
    throw new ProtocolError(`${structure} needs ${HV_KVP_MSG_SIZE} bytes, got ${msg.length}`, {
      offset: msg.length,
      structure,
    });
  }
}

/** A zeroed message with operation and pool set. */
export function newKvpMsg(operation: number, pool: number, into?: Uint8Array): Uint8Array {
  const m = into ?? new Uint8Array(HV_KVP_MSG_SIZE);
  m.fill(0, 0, HV_KVP_MSG_SIZE);
  m[O.operation] = operation;
  m[O.pool] = pool;
  return m;
}

/** The daemon's status word (`error`, bytes 0..3) of a reply. */
export function kvpMsgError(msg: Uint8Array): number {
  return dv(msg).getUint32(O.error, true);
}
export function setKvpMsgError(msg: Uint8Array, status: number): void {
  dv(msg).setUint32(O.error, status >>> 0, true);
}

/** Writes a kvp_get/kvp_set record: key (+ value when given); sizes = UTF-8 bytes + 1. @throws HvError when too long. */
export function putKvpValue(msg: Uint8Array, key: string, value?: string, valueSize?: number): void {
  const v = dv(msg);
  v.setUint32(O.key_size, writeCString(key, msg, O.key, HV_KVP_EXCHANGE_MAX_KEY_SIZE, 'key'), true);
  if (value !== undefined)
    v.setUint32(
      O.value_size,
      writeCString(value, msg, O.value, HV_KVP_EXCHANGE_MAX_VALUE_SIZE, 'value'),
      true,
    );
  else if (valueSize !== undefined) v.setUint32(O.value_size, valueSize, true);
}

/** Reads the kvp_get/kvp_set record as C strings (bounded by the arrays, never by the peer's sizes). */
export function getKvpValue(msg: Uint8Array): {
  valueType: number;
  keySize: number;
  valueSize: number;
  key: string;
  value: string;
} {
  const v = dv(msg);
  return {
    valueType: v.getUint32(O.value_type, true),
    keySize: v.getUint32(O.key_size, true),
    valueSize: v.getUint32(O.value_size, true),
    key: readCString(msg, O.key, HV_KVP_EXCHANGE_MAX_KEY_SIZE),
    value: readCString(msg, O.value, HV_KVP_EXCHANGE_MAX_VALUE_SIZE),
  };
}

/** Reads the kvp_enum_data record (key and value as C strings). */
export function getKvpEnum(msg: Uint8Array): { index: number; key: string; value: string } {
  return {
    index: dv(msg).getUint32(O.enum_index, true),
    key: readCString(msg, O.enum_key, HV_KVP_EXCHANGE_MAX_KEY_SIZE),
    value: readCString(msg, O.enum_value, HV_KVP_EXCHANGE_MAX_VALUE_SIZE),
  };
}

/** Writes the kvp_enum_data key/value (truncating to the arrays, as the daemon's strcpy into them is bounded). */
export function putKvpEnum(msg: Uint8Array, key: string, value: string): void {
  writeCStringTruncated(key, msg, O.enum_key, HV_KVP_EXCHANGE_MAX_KEY_SIZE);
  writeCStringTruncated(value, msg, O.enum_value, HV_KVP_EXCHANGE_MAX_VALUE_SIZE);
}

export function setKvpEnumIndex(msg: Uint8Array, index: number): void {
  dv(msg).setUint32(O.enum_index, index >>> 0, true);
}

/** kvp_delete: key_size and key. */
export function putKvpDeleteKey(msg: Uint8Array, key: string): void {
  dv(msg).setUint32(
    O.delete_key_size,
    writeCString(key, msg, O.delete_key, HV_KVP_EXCHANGE_MAX_KEY_SIZE, 'key'),
    true,
  );
}
export function getKvpDeleteKey(msg: Uint8Array): string {
  return readCString(msg, O.delete_key, HV_KVP_EXCHANGE_MAX_KEY_SIZE);
}

/** Reads kvp_ip_val (the UTF-16-sized arrays hold UTF-8 C strings on this side). */
export function getKvpIp(msg: Uint8Array): KvpIpInfo {
  return {
    adapterId: readCString(msg, O.adapter_id, 2 * MAX_ADAPTER_ID_SIZE),
    addrFamily: msg[O.addr_family]!,
    dhcpEnabled: msg[O.dhcp_enabled] !== 0,
    ipAddr: readCString(msg, O.ip_addr, 2 * MAX_IP_ADDR_SIZE),
    subNet: readCString(msg, O.sub_net, 2 * MAX_IP_ADDR_SIZE),
    gateWay: readCString(msg, O.gate_way, 2 * MAX_GATEWAY_SIZE),
    dnsAddr: readCString(msg, O.dns_addr, 2 * MAX_IP_ADDR_SIZE),
  };
}

/** Writes kvp_ip_val, each string cut to its array (Linux `process_ib_ipinfo` bounds the same way). */
export function putKvpIp(msg: Uint8Array, ip: KvpIpInfo): void {
  writeCStringTruncated(ip.adapterId, msg, O.adapter_id, 2 * MAX_ADAPTER_ID_SIZE);
  msg[O.addr_family] = ip.addrFamily;
  msg[O.dhcp_enabled] = ip.dhcpEnabled ? 1 : 0;
  writeCStringTruncated(ip.ipAddr, msg, O.ip_addr, 2 * MAX_IP_ADDR_SIZE);
  writeCStringTruncated(ip.subNet, msg, O.sub_net, 2 * MAX_IP_ADDR_SIZE);
  writeCStringTruncated(ip.gateWay, msg, O.gate_way, 2 * MAX_GATEWAY_SIZE);
  writeCStringTruncated(ip.dnsAddr, msg, O.dns_addr, 2 * MAX_IP_ADDR_SIZE);
}

/** kvp_register.version (the driver's answer to REGISTER1). */
export function putKvpRegisterVersion(msg: Uint8Array, version: string): void {
  writeCStringTruncated(version, msg, O.version, HV_KVP_EXCHANGE_MAX_KEY_SIZE);
}
export function getKvpRegisterVersion(msg: Uint8Array): string {
  return readCString(msg, O.version, HV_KVP_EXCHANGE_MAX_KEY_SIZE);
}
