/**
 * KVP (Data Exchange) IC messages on the VMBus wire, the body after the 28-byte pipe + icmsg header.
 * Linux include/uapi/linux/hyperv.h (`struct hv_kvp_msg` as the host sends it: `hv_kvp_hdr`,
 * `hv_kvp_exchg_msg_value`, `hv_kvp_msg_delete`, `hv_kvp_msg_enumerate`, and `struct hv_kvp_ip_msg` whose
 * `hv_kvp_ipaddr_value` starts right after operation/pool, with no pad), drivers/hv/hv_kvp.c; OpenVMM
 * vm/devices/hyperv_ic_protocol/src/kvp.rs. Strings are UTF-16LE, NUL-terminated; sizes in bytes with the NUL.
 * Offsets below are from the start of the IC body (payload offset 28); reference/vmbus-core-ics.md §6.6.
 */
import { ProtocolError } from '../errors.ts';
import { readUtf16Z, writeUtf16Z, writeUtf16ZTruncated } from '../uapi/strings.ts';

/** `enum hv_kvp_exchg_op`. */
export const KVP_OP_GET = 0;
export const KVP_OP_SET = 1;
export const KVP_OP_DELETE = 2;
export const KVP_OP_ENUMERATE = 3;
export const KVP_OP_GET_IP_INFO = 4;
export const KVP_OP_SET_IP_INFO = 5;
export type KvpOperation = 0 | 1 | 2 | 3 | 4 | 5;

/** `enum hv_kvp_exchg_pool`. */
export const KVP_POOL_EXTERNAL = 0;
export const KVP_POOL_GUEST = 1;
export const KVP_POOL_AUTO = 2;
export const KVP_POOL_AUTO_EXTERNAL = 3;
export const KVP_POOL_AUTO_INTERNAL = 4;
export const KVP_POOL_COUNT = 5;
export type KvpPool = 0 | 1 | 2 | 3 | 4;

/** Value types: Linux `REG_SZ 1, REG_U32 4, REG_U64 8`; OpenVMM adds EXPAND_STRING 2 and QWORD 11. */
export const REG_SZ = 1;
export const REG_EXPAND_SZ = 2;
export const REG_U32 = 4;
export const REG_U64 = 8;
export const REG_QWORD = 11;

/** `HV_KVP_EXCHANGE_MAX_KEY_SIZE` / `_VALUE_SIZE`, bytes (UTF-16 on the wire, UTF-8 to the daemon). */
export const HV_KVP_EXCHANGE_MAX_KEY_SIZE = 512;
export const HV_KVP_EXCHANGE_MAX_VALUE_SIZE = 2048;

/** Address families (`ADDR_FAMILY_*`), a bit mask. */
export const ADDR_FAMILY_NONE = 0;
export const ADDR_FAMILY_IPV4 = 1;
export const ADDR_FAMILY_IPV6 = 2;

/** String array sizes of `hv_kvp_ipaddr_value`, in UTF-16 units. */
export const MAX_ADAPTER_ID_SIZE = 128;
export const MAX_IP_ADDR_SIZE = 1024;
export const MAX_GATEWAY_SIZE = 512;

/** `struct hv_kvp_exchg_msg_value` (2572 bytes). */
export const HV_KVP_EXCHG_MSG_VALUE = {
  size: 2572,
  offsets: { value_type: 0, key_size: 4, value_size: 8, key: 12, value: 524 },
} as const;

/** `struct hv_kvp_ipaddr_value` (7426 bytes, packed, u16 strings). */
export const HV_KVP_IPADDR_VALUE = {
  size: 7426,
  offsets: {
    adapter_id: 0,
    addr_family: 256,
    dhcp_enabled: 257,
    ip_addr: 258,
    sub_net: 2306,
    gate_way: 4354,
    dns_addr: 5378,
  },
} as const;

/** Where each operation's data starts in the IC body, and the body size each needs. */
export const KVP_IC_BODY = {
  /** `hv_kvp_hdr`: operation u8 @0, pool u8 @1, pad u16 @2. */
  operation: 0,
  pool: 1,
  /** GET/SET: value record @4. */
  value: 4,
  /** DELETE: key_size u32 @4, key[512] @8. */
  deleteKeySize: 4,
  deleteKey: 8,
  /** ENUMERATE: index u32 @4, value record @8. */
  enumIndex: 4,
  enumValue: 8,
  /** GET_IP_INFO / SET_IP_INFO (`hv_kvp_ip_msg`): `hv_kvp_ipaddr_value` @2. */
  ip: 2,
  sizes: { value: 4 + 2572, delete: 8 + 512, enumerate: 8 + 2572, ip: 2 + 7426 },
} as const;

/** A value as carried by SET: a string, or a number for REG_U32 / REG_U64 / REG_QWORD. */
export type KvpValue =
  | { type: 'string'; value: string }
  | { type: 'u32'; value: number }
  | { type: 'u64'; value: bigint };

/** `hv_kvp_ipaddr_value` decoded; string lists stay `;`-separated as on the wire. */
export interface KvpIpInfo {
  adapterId: string;
  addrFamily: number;
  dhcpEnabled: boolean;
  ipAddr: string;
  subNet: string;
  gateWay: string;
  dnsAddr: string;
}

/** A host request. */
export type KvpRequest =
  | { operation: 0; pool: number; key: string; valueSize: number }
  | { operation: 1; pool: number; key: string; value: KvpValue }
  | { operation: 2; pool: number; key: string }
  | { operation: 3; pool: number; index: number }
  | { operation: 4; pool: number; ip: KvpIpInfo }
  | { operation: 5; pool: number; ip: KvpIpInfo };

const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

function need(body: Uint8Array, n: number, structure: string): void {
  if (body.length < n) {
    throw new ProtocolError(`${structure} needs ${n} body bytes, got ${body.length}`, {
      offset: 28 + body.length,
      structure,
    });
  }
}

/** The operation byte, or a ProtocolError for a body shorter than the 2-byte header or an unknown op. */
export function kvpOperation(body: Uint8Array): KvpOperation {
  need(body, 2, 'hv_kvp_hdr');
  const op = body[0]!;
  if (op > KVP_OP_SET_IP_INFO) {
    throw new ProtocolError(`unknown KVP operation ${op}`, { offset: 28, structure: 'hv_kvp_hdr' });
  }
  return op as KvpOperation;
}

function readIp(body: Uint8Array): KvpIpInfo {
  const b = KVP_IC_BODY.ip;
  const o = HV_KVP_IPADDR_VALUE.offsets;
  return {
    adapterId: readUtf16Z(body, b + o.adapter_id, 2 * MAX_ADAPTER_ID_SIZE),
    addrFamily: body[b + o.addr_family]!,
    dhcpEnabled: body[b + o.dhcp_enabled] !== 0,
    ipAddr: readUtf16Z(body, b + o.ip_addr, 2 * MAX_IP_ADDR_SIZE),
    subNet: readUtf16Z(body, b + o.sub_net, 2 * MAX_IP_ADDR_SIZE),
    gateWay: readUtf16Z(body, b + o.gate_way, 2 * MAX_GATEWAY_SIZE),
    dnsAddr: readUtf16Z(body, b + o.dns_addr, 2 * MAX_IP_ADDR_SIZE),
  };
}

/**
 * Decodes a host request body (total: any bytes give a request or a ProtocolError).
 * Key/value strings are read up to their NUL within min(key_size, field) bytes, unpaired surrogates dropped
 * (Linux `utf16s_to_utf8s`). REG_U32 reads u32, REG_U64/REG_QWORD u64; any other type is a string.
 * @throws ProtocolError for a short body or an unknown operation.
 */
export function decodeKvpRequest(body: Uint8Array): KvpRequest {
  const operation = kvpOperation(body);
  const pool = body[1]!;
  const v = dv(body);
  const x = HV_KVP_EXCHG_MSG_VALUE.offsets;
  const key = (at: number, size: number) =>
    readUtf16Z(body, at, Math.min(size, HV_KVP_EXCHANGE_MAX_KEY_SIZE));
  switch (operation) {
    case KVP_OP_GET:
    case KVP_OP_SET: {
      need(body, KVP_IC_BODY.sizes.value, 'hv_kvp_msg_set');
      const at = KVP_IC_BODY.value;
      const k = key(at + x.key, v.getUint32(at + x.key_size, true));
      const valueSize = v.getUint32(at + x.value_size, true);
      if (operation === KVP_OP_GET) return { operation, pool, key: k, valueSize };
      const type = v.getUint32(at + x.value_type, true);
      let value: KvpValue;
      if (type === REG_U32) value = { type: 'u32', value: v.getUint32(at + x.value, true) };
      else if (type === REG_U64 || type === REG_QWORD)
        value = { type: 'u64', value: v.getBigUint64(at + x.value, true) };
      else
        value = {
          type: 'string',
          value: readUtf16Z(body, at + x.value, Math.min(valueSize, HV_KVP_EXCHANGE_MAX_VALUE_SIZE)),
        };
      return { operation, pool, key: k, value };
    }
    case KVP_OP_DELETE:
      need(body, KVP_IC_BODY.sizes.delete, 'hv_kvp_msg_delete');
      return {
        operation,
        pool,
        key: key(KVP_IC_BODY.deleteKey, v.getUint32(KVP_IC_BODY.deleteKeySize, true)),
      };
    case KVP_OP_ENUMERATE:
      need(body, KVP_IC_BODY.sizes.enumerate, 'hv_kvp_msg_enumerate');
      return { operation, pool, index: v.getUint32(KVP_IC_BODY.enumIndex, true) };
    default:
      need(body, KVP_IC_BODY.sizes.ip, 'hv_kvp_ip_msg');
      return { operation, pool, ip: readIp(body) };
  }
}

function writeIp(ip: KvpIpInfo, body: Uint8Array): void {
  const b = KVP_IC_BODY.ip;
  const o = HV_KVP_IPADDR_VALUE.offsets;
  writeUtf16Z(ip.adapterId, body, b + o.adapter_id, 2 * MAX_ADAPTER_ID_SIZE, 'adapter_id');
  body[b + o.addr_family] = ip.addrFamily;
  body[b + o.dhcp_enabled] = ip.dhcpEnabled ? 1 : 0;
  writeUtf16Z(ip.ipAddr, body, b + o.ip_addr, 2 * MAX_IP_ADDR_SIZE, 'ip_addr');
  writeUtf16Z(ip.subNet, body, b + o.sub_net, 2 * MAX_IP_ADDR_SIZE, 'sub_net');
  writeUtf16Z(ip.gateWay, body, b + o.gate_way, 2 * MAX_GATEWAY_SIZE, 'gate_way');
  writeUtf16Z(ip.dnsAddr, body, b + o.dns_addr, 2 * MAX_IP_ADDR_SIZE, 'dns_addr');
}

/**
 * Encodes a host request body at `buf[off]` (the body region is zeroed first).
 * SET strings go as REG_SZ; u32 as REG_U32; u64 as REG_U64 (8, the value Linux knows).
 * @returns the body length in bytes (2576, 520, 2580 or 7428).
 * @throws HvError `HV_ERR_INVALID_ARGUMENT` when a key exceeds 512 bytes or a value 2048 bytes as UTF-16 with NUL.
 */
export function encodeKvpRequest(req: KvpRequest, buf: Uint8Array, off = 0): number {
  const s = KVP_IC_BODY.sizes;
  const len =
    req.operation <= KVP_OP_SET
      ? s.value
      : req.operation === KVP_OP_DELETE
        ? s.delete
        : req.operation === KVP_OP_ENUMERATE
          ? s.enumerate
          : s.ip;
  const body = buf.subarray(off, off + len);
  body.fill(0);
  body[0] = req.operation;
  body[1] = req.pool;
  const v = dv(body);
  const x = HV_KVP_EXCHG_MSG_VALUE.offsets;
  const at = KVP_IC_BODY.value;
  switch (req.operation) {
    case KVP_OP_GET:
      v.setUint32(
        at + x.key_size,
        writeUtf16Z(req.key, body, at + x.key, HV_KVP_EXCHANGE_MAX_KEY_SIZE, 'key'),
        true,
      );
      v.setUint32(at + x.value_size, req.valueSize, true);
      break;
    case KVP_OP_SET: {
      v.setUint32(
        at + x.key_size,
        writeUtf16Z(req.key, body, at + x.key, HV_KVP_EXCHANGE_MAX_KEY_SIZE, 'key'),
        true,
      );
      const val = req.value;
      if (val.type === 'string') {
        v.setUint32(at + x.value_type, REG_SZ, true);
        v.setUint32(
          at + x.value_size,
          writeUtf16Z(val.value, body, at + x.value, HV_KVP_EXCHANGE_MAX_VALUE_SIZE, 'value'),
          true,
        );
      } else if (val.type === 'u32') {
        v.setUint32(at + x.value_type, REG_U32, true);
        v.setUint32(at + x.value_size, 4, true);
        v.setUint32(at + x.value, val.value >>> 0, true);
      } else {
        v.setUint32(at + x.value_type, REG_U64, true);
        v.setUint32(at + x.value_size, 8, true);
        v.setBigUint64(at + x.value, val.value, true);
      }
      break;
    }
    case KVP_OP_DELETE:
      v.setUint32(
        KVP_IC_BODY.deleteKeySize,
        writeUtf16Z(req.key, body, KVP_IC_BODY.deleteKey, HV_KVP_EXCHANGE_MAX_KEY_SIZE, 'key'),
        true,
      );
      break;
    case KVP_OP_ENUMERATE:
      v.setUint32(KVP_IC_BODY.enumIndex, req.index, true);
      break;
    default:
      writeIp(req.ip, body);
  }
  return len;
}

/** What the guest answered (its `icmsg_hdr.status` is separate). */
export interface KvpReply {
  key: string;
  value: string;
}

/**
 * Reads the key/value the guest returned for GET (record @4) or ENUMERATE (record @8), REG_SZ UTF-16.
 * @throws ProtocolError for a body too short for the operation's record.
 */
export function decodeKvpReply(operation: 0 | 3, body: Uint8Array): KvpReply {
  const at = operation === KVP_OP_GET ? KVP_IC_BODY.value : KVP_IC_BODY.enumValue;
  need(body, at + HV_KVP_EXCHG_MSG_VALUE.size, 'hv_kvp_exchg_msg_value');
  const v = dv(body);
  const x = HV_KVP_EXCHG_MSG_VALUE.offsets;
  return {
    key: readUtf16Z(
      body,
      at + x.key,
      Math.min(v.getUint32(at + x.key_size, true), HV_KVP_EXCHANGE_MAX_KEY_SIZE),
    ),
    value: readUtf16Z(
      body,
      at + x.value,
      Math.min(v.getUint32(at + x.value_size, true), HV_KVP_EXCHANGE_MAX_VALUE_SIZE),
    ),
  };
}

/** Reads the IP info the guest filled for GET_IP_INFO. @throws ProtocolError for a short body. */
export function decodeKvpIpReply(body: Uint8Array): KvpIpInfo {
  need(body, KVP_IC_BODY.sizes.ip, 'hv_kvp_ip_msg');
  return readIp(body);
}

/**
 * Guest side: writes a GET/ENUMERATE answer into the request body in place, as Linux `kvp_respond_to_host`:
 * key (ENUMERATE only) and value as UTF-16 capped at 254 / 1022 units, sizes 2 × (units + 1), type REG_SZ.
 */
export function writeKvpReply(operation: 0 | 3, body: Uint8Array, key: string, value: string): void {
  const at = operation === KVP_OP_GET ? KVP_IC_BODY.value : KVP_IC_BODY.enumValue;
  const v = dv(body);
  const x = HV_KVP_EXCHG_MSG_VALUE.offsets;
  if (operation === KVP_OP_ENUMERATE) {
    v.setUint32(
      at + x.key_size,
      writeUtf16ZTruncated(key, body, at + x.key, HV_KVP_EXCHANGE_MAX_KEY_SIZE / 2 - 2),
      true,
    );
  }
  v.setUint32(
    at + x.value_size,
    writeUtf16ZTruncated(value, body, at + x.value, HV_KVP_EXCHANGE_MAX_VALUE_SIZE / 2 - 2),
    true,
  );
  v.setUint32(at + x.value_type, REG_SZ, true);
}

/** Guest side: writes GET_IP_INFO results into the request body in place (Linux `process_ob_ipinfo`). */
export function writeKvpIpReply(body: Uint8Array, ip: KvpIpInfo): void {
  const b = KVP_IC_BODY.ip;
  const o = HV_KVP_IPADDR_VALUE.offsets;
  writeUtf16ZTruncated(ip.adapterId, body, b + o.adapter_id, MAX_ADAPTER_ID_SIZE - 1);
  body[b + o.addr_family] = ip.addrFamily;
  body[b + o.dhcp_enabled] = ip.dhcpEnabled ? 1 : 0;
  writeUtf16ZTruncated(ip.ipAddr, body, b + o.ip_addr, MAX_IP_ADDR_SIZE - 1);
  writeUtf16ZTruncated(ip.subNet, body, b + o.sub_net, MAX_IP_ADDR_SIZE - 1);
  writeUtf16ZTruncated(ip.gateWay, body, b + o.gate_way, MAX_GATEWAY_SIZE - 1);
  writeUtf16ZTruncated(ip.dnsAddr, body, b + o.dns_addr, MAX_IP_ADDR_SIZE - 1);
}
