/** `struct hv_kvp_msg` offsets as gcc laid them out (reference/real-peers.md §2.2) and C-string handling. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHvError } from '../../../src/protocol/errors.ts';
import {
  getKvpIp,
  getKvpValue,
  HV_KVP_MSG,
  HV_KVP_MSG_SIZE,
  newKvpMsg,
  putKvpIp,
  putKvpValue,
} from '../../../src/protocol/uapi/kvp.ts';

test('sizeof(hv_kvp_msg) = 7432; kvp_set record @4 (key @16, value @528); kvp_ip_val @4 (family @260, ip_addr @262, dns @5382)', () => {
  assert.equal(HV_KVP_MSG_SIZE, 7432);
  const o = HV_KVP_MSG.offsets;
  assert.deepEqual([o.value_type, o.key_size, o.value_size, o.key, o.value], [4, 8, 12, 16, 528]);
  assert.deepEqual([o.enum_index, o.enum_key, o.enum_value], [4, 20, 532]);
  assert.deepEqual(
    [o.adapter_id, o.addr_family, o.dhcp_enabled, o.ip_addr, o.sub_net, o.gate_way, o.dns_addr],
    [4, 260, 261, 262, 2310, 4358, 5382],
  );
});

test('sizes count UTF-8 bytes plus the NUL; a key over 511 bytes is refused', () => {
  const m = newKvpMsg(1, 0);
  putKvpValue(m, 'ké', 'vé');
  const v = getKvpValue(m);
  assert.deepEqual([v.keySize, v.valueSize, v.key, v.value], [4, 4, 'ké', 'vé']);
  assert.throws(
    () => putKvpValue(m, 'k'.repeat(512)),
    (e) => isHvError(e, 'HV_ERR_INVALID_ARGUMENT'),
  );
});

test('strings without a NUL are bounded by their array', () => {
  const m = newKvpMsg(4, 0);
  m.fill(0x41, HV_KVP_MSG.offsets.adapter_id, HV_KVP_MSG.offsets.addr_family);
  assert.equal(getKvpIp(m).adapterId.length, 256);
  putKvpIp(m, {
    adapterId: 'x',
    addrFamily: 1,
    dhcpEnabled: true,
    ipAddr: '1.2.3.4',
    subNet: '',
    gateWay: '',
    dnsAddr: '',
  });
  assert.equal(getKvpIp(m).ipAddr, '1.2.3.4');
});
