// Heartbeat, shutdown and timesync bodies (src/protocol/ic/{heartbeat,shutdown,timesync}.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ProtocolError } from '../../../src/protocol/errors.ts';
import {
  decodeHeartbeatMsgData,
  encodeHeartbeatMsgData,
  incrementHeartbeatSeq,
} from '../../../src/protocol/ic/heartbeat.ts';
import {
  decodeShutdownMsgData,
  encodeShutdownMsgData,
  SHTDN_REASON_FLAG_PLANNED,
  SHUTDOWN_FLAG_FORCE,
  SHUTDOWN_FLAG_RESTART,
} from '../../../src/protocol/ic/shutdown.ts';
import {
  decodeIcTimesyncData,
  decodeIcTimesyncRefData,
  encodeIcTimesyncData,
  encodeIcTimesyncRefData,
  ICTIMESYNCFLAG_SAMPLE,
  ICTIMESYNCFLAG_SYNC,
  parentTimeToUnixMs,
  unixMsToParentTime,
  WLTIMEDELTA,
} from '../../../src/protocol/ic/timesync.ts';

const hex = (s: string) => Uint8Array.from(s.match(/[0-9a-f]{2}/g)!.map((b) => Number.parseInt(b, 16)));

function totalDecoder(decode: (b: Uint8Array) => unknown) {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      try {
        decode(bytes);
      } catch (e) {
        assert.ok(e instanceof ProtocolError);
      }
    }),
  );
}

test('heartbeat body: seq_num u64 @0, application_state @8, 40 bytes in all', () => {
  const buf = new Uint8Array(40).fill(0xee);
  assert.equal(encodeHeartbeatMsgData({ seq_num: 0x0102030405060708n, application_state: 1 }, buf), 40);
  assert.deepEqual(buf.subarray(0, 12), hex('0807060504030201 01000000'));
  assert.ok(buf.subarray(12).every((b) => b === 0));
  assert.deepEqual(decodeHeartbeatMsgData(buf.subarray(0, 8)), {
    seq_num: 0x0102030405060708n,
    application_state: 0,
  });
  assert.throws(() => decodeHeartbeatMsgData(new Uint8Array(7)), ProtocolError);
  totalDecoder(decodeHeartbeatMsgData);
});

test('guest increment of seq_num carries across the 32-bit halves and wraps at 2^64', () => {
  const b = hex('ffffffff00000000');
  incrementHeartbeatSeq(b);
  assert.deepEqual(b, hex('0000000001000000'));
  const w = hex('ffffffffffffffff');
  incrementHeartbeatSeq(w);
  assert.deepEqual(w, hex('0000000000000000'));
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (seq) => {
      const buf = new Uint8Array(40);
      encodeHeartbeatMsgData({ seq_num: seq, application_state: 0 }, buf);
      incrementHeartbeatSeq(buf);
      assert.equal(decodeHeartbeatMsgData(buf).seq_num, (seq + 1n) % (1n << 64n));
    }),
  );
});

test('shutdown body: reason @0, timeout @4, flags @8, display_message @12, 2060 bytes', () => {
  const buf = new Uint8Array(2060).fill(0xee);
  const n = encodeShutdownMsgData(
    {
      reason_code: SHTDN_REASON_FLAG_PLANNED,
      timeout_seconds: 30,
      flags: SHUTDOWN_FLAG_RESTART | SHUTDOWN_FLAG_FORCE,
      display_message: hex('6869'),
    },
    buf,
  );
  assert.equal(n, 2060);
  assert.deepEqual(buf.subarray(0, 16), hex('00000080 1e000000 03000000 68690000'));
  assert.ok(buf.subarray(14).every((b) => b === 0));
  const d = decodeShutdownMsgData(buf);
  assert.equal(d.reason_code, 0x80000000);
  assert.equal(d.flags, 3);
  assert.equal(d.display_message.length, 2048);
  assert.throws(() => decodeShutdownMsgData(new Uint8Array(11)), ProtocolError);
  totalDecoder(decodeShutdownMsgData);
});

test('timesync v4 body: parenttime @0, vmreferencetime @8, flags @16, leap @17, stratum @18; 24 bytes sent', () => {
  const buf = new Uint8Array(24).fill(0xee);
  const n = encodeIcTimesyncRefData(
    {
      parenttime: WLTIMEDELTA,
      vmreferencetime: 0x1122n,
      flags: ICTIMESYNCFLAG_SYNC,
      leapflags: 0,
      stratum: 2,
    },
    buf,
  );
  assert.equal(n, 24);
  // 116444736000000000 = 0x019db1ded53e8000
  assert.deepEqual(buf, hex('00803ed5deb19d01 2211000000000000 01 00 02 0000000000'));
  assert.deepEqual(decodeIcTimesyncRefData(buf.subarray(0, 22)), {
    parenttime: WLTIMEDELTA,
    vmreferencetime: 0x1122n,
    flags: 1,
    leapflags: 0,
    stratum: 2,
  });
  assert.throws(() => decodeIcTimesyncRefData(new Uint8Array(21)), ProtocolError);
  totalDecoder(decodeIcTimesyncRefData);
});

test('timesync v1/v3 body: parenttime, childtime, roundtriptime, flags @24; 28 bytes sent', () => {
  const buf = new Uint8Array(28).fill(0xee);
  encodeIcTimesyncData(
    { parenttime: 1n, childtime: 2n, roundtriptime: 3n, flags: ICTIMESYNCFLAG_SAMPLE },
    buf,
  );
  assert.deepEqual(buf, hex('0100000000000000 0200000000000000 0300000000000000 02 000000'));
  assert.equal(decodeIcTimesyncData(buf.subarray(0, 25)).flags, 2);
  assert.throws(() => decodeIcTimesyncData(new Uint8Array(24)), ProtocolError);
  totalDecoder(decodeIcTimesyncData);
});

test('FILETIME conversion: Unix epoch is WLTIMEDELTA; 1 ms is 10000 ticks', () => {
  assert.equal(unixMsToParentTime(0), 116444736000000000n);
  assert.equal(unixMsToParentTime(1), 116444736000010000n);
  // 2024-01-01T00:00:00Z as a Windows FILETIME is 133485408000000000.
  assert.equal(unixMsToParentTime(Date.UTC(2024, 0, 1)), 133485408000000000n);
  assert.equal(parentTimeToUnixMs(133485408000000000n), Date.UTC(2024, 0, 1));
});
