/**
 * vstor_packet / vmscsi_request / channel properties: byte offsets from the layout tables of
 * reference/devices.md B.2, B.5, B.6 (Linux storvsc_drv.c, FreeBSD hv_vstorage.h, OpenVMM storvsp_protocol),
 * round trips, and totality of the decoders on arbitrary bytes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ProtocolError } from '../../../src/protocol/errors.ts';
import * as vs from '../../../src/protocol/vstor/constants.ts';
import {
  decodeChannelProperties,
  decodeFcWwnPacket,
  decodeProtocolVersion,
  decodeSubChannelCount,
  decodeVstorPacket,
  encodeChannelProperties,
  encodeFcWwnPacket,
  encodeProtocolVersion,
  encodeVstorPacket,
  newVmscsiRequest,
  readVmscsiRequest,
  writeVmscsiRequest,
} from '../../../src/protocol/vstor/packet.ts';

test('constants match Linux storvsc_drv.c / devices.md B.1, B.3, B.7', () => {
  assert.deepEqual(
    [
      vs.VMSTOR_PROTO_VERSION_WIN6,
      vs.VMSTOR_PROTO_VERSION_WIN7,
      vs.VMSTOR_PROTO_VERSION_WIN8,
      vs.VMSTOR_PROTO_VERSION_WIN8_1,
      vs.VMSTOR_PROTO_VERSION_WIN10,
    ],
    [0x0200, 0x0402, 0x0501, 0x0600, 0x0602],
  );
  assert.equal(vs.VSTOR_OPERATION_EXECUTE_SRB, 3);
  assert.equal(vs.VSTOR_OPERATION_QUERY_PROPERTIES, 10);
  assert.equal(vs.VSTOR_OPERATION_ENUMERATE_BUS, 11);
  assert.equal(vs.VSTOR_OPERATION_CREATE_SUB_CHANNELS, 13);
  assert.equal(vs.VSTOR_PACKET_SIZE, 64);
  assert.equal(vs.VSTOR_PACKET_SIZE - vs.VMSCSI_SIZE_DELTA, 48);
  assert.equal(vs.ntStatusForSrb(vs.SRB_STATUS_INVALID_LUN), 0xc00000c0);
  assert.equal(vs.ntStatusForSrb(vs.SRB_STATUS_SUCCESS | vs.SRB_STATUS_AUTOSENSE_VALID), 0);
  assert.equal(vs.ntStatusForSrb(vs.SRB_STATUS_ERROR | vs.SRB_STATUS_AUTOSENSE_VALID), 0xc0000185);
});

test('QUERY_PROTOCOL_VERSION WIN10 packet: 64 bytes, operation 9, flags 1, major_minor 0x0602 at 12', () => {
  const b = encodeVstorPacket({ operation: 9, flags: 1, status: 0, payload: encodeProtocolVersion(0x0602) });
  const want = new Uint8Array(64);
  want.set([9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x06, 0, 0]);
  assert.deepEqual(b, want);
  assert.equal(decodeProtocolVersion(decodeVstorPacket(b).payload), 0x0602);
  assert.equal(encodeVstorPacket({ operation: 1, flags: 0, status: 0 }, 48).length, 48);
});

test('vmscsi_request field offsets (packet offsets = 12 + B.6 offsets)', () => {
  const b = new Uint8Array(64);
  const r = newVmscsiRequest();
  Object.assign(r, {
    length: 0x34,
    srbStatus: 0x81,
    scsiStatus: 0x02,
    portNumber: 1,
    pathId: 2,
    targetId: 3,
    lun: 4,
    cdbLength: 10,
    senseInfoLength: 0x14,
    dataIn: 1,
    dataTransferLength: 0x11223344,
    queueTag: 0xff,
    queueAction: 0x20,
    srbFlags: 0x14a,
    timeOutValue: 60,
    queueSortKey: 0x55667788,
  });
  r.cdbOrSense.set([0x28, 0, 0, 0, 0x10, 0, 0, 0, 8, 0]);
  writeVmscsiRequest(b, 12, r);
  const v = new DataView(b.buffer);
  assert.equal(v.getUint16(12, true), 0x34);
  assert.deepEqual([...b.subarray(14, 23)], [0x81, 0x02, 1, 2, 3, 4, 10, 0x14, 1]);
  assert.equal(v.getUint32(24, true), 0x11223344);
  assert.equal(b[28], 0x28);
  assert.equal(b[32], 0x10);
  assert.equal(b[50], 0xff); // queue_tag @38
  assert.equal(b[51], 0x20); // queue_action @39
  assert.equal(v.getUint32(52, true), 0x14a); // srb_flags @40
  assert.equal(v.getUint32(56, true), 60); // time_out_value @44
  assert.equal(v.getUint32(60, true), 0x55667788); // queue_sort_key @48
  const back = readVmscsiRequest(b, 12, newVmscsiRequest());
  assert.deepEqual(back, r);
  // A 48-byte (pre-WIN8) packet has no extension: the fields read as 0.
  const short = readVmscsiRequest(b.subarray(0, 48), 12, newVmscsiRequest());
  assert.equal(short.srbFlags, 0);
  assert.equal(short.dataTransferLength, 0x11223344);
});

test('channel properties: max_channel_cnt @4 u16, flags @8, max_transfer_bytes @12; FC WWN layout', () => {
  const p = encodeChannelProperties({ maxChannelCount: 7, flags: 1, maxTransferBytes: 0x40000 });
  const want = new Uint8Array(24);
  want.set([7, 0], 4);
  want.set([1, 0, 0, 0], 8);
  want.set([0, 0, 4, 0], 12);
  assert.deepEqual(p, want);
  assert.deepEqual(decodeChannelProperties(p), { maxChannelCount: 7, flags: 1, maxTransferBytes: 0x40000 });
  const w = (x: number) => Uint8Array.from({ length: 8 }, (_, i) => x + i);
  const fcb = encodeFcWwnPacket({
    primaryActive: true,
    primaryPortWwn: w(0x10),
    primaryNodeWwn: w(0x20),
    secondaryPortWwn: w(0x30),
    secondaryNodeWwn: w(0x40),
  });
  assert.equal(fcb[0], 1);
  assert.equal(fcb[4], 0x10);
  assert.equal(fcb[12], 0x20);
  assert.equal(fcb[20], 0x30);
  assert.equal(fcb[28], 0x40);
  assert.deepEqual(decodeFcWwnPacket(fcb).secondaryNodeWwn, w(0x40));
});

test('decoders are total: any bytes → value or ProtocolError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 100 }), fc.nat(80), (bytes, base) => {
      for (const f of [
        () => decodeVstorPacket(bytes),
        () => readVmscsiRequest(bytes, Math.min(base, bytes.length), newVmscsiRequest()),
        () => decodeChannelProperties(bytes),
        () => decodeProtocolVersion(bytes),
        () => decodeSubChannelCount(bytes),
        () => decodeFcWwnPacket(bytes),
      ]) {
        try {
          f();
        } catch (e) {
          assert.ok(e instanceof ProtocolError, String(e));
        }
      }
    }),
    { numRuns: 2000 },
  );
});

test('vstor_packet round trip: decode(encode(x)) keeps header and payload', () => {
  fc.assert(
    fc.property(
      fc.nat(0xffffffff),
      fc.nat(0xffffffff),
      fc.nat(0xffffffff),
      fc.uint8Array({ maxLength: 52 }),
      (operation, flags, status, payload) => {
        const d = decodeVstorPacket(encodeVstorPacket({ operation, flags, status, payload }));
        assert.equal(d.operation, operation);
        assert.equal(d.flags, flags);
        assert.equal(d.status, status);
        assert.deepEqual(d.payload.subarray(0, payload.length), payload);
      },
    ),
  );
});
