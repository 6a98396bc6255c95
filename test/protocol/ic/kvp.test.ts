/**
 * KVP IC codecs: offsets from reference/vmbus-core-ics.md §6.6 (payload offsets; the body starts at 28),
 * round trips, totality on random bytes, size limits and the Linux UTF-16 rules.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isHvError, ProtocolError } from '../../../src/protocol/errors.ts';
import {
  decodeKvpRequest,
  encodeKvpRequest,
  KVP_IC_BODY,
  type KvpRequest,
} from '../../../src/protocol/ic/kvp.ts';

const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
/** Payload offset → body offset. */
const at = (payloadOffset: number) => payloadOffset - 28;

test('SET puts value_type @32, key_size @36, value_size @40, key @44, value @556 of the payload', () => {
  const b = new Uint8Array(8192);
  const n = encodeKvpRequest(
    { operation: 1, pool: 3, key: 'Ab', value: { type: 'string', value: 'xyz' } },
    b,
  );
  assert.equal(n, 2604 - 28);
  assert.deepEqual([b[0], b[1]], [1, 3]);
  assert.equal(dv(b).getUint32(at(32), true), 1); // REG_SZ
  assert.equal(dv(b).getUint32(at(36), true), 6); // 2 chars + NUL, UTF-16
  assert.equal(dv(b).getUint32(at(40), true), 8);
  assert.deepEqual([...b.subarray(at(44), at(44) + 6)], [0x41, 0, 0x62, 0, 0, 0]);
  assert.deepEqual([...b.subarray(at(556), at(556) + 8)], [0x78, 0, 0x79, 0, 0x7a, 0, 0, 0]);
});

test('DELETE: key_size @32, key @36; ENUMERATE: index @32, record @36; IP info: adapter_id @30, family @286, ip_addr @288, dns @5408', () => {
  const b = new Uint8Array(8192);
  assert.equal(encodeKvpRequest({ operation: 2, pool: 0, key: 'K' }, b), 548 - 28);
  assert.equal(dv(b).getUint32(at(32), true), 4);
  assert.equal(b[at(36)], 0x4b);
  assert.equal(encodeKvpRequest({ operation: 3, pool: 2, index: 7 }, b), 2608 - 28);
  assert.equal(dv(b).getUint32(at(32), true), 7);
  const ip = {
    adapterId: 'M',
    addrFamily: 3,
    dhcpEnabled: true,
    ipAddr: '1',
    subNet: '2',
    gateWay: '3',
    dnsAddr: '4',
  };
  assert.equal(encodeKvpRequest({ operation: 4, pool: 1, ip }, b), 7456 - 28);
  assert.equal(b[at(30)], 0x4d);
  assert.deepEqual([b[at(286)], b[at(287)]], [3, 1]);
  assert.equal(b[at(288)], 0x31);
  assert.equal(b[at(2336)], 0x32);
  assert.equal(b[at(4384)], 0x33);
  assert.equal(b[at(5408)], 0x34);
});

test('oversize keys and values are refused before encoding, naming the limit', () => {
  const b = new Uint8Array(8192);
  const big = (n: number) => 'k'.repeat(n);
  encodeKvpRequest({ operation: 1, pool: 0, key: big(255), value: { type: 'string', value: big(1023) } }, b);
  for (const req of [
    { operation: 1, pool: 0, key: big(256), value: { type: 'string', value: '' } },
    { operation: 1, pool: 0, key: 'k', value: { type: 'string', value: big(1024) } },
    { operation: 1, pool: 0, key: '\ud800x', value: { type: 'string', value: '' } },
  ] as KvpRequest[]) {
    assert.throws(
      () => encodeKvpRequest(req, b),
      (e) => isHvError(e, 'HV_ERR_INVALID_ARGUMENT') && /512|2048|surrogate/.test((e as Error).message),
    );
  }
});

test('an unpaired surrogate from the host is dropped, as Linux utf16s_to_utf8s does', () => {
  const b = new Uint8Array(8192);
  encodeKvpRequest({ operation: 1, pool: 0, key: 'aXb', value: { type: 'string', value: 'v' } }, b);
  dv(b).setUint16(KVP_IC_BODY.value + 12 + 2, 0xdc00, true); // 'X' -> lone low surrogate
  const r = decodeKvpRequest(b.subarray(0, 2576));
  assert.equal(r.operation === 1 && r.key, 'ab');
});

/** fast-check records have a null prototype; compare plain JSON forms (bigints tagged). */
const plain = (x: unknown) => JSON.parse(JSON.stringify(x, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)));

test('requests round-trip', () => {
  const str = (max: number) =>
    fc.string({ maxLength: max, unit: 'grapheme' }).filter((s) => s.length <= max && !s.includes('\0'));
  fc.assert(
    fc.property(
      fc.oneof(
        fc.record({
          operation: fc.constant(1 as const),
          pool: fc.integer({ min: 0, max: 4 }),
          key: str(100),
          value: fc.oneof(
            fc.record({ type: fc.constant('string' as const), value: str(300) }),
            fc.record({ type: fc.constant('u32' as const), value: fc.integer({ min: 0, max: 0xffffffff }) }),
            fc.record({
              type: fc.constant('u64' as const),
              value: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
            }),
          ),
        }),
        fc.record({
          operation: fc.constant(2 as const),
          pool: fc.integer({ min: 0, max: 4 }),
          key: str(100),
        }),
        fc.record({
          operation: fc.constant(3 as const),
          pool: fc.integer({ min: 0, max: 4 }),
          index: fc.integer({ min: 0, max: 0xffffffff }),
        }),
      ),
      (req) => {
        const b = new Uint8Array(8192);
        const n = encodeKvpRequest(req as KvpRequest, b);
        assert.deepEqual(plain(decodeKvpRequest(b.subarray(0, n))), plain(req));
      },
    ),
  );
});

test('the decoder is total: random bodies give a request or a ProtocolError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 8000 }), fc.integer({ min: 0, max: 6 }), (bytes, op) => {
      if (bytes.length > 0) bytes[0] = op;
      try {
        decodeKvpRequest(bytes);
      } catch (e) {
        assert.ok(e instanceof ProtocolError, String(e));
      }
    }),
    { numRuns: 300 },
  );
});
