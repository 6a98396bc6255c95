import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ProtocolError } from '../../../src/protocol/errors.ts';
import {
  decodeGpaDirectHeader,
  decodeTransferPageHeader,
  encodeGpaDirectHeader,
  encodeTransferPageHeader,
  type GpaRange,
  gpaRangePageCount,
  HV_MPB_ARRAY,
  HV_PAGE_BUFFER,
  type PacketDescriptor,
  readDescriptor,
  ringBytesForPacket,
  VM_PKT_ADDITIONAL_DATA,
  VM_PKT_COMP,
  VM_PKT_DATA_INBAND,
  VM_PKT_DATA_USING_GPA_DIRECT,
  VM_PKT_DATA_USING_XFER_PAGES,
  VM_PKT_INVALID,
  VMBUS_CHANNEL_PACKET_PAGE_BUFFER,
  VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
  VMBUS_PACKET_MPB_ARRAY,
  VMPACKET_DESCRIPTOR,
  VMTRANSFER_PAGE_PACKET_HEADER,
  writeDescriptor,
} from '../../../src/protocol/vmbus/packet.ts';
import { HV_RING_BUFFER } from '../../../src/protocol/vmbus/ring-control.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const fresh = (): PacketDescriptor => ({ type: 0, offset8: 0, len8: 0, flags: 0, transId: 0 });

test('constants and layouts match Linux include/linux/hyperv.h (vmbus-core-ics.md §2.1, §3)', () => {
  assert.equal(VM_PKT_INVALID, 0);
  assert.equal(VM_PKT_DATA_INBAND, 6);
  assert.equal(VM_PKT_DATA_USING_XFER_PAGES, 7);
  assert.equal(VM_PKT_DATA_USING_GPA_DIRECT, 9);
  assert.equal(VM_PKT_COMP, 0xb);
  assert.equal(VM_PKT_ADDITIONAL_DATA, 0xd);
  assert.equal(VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, 1);
  assert.deepEqual(VMPACKET_DESCRIPTOR, {
    size: 16,
    offsets: { type: 0, offset8: 2, len8: 4, flags: 6, trans_id: 8 },
  });
  assert.equal(VMTRANSFER_PAGE_PACKET_HEADER.size, 32);
  assert.equal(VMTRANSFER_PAGE_PACKET_HEADER.offsets.range_cnt, 20);
  assert.equal(HV_PAGE_BUFFER.size, 16);
  assert.equal(HV_MPB_ARRAY.size, 8);
  assert.equal(VMBUS_CHANNEL_PACKET_PAGE_BUFFER.size, 536);
  assert.equal(VMBUS_PACKET_MPB_ARRAY.size, 32);
  assert.equal(HV_RING_BUFFER.offsets.feature_bits, 64);
  assert.equal(HV_RING_BUFFER.offsets.buffer, 4096);
});

test('descriptor golden bytes: type, offset8, len8, flags, trans_id as two u32 halves', () => {
  const b = new Uint8Array(16);
  writeDescriptor(new DataView(b.buffer), 0, VM_PKT_DATA_USING_GPA_DIRECT, 5, 9, 1, 0x0012_3456_789a_bc);
  assert.equal(hex(b), '0900' + '0500' + '0900' + '0100' + 'bc9a785634120000');
  const d = fresh();
  readDescriptor(new DataView(b.buffer), 0, 72, d);
  assert.deepEqual(d, { type: 9, offset8: 5, len8: 9, flags: 1, transId: 0x0012_3456_789a_bc });
});

test('readDescriptor(writeDescriptor(x)) = x for every valid descriptor', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(6, 7, 9, 0xb),
      fc.integer({ min: 2, max: 0xffff }),
      fc.integer({ min: 0, max: 0xffff }),
      fc.integer({ min: 0, max: 1 }),
      fc.maxSafeNat(),
      (type, offset8, extra, flags, transId) => {
        const len8 = Math.min(0xffff, offset8 + extra);
        const b = new Uint8Array(24);
        writeDescriptor(new DataView(b.buffer), 8, type, offset8, len8, flags, transId);
        const d = fresh();
        readDescriptor(new DataView(b.buffer), 8, len8 * 8, d);
        assert.deepEqual(d, { type, offset8, len8, flags, transId });
      },
    ),
  );
});

test('readDescriptor is total: random bytes give a valid descriptor or a ProtocolError', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 24 }),
      fc.integer({ min: -8, max: 1 << 20 }),
      (bytes, avail) => {
        const d = fresh();
        try {
          readDescriptor(new DataView(bytes.buffer), 0, avail, d);
        } catch (e) {
          assert.ok(e instanceof ProtocolError, String(e));
          return;
        }
        assert.ok([6, 7, 9, 0xb].includes(d.type));
        assert.ok(d.offset8 >= 2 && d.len8 >= d.offset8 && d.len8 * 8 <= avail && d.flags <= 1);
      },
    ),
  );
});

test('ring bytes of a packet: len8 × 8 + 8-byte trailer', () => {
  assert.equal(ringBytesForPacket(0), 24);
  assert.equal(ringBytesForPacket(1), 32);
  assert.equal(ringBytesForPacket(8), 32);
  assert.equal(ringBytesForPacket(1500), 1528);
  assert.equal(ringBytesForPacket(100, 16), 144);
});

test('transfer-page header golden bytes (xfer_pageset_id @16, range_cnt @20, ranges @24 of the packet)', () => {
  const ext = encodeTransferPageHeader({
    xferPagesetId: 0xcafe,
    senderOwnsSet: 1,
    ranges: [
      { byteCount: 1514, byteOffset: 0 },
      { byteCount: 60, byteOffset: 0x10000 },
    ],
  });
  assert.equal(
    hex(ext),
    'feca' + '01' + '00' + '02000000' + 'ea050000' + '00000000' + '3c000000' + '00000100',
  );
  assert.deepEqual(decodeTransferPageHeader(ext), {
    xferPagesetId: 0xcafe,
    senderOwnsSet: 1,
    ranges: [
      { byteCount: 1514, byteOffset: 0 },
      { byteCount: 60, byteOffset: 0x10000 },
    ],
  });
  // range_cnt larger than the header holds.
  const bad = ext.slice(0, 16);
  assert.throws(() => decodeTransferPageHeader(bad), ProtocolError);
  assert.throws(() => decodeTransferPageHeader(new Uint8Array(4)), ProtocolError);
});

test('GPA page count = ceil((byte_offset % 4096 + byte_count) / 4096)', () => {
  assert.equal(gpaRangePageCount(0, 4096), 1);
  assert.equal(gpaRangePageCount(1, 4096), 2);
  assert.equal(gpaRangePageCount(4095, 2), 2);
  assert.equal(gpaRangePageCount(8192 + 10, 10), 1);
  assert.equal(gpaRangePageCount(0, 0), 0);
  assert.equal(gpaRangePageCount(0, 65536), 16);
});

test('GPA-direct header golden bytes (reserved @16, range_cnt @20, then byte_count, byte_offset, pfn_array)', () => {
  const ranges: GpaRange[] = [{ byteCount: 5000, byteOffset: 100, pfns: [0x12345, 0x1_0000_0001] }];
  const ext = encodeGpaDirectHeader(ranges);
  assert.equal(
    hex(ext),
    '00000000' + '01000000' + '88130000' + '64000000' + '4523010000000000' + '0100000001000000',
  );
  assert.deepEqual(decodeGpaDirectHeader(ext), ranges);
  assert.throws(() => encodeGpaDirectHeader([{ byteCount: 5000, byteOffset: 100, pfns: [1] }]), RangeError);
});

test('GPA-direct decoder enforces OpenVMM rules: range_cnt != 0, PFNs present for every page', () => {
  const zero = new Uint8Array(8);
  assert.throws(
    () => decodeGpaDirectHeader(zero),
    (e: unknown) => e instanceof ProtocolError && e.offset === 20,
  );
  const ext = encodeGpaDirectHeader([{ byteCount: 8192, byteOffset: 0, pfns: [1, 2] }]);
  assert.throws(() => decodeGpaDirectHeader(ext.subarray(0, ext.length - 8)), ProtocolError);
  const big = ext.slice();
  new DataView(big.buffer).setUint32(4, 0xffff_ffff, true);
  assert.throws(() => decodeGpaDirectHeader(big), ProtocolError);
  const hugePfn = ext.slice();
  new DataView(hugePfn.buffer).setUint32(20, 0xffff_ffff, true);
  assert.throws(() => decodeGpaDirectHeader(hugePfn), ProtocolError);
});

const gpaRange = fc
  .record({
    byteOffset: fc.integer({ min: 0, max: 0xffff_ffff }),
    byteCount: fc.integer({ min: 0, max: 40000 }),
  })
  .chain(({ byteOffset, byteCount }) =>
    fc.record({
      byteOffset: fc.constant(byteOffset),
      byteCount: fc.constant(byteCount),
      pfns: fc.array(fc.maxSafeNat(), {
        minLength: gpaRangePageCount(byteOffset, byteCount),
        maxLength: gpaRangePageCount(byteOffset, byteCount),
      }),
    }),
  )
  .map((r) => ({ ...r })); // plain objects: fc.record's have a null prototype

test('decode(encode(x)) = x for GPA-direct and transfer-page headers', () => {
  fc.assert(
    fc.property(fc.array(gpaRange, { minLength: 1, maxLength: 6 }), (ranges) => {
      assert.deepEqual(decodeGpaDirectHeader(encodeGpaDirectHeader(ranges)), ranges);
    }),
  );
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 0xffff }),
      fc.integer({ min: 0, max: 0xff }),
      fc.array(
        fc.record({ byteCount: fc.nat(), byteOffset: fc.nat() }).map((r) => ({ ...r })),
        { maxLength: 20 },
      ),
      (xferPagesetId, senderOwnsSet, ranges) => {
        const h = { xferPagesetId, senderOwnsSet, ranges };
        assert.deepEqual(decodeTransferPageHeader(encodeTransferPageHeader(h)), h);
      },
    ),
  );
});

test('extended-header decoders are total on random bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(8), (bytes, cut) => {
      for (const decode of [decodeGpaDirectHeader, decodeTransferPageHeader]) {
        try {
          decode(bytes.subarray(Math.min(cut, bytes.length)));
        } catch (e) {
          assert.ok(e instanceof ProtocolError, String(e));
        }
      }
    }),
    { numRuns: 500 },
  );
});
