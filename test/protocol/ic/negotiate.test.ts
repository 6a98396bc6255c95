import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { HvError, ProtocolError } from '../../../src/protocol/errors.ts';
import {
  decodeIcNegotiate,
  encodeIcNegotiate,
  icmsgNegotiatePktSize,
  icmsgNegotiateSize,
} from '../../../src/protocol/ic/negotiate.ts';

const hex = (s: string) => Uint8Array.from(s.match(/[0-9a-f]{2}/g)!.map((b) => Number.parseInt(b, 16)));

test('OpenVMM-style host offer (framework 1.0, 3.0; shutdown 1.0..3.2) encodes as reference §6.2 lays it out', () => {
  const buf = new Uint8Array(32);
  const n = encodeIcNegotiate(
    {
      framework: [
        { major: 1, minor: 0 },
        { major: 3, minor: 0 },
      ],
      message: [
        { major: 1, minor: 0 },
        { major: 3, minor: 0 },
        { major: 3, minor: 1 },
        { major: 3, minor: 2 },
      ],
    },
    buf,
  );
  assert.equal(n, 8 + 4 * 6);
  // counts 2/4, reserved 0, then {major, minor} u16 pairs, major first
  assert.deepEqual(
    buf,
    hex('0200 0400 00000000 0100 0000 0300 0000 0100 0000 0300 0000 0300 0100 0300 0200'),
  );
});

test('Linux ICMSG_NEGOTIATE_PKT_SIZE: 28 + 8 + 4 * (fw + msg)', () => {
  assert.equal(icmsgNegotiatePktSize(2, 4), 60);
  assert.equal(icmsgNegotiateSize(1, 1), 16);
});

test('decode rejects counts above 100 and versions past the end of the body', () => {
  assert.throws(() => decodeIcNegotiate(hex('6500 0000 00000000')), ProtocolError); // 101 framework versions
  assert.throws(() => decodeIcNegotiate(hex('0000 6500 00000000')), ProtocolError);
  assert.throws(() => decodeIcNegotiate(hex('0100 0100 00000000 0300 0000')), ProtocolError); // needs 16
  assert.throws(() => decodeIcNegotiate(hex('0100 00')), ProtocolError);
  assert.deepEqual(decodeIcNegotiate(hex('0100 0100 00000000 0300 0000 0400 0000')), {
    framework: [{ major: 3, minor: 0 }],
    message: [{ major: 4, minor: 0 }],
  });
});

test('encode refuses more than 100 versions in a list', () => {
  const many = Array.from({ length: 101 }, () => ({ major: 1, minor: 0 }));
  assert.throws(
    () => encodeIcNegotiate({ framework: many, message: [] }, new Uint8Array(1000)),
    (e) => e instanceof HvError && e.code === 'HV_ERR_INVALID_ARGUMENT',
  );
});

test('round trip and totality', () => {
  const ver = fc.record(
    { major: fc.integer({ min: 0, max: 0xffff }), minor: fc.integer({ min: 0, max: 0xffff }) },
    { noNullPrototype: true },
  );
  fc.assert(
    fc.property(
      fc.array(ver, { maxLength: 100 }),
      fc.array(ver, { maxLength: 100 }),
      (framework, message) => {
        const buf = new Uint8Array(icmsgNegotiateSize(framework.length, message.length));
        encodeIcNegotiate({ framework, message }, buf);
        assert.deepEqual(decodeIcNegotiate(buf), { framework, message });
      },
    ),
    { numRuns: 50 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      try {
        const n = decodeIcNegotiate(bytes);
        assert.ok(8 + 4 * (n.framework.length + n.message.length) <= bytes.length);
      } catch (e) {
        assert.ok(e instanceof ProtocolError);
      }
    }),
  );
});
