import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ProtocolError } from '../../src/protocol/errors.ts';
import { GuestMemory } from '../../src/vmbus/memory.ts';

const PAGE = 4096;

test('pages are addressed by PFN = GPA >> 12 and views never cross a chunk', () => {
  // 16 pages in chunks of 8 pages (32 KiB): two SABs.
  const m = new GuestMemory(16 * PAGE, 8 * PAGE);
  assert.equal(m.buffers.length, 2);
  assert.equal(m.pageCount, 16);
  m.write(3 * PAGE + 5, new Uint8Array([7, 8]));
  const v = m.pageView(3, 1)!;
  assert.equal(v.length, PAGE);
  assert.deepEqual([...v.subarray(5, 7)], [7, 8]);
  assert.equal(m.pageView(6, 2)!.length, 2 * PAGE);
  assert.equal(m.pageView(7, 2), null, 'crosses the chunk boundary at PFN 8');
  assert.equal(m.pageView(15, 2), null, 'past the end');
  assert.equal(m.pageView(-1, 1), null);
  assert.equal(m.pageView(0, 0), null);
  // linear read/write does cross chunks.
  const src = Uint8Array.from({ length: 100 }, (_, i) => i);
  m.write(8 * PAGE - 50, src);
  const back = new Uint8Array(100);
  m.read(8 * PAGE - 50, back);
  assert.deepEqual(back, src);
  assert.throws(() => m.read(16 * PAGE - 1, new Uint8Array(2)), ProtocolError);
});

test('viewOfPfns gives one view only for consecutive in-range PFNs (rings must be contiguous)', () => {
  const m = new GuestMemory(16 * PAGE, 8 * PAGE);
  const v = m.viewOfPfns([2, 3, 4])!;
  assert.equal(v.length, 3 * PAGE);
  v[PAGE] = 0x5a;
  const one = new Uint8Array(1);
  m.read(3 * PAGE, one);
  assert.equal(one[0], 0x5a);
  assert.equal(m.viewOfPfns([2, 4]), null);
  assert.equal(m.viewOfPfns([3, 2]), null);
  assert.equal(m.viewOfPfns([]), null);
  assert.equal(m.viewOfPfns([7, 8]), null, 'crosses a chunk');
  assert.equal(m.viewOfPfns(Uint32Array.of(15, 16)), null, 'past the end');
});

test('another thread rebuilds the same memory from the SABs', () => {
  const m = new GuestMemory(10 * PAGE, 4 * PAGE);
  const m2 = GuestMemory.fromBuffers(m.buffers);
  assert.equal(m2.byteLength, 10 * PAGE);
  m.write(9 * PAGE, new Uint8Array([42]));
  assert.equal(m2.pageView(9, 1)![0], 42);
  assert.equal(m2.pageView(3, 2), null, 'same chunking as the original');
  assert.throws(() => GuestMemory.fromBuffers([]), { code: 'HV_ERR_INVALID_ARGUMENT' });
  assert.throws(
    () => GuestMemory.fromBuffers([new SharedArrayBuffer(PAGE), new SharedArrayBuffer(2 * PAGE)]),
    {
      code: 'HV_ERR_INVALID_ARGUMENT',
    },
  );
  assert.throws(() => new GuestMemory(1000), { code: 'HV_ERR_INVALID_ARGUMENT' });
  assert.throws(() => new GuestMemory(PAGE, 3 * PAGE), { code: 'HV_ERR_INVALID_ARGUMENT' });
});

test('scatter-gather copies follow the GPA ranges page by page, with byte_offset inside the first page', () => {
  const m = new GuestMemory(16 * PAGE, 8 * PAGE);
  // 6000 bytes starting 4000 into PFN 9, continuing at PFN 2, then PFN 12 (non-contiguous, crossing chunks).
  const ranges = [{ byteCount: 6000, byteOffset: 4000, pfns: [9, 2, 12] }];
  const src = Uint8Array.from({ length: 6000 }, (_, i) => (i * 7) & 0xff);
  m.copyToGpaRanges(src, ranges);
  const check = new Uint8Array(96);
  m.read(9 * PAGE + 4000, check);
  assert.deepEqual(check, src.subarray(0, 96));
  const mid = new Uint8Array(PAGE);
  m.read(2 * PAGE, mid);
  assert.deepEqual(mid, src.subarray(96, 96 + PAGE));
  const tail = new Uint8Array(6000 - 96 - PAGE);
  m.read(12 * PAGE, tail);
  assert.deepEqual(tail, src.subarray(96 + PAGE));
  const back = new Uint8Array(6000);
  m.copyFromGpaRanges(ranges, back);
  assert.deepEqual(back, src);
  // Starting part-way into the range stream.
  const part = new Uint8Array(10);
  m.copyFromGpaRanges(ranges, part, 4090);
  assert.deepEqual(part, src.subarray(4090, 4100));
});

test('scatter-gather copies reject ranges outside guest memory or shorter than asked', () => {
  const m = new GuestMemory(4 * PAGE);
  assert.throws(
    () => m.copyFromGpaRanges([{ byteCount: 10, byteOffset: 0, pfns: [4] }], new Uint8Array(10)),
    ProtocolError,
  );
  assert.throws(
    () => m.copyToGpaRanges(new Uint8Array(10), [{ byteCount: 10, byteOffset: 0, pfns: [2 ** 40] }]),
    ProtocolError,
  );
  assert.throws(
    () => m.copyFromGpaRanges([{ byteCount: 10, byteOffset: 0, pfns: [1] }], new Uint8Array(11)),
    ProtocolError,
  );
  assert.throws(() => m.copyFromGpaRanges([], new Uint8Array(1)), ProtocolError);
});

test('the page allocator hands out disjoint contiguous runs inside a chunk and takes them back', () => {
  const m = new GuestMemory(16 * PAGE, 8 * PAGE);
  const a = m.allocPages(5);
  const b = m.allocPages(3);
  assert.ok(m.pageView(a, 5) && m.pageView(b, 3));
  assert.ok(a + 5 <= b || b + 3 <= a);
  const c = m.allocPages(8);
  assert.ok(m.pageView(c, 8), 'a whole chunk');
  assert.throws(() => m.allocPages(1), { code: 'HV_ERR_INVALID_STATE' });
  assert.throws(() => m.allocPages(9), { code: 'HV_ERR_INVALID_ARGUMENT' });
  m.pageView(a, 1)!.fill(9);
  m.freePages(a, 5);
  assert.throws(() => m.freePages(a, 1), { code: 'HV_ERR_INVALID_ARGUMENT' }, 'double free');
  const d = m.allocPages(5);
  assert.equal(d, a);
  assert.ok(
    m.pageView(d, 1)!.every((x) => x === 0),
    'allocated pages are zeroed',
  );
});

test('allocations never overlap under random alloc/free sequences', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 8 }), fc.nat()), { maxLength: 60 }),
      (ops) => {
        const m = new GuestMemory(32 * PAGE, 8 * PAGE);
        const owner = new Int32Array(32).fill(-1);
        const live: [number, number][] = [];
        for (const [alloc, n, pick] of ops) {
          if (alloc || live.length === 0) {
            let pfn: number;
            try {
              pfn = m.allocPages(n);
            } catch (e) {
              assert.equal((e as { code?: string }).code, 'HV_ERR_INVALID_STATE');
              continue;
            }
            assert.ok(m.pageView(pfn, n), 'run is one view');
            for (let p = pfn; p < pfn + n; p++) {
              assert.equal(owner[p], -1, `PFN ${p} handed out twice`);
              owner[p] = pfn;
            }
            live.push([pfn, n]);
          } else {
            const [pfn, cnt] = live.splice(pick % live.length, 1)[0]!;
            m.freePages(pfn, cnt);
            owner.fill(-1, pfn, pfn + cnt);
          }
        }
      },
    ),
  );
});

test('guest memory above 4 GiB is addressable through chunked views', () => {
  // SAB pages are committed lazily, so a 5 GiB guest costs only the pages touched.
  const m = new GuestMemory(5 * 2 ** 30);
  assert.equal(m.buffers.length, 5);
  const pfn = (4 * 2 ** 30 + 12345 * PAGE) / PAGE;
  m.copyToGpaRanges(new Uint8Array([1, 2, 3]), [{ byteCount: 3, byteOffset: 10, pfns: [pfn] }]);
  assert.deepEqual([...m.pageView(pfn, 1)!.subarray(10, 13)], [1, 2, 3]);
});
