// Layout oracle: sizeof/offsetof of the real Linux structs (gcc against Debian's kernel headers) compared with
// the `{ size, offsets }` layout constants in src/protocol/. Offsets use the Linux field names, so each TS
// name is also checked to exist in the C struct (a wrong name fails to compile).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HEARTBEAT_MSG_DATA } from '../../src/protocol/ic/heartbeat.ts';
import * as icmsg from '../../src/protocol/ic/icmsg.ts';
import { IC_VERSION_NEGOTIATION_MAX_VER_COUNT, ICMSG_NEGOTIATE } from '../../src/protocol/ic/negotiate.ts';
import { SHUTDOWN_MSG_DATA } from '../../src/protocol/ic/shutdown.ts';
import * as ts from '../../src/protocol/ic/timesync.ts';
import { CHANNEL_MESSAGE_LAYOUTS } from '../../src/protocol/vmbus/channel-message-layouts.ts';
import * as packet from '../../src/protocol/vmbus/packet.ts';
import * as pipe from '../../src/protocol/vmbus/pipe.ts';
import { HV_RING_BUFFER } from '../../src/protocol/vmbus/ring-control.ts';
import { kernelConstants } from './kernel-oracle.ts';

interface Layout {
  readonly size: number;
  readonly offsets: Readonly<Record<string, number>>;
}

/** Linux struct name → our layout. */
const STRUCTS: Record<string, Layout> = {
  ...(CHANNEL_MESSAGE_LAYOUTS as Record<string, Layout>),
  vmpacket_descriptor: packet.VMPACKET_DESCRIPTOR,
  vmtransfer_page_range: packet.VMTRANSFER_PAGE_RANGE,
  vmtransfer_page_packet_header: packet.VMTRANSFER_PAGE_PACKET_HEADER,
  gpa_range: packet.GPA_RANGE,
  hv_page_buffer: packet.HV_PAGE_BUFFER,
  hv_mpb_array: packet.HV_MPB_ARRAY,
  vmbus_channel_packet_page_buffer: packet.VMBUS_CHANNEL_PACKET_PAGE_BUFFER,
  vmbus_packet_mpb_array: packet.VMBUS_PACKET_MPB_ARRAY,
  hv_ring_buffer: HV_RING_BUFFER,
  vmbuspipe_hdr: pipe.VMBUSPIPE_HDR,
  ic_version: icmsg.IC_VERSION,
  icmsg_hdr: icmsg.ICMSG_HDR_LAYOUT,
  icmsg_negotiate: ICMSG_NEGOTIATE,
  heartbeat_msg_data: HEARTBEAT_MSG_DATA,
  shutdown_msg_data: SHUTDOWN_MSG_DATA,
  ictimesync_data: ts.ICTIMESYNC_DATA,
  ictimesync_ref_data: ts.ICTIMESYNC_REF_DATA,
};

/** Linux macro name → our constant (numbers compared as u32 where the macro is an unsigned HRESULT). */
const CONSTANTS: Record<string, number | bigint> = {
  ICMSG_HDR: icmsg.ICMSG_HDR,
  ICMSGTYPE_NEGOTIATE: icmsg.ICMSGTYPE_NEGOTIATE,
  ICMSGTYPE_HEARTBEAT: icmsg.ICMSGTYPE_HEARTBEAT,
  ICMSGTYPE_KVPEXCHANGE: icmsg.ICMSGTYPE_KVPEXCHANGE,
  ICMSGTYPE_SHUTDOWN: icmsg.ICMSGTYPE_SHUTDOWN,
  ICMSGTYPE_TIMESYNC: icmsg.ICMSGTYPE_TIMESYNC,
  ICMSGTYPE_VSS: icmsg.ICMSGTYPE_VSS,
  ICMSGTYPE_FCOPY: icmsg.ICMSGTYPE_FCOPY,
  ICMSGHDRFLAG_TRANSACTION: icmsg.ICMSGHDRFLAG_TRANSACTION,
  ICMSGHDRFLAG_REQUEST: icmsg.ICMSGHDRFLAG_REQUEST,
  ICMSGHDRFLAG_RESPONSE: icmsg.ICMSGHDRFLAG_RESPONSE,
  HV_S_OK: icmsg.HV_S_OK,
  HV_E_FAIL: icmsg.HV_E_FAIL,
  HV_S_CONT: icmsg.HV_S_CONT,
  HV_ERROR_NOT_SUPPORTED: icmsg.HV_ERROR_NOT_SUPPORTED,
  HV_ERROR_MACHINE_LOCKED: icmsg.HV_ERROR_MACHINE_LOCKED,
  HV_ERROR_DEVICE_NOT_CONNECTED: icmsg.HV_ERROR_DEVICE_NOT_CONNECTED,
  HV_INVALIDARG: icmsg.HV_INVALIDARG,
  HV_GUID_NOTFOUND: icmsg.HV_GUID_NOTFOUND,
  HV_ERROR_ALREADY_EXISTS: icmsg.HV_ERROR_ALREADY_EXISTS,
  HV_ERROR_DISK_FULL: icmsg.HV_ERROR_DISK_FULL,
  IC_VERSION_NEGOTIATION_MAX_VER_COUNT,
  ICTIMESYNCFLAG_PROBE: ts.ICTIMESYNCFLAG_PROBE,
  ICTIMESYNCFLAG_SYNC: ts.ICTIMESYNCFLAG_SYNC,
  ICTIMESYNCFLAG_SAMPLE: ts.ICTIMESYNCFLAG_SAMPLE,
  WLTIMEDELTA: ts.WLTIMEDELTA,
  MAX_PIPE_DATA_PAYLOAD: pipe.MAX_PIPE_DATA_PAYLOAD,
  VMBUS_PIPE_TYPE_BYTE: pipe.VMBUS_PIPE_TYPE_BYTE,
  VMBUS_PIPE_TYPE_MESSAGE: pipe.VMBUS_PIPE_TYPE_MESSAGE,
  VM_PKT_DATA_INBAND: packet.VM_PKT_DATA_INBAND,
};

const structs = Object.entries(STRUCTS);
const lines: string[] = [];
structs.forEach(([name, layout], i) => {
  lines.push(`DEFINE(S${i}, sizeof(struct ${name}));`);
  Object.keys(layout.offsets).forEach((field, j) => {
    lines.push(`DEFINE(O${i}_${j}, __builtin_offsetof(struct ${name}, ${field}));`);
  });
});
Object.keys(CONSTANTS).forEach((name, k) => {
  lines.push(`DEFINE(C${k}, ${name});`);
});
const got = kernelConstants(['linux/hyperv.h'], lines.join('\n'));

for (const [i, [name, layout]] of structs.entries()) {
  test(`struct ${name}: sizeof and offsetof match Linux`, () => {
    assert.equal(layout.size, Number(got.get(`S${i}`)), `sizeof(struct ${name})`);
    Object.entries(layout.offsets).forEach(([field, off], j) => {
      assert.equal(off, Number(got.get(`O${i}_${j}`)), `offsetof(struct ${name}, ${field})`);
    });
  });
}

test('IC and pipe constants match the Linux macros', () => {
  Object.entries(CONSTANTS).forEach(([name, value], k) => {
    const c = got.get(`C${k}`);
    assert.notEqual(c, undefined, name);
    const asU32 = typeof value === 'number' ? BigInt.asUintN(32, c!) : c;
    assert.equal(asU32, BigInt(value), name);
  });
});

test('gcc emitted every value asked for', () => {
  assert.equal(got.size, lines.length);
});

test('the oracle covers what the brief lists', () => {
  for (const s of [
    'vmbus_channel_offer_channel',
    'vmbus_channel_message_header',
    'vmbus_channel_open_channel',
    'vmbus_channel_open_result',
    'vmbus_channel_gpadl_header',
    'vmbus_channel_gpadl_body',
    'vmbus_channel_gpadl_created',
    'vmbus_channel_gpadl_teardown',
    'vmbus_channel_gpadl_torndown',
    'vmbus_channel_initiate_contact',
    'vmbus_channel_version_response',
    'vmbus_channel_rescind_offer',
    'vmbus_channel_relid_released',
    'vmbus_channel_close_channel',
    'vmbus_channel_modifychannel',
    'vmbus_channel_tl_connect_request',
    'vmpacket_descriptor',
    'vmtransfer_page_packet_header',
    'gpa_range',
    'hv_ring_buffer',
  ]) {
    assert.ok(s in STRUCTS, s);
  }
});
