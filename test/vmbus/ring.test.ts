import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ProtocolError } from '../../src/protocol/errors.ts';
import {
  initRing,
  PacketView,
  RING_WRITE_FULL,
  RING_WRITE_OK,
  RING_WRITE_SIGNAL,
  RingReader,
  RingWriter,
} from '../../src/vmbus/ring.ts';

// Control page words (vmbus-core-ics.md §2.1): write_index @0, read_index @4, interrupt_mask @8,
// pending_send_sz @12, feature_bits @64.
const WRITE = 0;
const READ = 1;
const MASK = 2;
const PENDING = 3;
const FEATURES = 16;

function makeRing(dataSize = 4096, feature = true) {
  const mem = new Uint8Array(new SharedArrayBuffer(4096 + dataSize));
  initRing(mem, feature);
  const ctl = new Int32Array(mem.buffer, 0, 1024);
  return { mem, ctl, data: mem.subarray(4096) };
}

/** The bytes a packet must occupy, built by hand from vmbus-core-ics.md §2.2/§3.1 (not by the code under test). */
function expectedPacketBytes(
  type: number,
  flags: number,
  transId: number,
  payload: Uint8Array,
  ext: Uint8Array,
  start: number,
) {
  const len = 16 + ext.length + payload.length;
  const padded = Math.ceil(len / 8) * 8;
  const out = new Uint8Array(padded + 8);
  const v = new DataView(out.buffer);
  v.setUint16(0, type, true);
  v.setUint16(2, (16 + ext.length) / 8, true);
  v.setUint16(4, padded / 8, true);
  v.setUint16(6, flags, true);
  v.setUint32(8, transId % 2 ** 32, true);
  v.setUint32(12, Math.floor(transId / 2 ** 32), true);
  out.set(ext, 16);
  out.set(payload, 16 + ext.length);
  v.setUint32(padded, 0, true); // trailer: low 32 bits 0
  v.setUint32(padded + 4, start, true); // high 32 bits = start write_index
  return out;
}

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (seed + i * 31) & 0xff;
  return b;
}

test('an inband packet is laid out as descriptor, payload, zero padding and trailer (Linux hv_ringbuffer_write)', () => {
  const { mem, ctl, data } = makeRing();
  const w = new RingWriter(mem);
  assert.equal(w.write(6, 1, 7, new Uint8Array([1, 2, 3])), RING_WRITE_SIGNAL);
  assert.deepEqual(
    Buffer.from(data.subarray(0, 32)).toString('hex'),
    '0600' + '0200' + '0300' + '0100' + '0700000000000000' + '0102030000000000' + '0000000000000000',
  );
  assert.equal(ctl[WRITE], 32);
  // Second packet: trailer high word = 32, its start; a 64-bit transaction id as two halves.
  assert.equal(w.write(0xb, 0, 2 ** 40 + 5, new Uint8Array(8)), RING_WRITE_OK);
  assert.deepEqual(
    data.subarray(32, 64),
    expectedPacketBytes(0xb, 0, 2 ** 40 + 5, new Uint8Array(8), new Uint8Array(0), 32),
  );
  assert.equal(ctl[WRITE], 64);
});

test('a packet that exactly fills the free space is refused; 8 bytes less is accepted', () => {
  const { mem, ctl } = makeRing(4096);
  const w = new RingWriter(mem);
  const r = new RingReader(mem);
  const out = new PacketView();
  // Move both indexes to 1024 by one 1024-byte packet (16 + 1000 payload → 1016, + 8 trailer).
  assert.equal(w.write(6, 0, 1, new Uint8Array(1000)), RING_WRITE_SIGNAL);
  assert.equal(r.read(out), true);
  r.commit();
  assert.equal(ctl[READ], 1024);
  assert.equal(w.bytesAvailableToWrite(), 4096);
  assert.equal(w.write(6, 0, 2, new Uint8Array(1024 - 24)), RING_WRITE_SIGNAL);
  // 3072 free: a 3072-byte packet+trailer would make the ring look empty; it must be refused.
  assert.equal(w.write(6, 0, 3, new Uint8Array(3072 - 24)), RING_WRITE_FULL);
  assert.equal(ctl[WRITE], 2048);
  assert.equal(w.write(6, 0, 3, new Uint8Array(3072 - 32)), RING_WRITE_OK);
  assert.equal(w.bytesAvailableToWrite(), 8);
  assert.equal(w.write(6, 0, 4, new Uint8Array(0)), RING_WRITE_FULL);
  // The largest packet of an empty ring is data size − 8 including its trailer.
  assert.throws(() => w.write(6, 0, 5, new Uint8Array(4096 - 24)), { code: 'HV_ERR_INVALID_ARGUMENT' });
});

test('packets wrap around the data area at every 8-byte position, split exactly as a linear copy would be', () => {
  const size = 4096;
  const ext = bytes(16, 99);
  for (let start = 0; start < size; start += 8) {
    const { mem, ctl, data } = makeRing(size);
    ctl[WRITE] = start;
    ctl[READ] = start;
    const w = new RingWriter(mem);
    const r = new RingReader(mem);
    const payload = bytes(61 + (start % 40), start);
    const transId = 1000 + start;
    assert.equal(w.write(9, 1, transId, payload, ext), RING_WRITE_SIGNAL);
    const expected = expectedPacketBytes(9, 1, transId, payload, ext, start);
    for (let i = 0; i < expected.length; i++) {
      if (data[(start + i) % size] !== expected[i]) assert.fail(`start ${start}: byte ${i} differs`);
    }
    assert.equal(ctl[WRITE], (start + expected.length) % size);
    const out = new PacketView();
    assert.equal(r.read(out), true);
    assert.equal(out.type, 9);
    assert.equal(out.flags, 1);
    assert.equal(out.transId, transId);
    assert.deepEqual(out.extHeader, ext);
    assert.deepEqual(out.payload.subarray(0, payload.length), payload);
    assert.equal(out.payloadLength, Math.ceil(payload.length / 8) * 8);
    assert.ok(out.payload.subarray(payload.length).every((b) => b === 0));
    assert.equal(r.read(out), false);
  }
});

test('writeParts lays out its parts exactly as one write of them joined, at every wrap position', () => {
  const size = 4096;
  const parts = [bytes(80, 1), bytes(1000, 2), new Uint8Array(0), bytes(13, 3)];
  const joined = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    joined.set(p, at);
    at += p.length;
  }
  for (let start = 0; start < size; start += 8) {
    const { mem, ctl, data } = makeRing(size);
    ctl[WRITE] = start;
    ctl[READ] = start;
    assert.equal(new RingWriter(mem).writeParts(6, 0, 9, parts, parts.length), RING_WRITE_SIGNAL);
    const expected = expectedPacketBytes(6, 0, 9, joined, new Uint8Array(0), start);
    for (let i = 0; i < expected.length; i++) {
      if (data[(start + i) % size] !== expected[i]) assert.fail(`start ${start}: byte ${i} differs`);
    }
    assert.equal(ctl[WRITE], (start + expected.length) % size);
  }
});

test('a reader asking for a payload prefix gets that prefix and the real length, and the next packet whole', () => {
  for (const start of [0, 4096 - 64, 4096 - 8]) {
    const { mem, ctl } = makeRing(4096);
    ctl[WRITE] = start;
    ctl[READ] = start;
    const w = new RingWriter(mem);
    const r = new RingReader(mem);
    const big = bytes(2000, 5);
    const small = bytes(20, 6);
    w.write(6, 0, 1, big);
    w.write(6, 0, 2, small);
    const out = new PacketView();
    assert.equal(r.read(out, 28), true);
    assert.equal(out.transId, 1);
    assert.equal(out.payloadLength, 32, 'the prefix rounded up to 8 bytes');
    assert.equal(out.fullPayloadLength, 2000);
    assert.deepEqual(out.payload, big.subarray(0, 32));
    assert.equal(r.read(out, 28), true);
    assert.equal(out.transId, 2);
    assert.deepEqual(out.payload.subarray(0, 20), small);
    assert.equal(out.fullPayloadLength, 24);
    assert.equal(r.read(out), false);
    r.commit();
    assert.equal(ctl[READ], ctl[WRITE], 'the skipped bytes are consumed too');
  }
});

test('the writer signals only on empty → non-empty with interrupt_mask clear (Linux hv_signal_on_write)', () => {
  const { mem, ctl } = makeRing();
  const w = new RingWriter(mem);
  const r = new RingReader(mem);
  const out = new PacketView();
  const p = new Uint8Array(40);
  assert.equal(w.write(6, 0, 1, p), RING_WRITE_SIGNAL);
  assert.equal(w.write(6, 0, 2, p), RING_WRITE_OK, 'ring was not empty');
  assert.equal(r.read(out), true);
  assert.equal(r.read(out), true);
  assert.equal(w.write(6, 0, 3, p), RING_WRITE_OK, 'read but not committed: read_index still behind');
  r.commit();
  assert.equal(r.read(out), true);
  r.commit();
  assert.equal(w.write(6, 0, 4, p), RING_WRITE_SIGNAL, 'reader caught up again');
  r.read(out);
  r.commit();
  r.beginPolling();
  assert.equal(ctl[MASK], 1);
  assert.equal(w.write(6, 0, 5, p), RING_WRITE_OK, 'reader is polling (interrupt_mask = 1)');
  assert.equal(r.endPolling(), 64, 'endPolling reports what arrived while masked');
  assert.equal(ctl[MASK], 0);
  r.read(out);
  r.commit();
  assert.equal(r.endPolling(), 0);
  // A batch publishes once and decides once, against the index before the batch.
  w.beginBatch();
  assert.equal(w.write(6, 0, 6, p), RING_WRITE_OK);
  assert.equal(w.write(6, 0, 7, p), RING_WRITE_OK);
  assert.equal(r.read(out), false, 'nothing is published inside a batch');
  assert.equal(w.endBatch(), RING_WRITE_SIGNAL);
  assert.equal(r.read(out), true);
  assert.equal(out.transId, 6);
  assert.equal(w.endBatch(), RING_WRITE_OK, 'no batch open');
});

test('the reader signals a blocked writer only when free space crosses pending_send_sz (Linux hv_pkt_iter_close)', () => {
  const { mem, ctl } = makeRing(4096);
  const w = new RingWriter(mem);
  const r = new RingReader(mem);
  const out = new PacketView();
  // Four 1016-byte packets (+8 trailer = 1024 each) would fill 4096: only three fit (strict rule).
  for (let i = 0; i < 3; i++) assert.notEqual(w.write(6, 0, i, new Uint8Array(1000)), RING_WRITE_FULL);
  assert.equal(w.write(6, 0, 9, new Uint8Array(1000)), RING_WRITE_FULL);
  assert.equal(w.bytesAvailableToWrite(), 1024);
  w.setPendingSendSize(1024);
  assert.equal(ctl[PENDING], 1024);
  r.read(out);
  assert.equal(r.commit(), true, 'free 1024 → 2048 crosses 1024');
  r.read(out);
  assert.equal(r.commit(), false, 'free was already above pending');
  w.setPendingSendSize(4000); // rounded up to 4000 (already a multiple of 8)
  assert.equal(r.commit(), false, 'nothing read since last commit');
  r.read(out);
  assert.equal(r.commit(), true, 'ring now empty: 4096 > 4000');
  // Still not enough after the read → no signal.
  for (let i = 0; i < 3; i++) w.write(6, 0, i, new Uint8Array(1000));
  w.setPendingSendSize(3000);
  r.read(out);
  assert.equal(r.commit(), false, 'free 2048 is still <= 3000');
  // pending_send_sz's low 3 bits are ignored (OpenVMM): 7 means "not waiting".
  w.setPendingSendSize(0);
  ctl[PENDING] = 7;
  r.read(out);
  assert.equal(r.commit(), false);
  // Without the writer's feature bit the reader never signals.
  w.clearPendingSend();
  assert.equal(ctl[PENDING], 0);
  for (let i = 0; i < 2; i++) w.write(6, 0, i, new Uint8Array(1000));
  ctl[FEATURES] = 0;
  w.setPendingSendSize(2048);
  r.read(out);
  assert.equal(r.commit(), false, 'feat_pending_send_sz clear');
  ctl[FEATURES] = 1;
  r.read(out);
  assert.equal(r.commit(), true);
});

test('initRing zeroes the control page and sets feat_pending_send_sz only when asked', () => {
  const mem = new Uint8Array(new SharedArrayBuffer(8192)).fill(0xaa);
  initRing(mem, false);
  assert.ok(mem.subarray(0, 4096).every((b) => b === 0));
  assert.ok(
    mem.subarray(4096).every((b) => b === 0xaa),
    'data area untouched',
  );
  initRing(mem, true);
  assert.deepEqual([...mem.subarray(64, 68)], [1, 0, 0, 0]);
  assert.throws(() => initRing(new Uint8Array(4096 + 100), true), { code: 'HV_ERR_INVALID_ARGUMENT' });
  assert.throws(() => new RingWriter(new Uint8Array(4096)), { code: 'HV_ERR_INVALID_ARGUMENT' });
});

function assertCorrupt(fn: () => unknown, structure: string) {
  assert.throws(fn, (e: unknown) => e instanceof ProtocolError && e.structure === structure);
}

test('corrupt indexes and descriptors raise ProtocolError, never another exception', () => {
  const out = new PacketView();
  {
    const { mem, ctl } = makeRing();
    const r = new RingReader(mem);
    ctl[WRITE] = 12; // not a multiple of 8
    assertCorrupt(() => r.read(out), 'hv_ring_buffer');
    ctl[WRITE] = 4096; // not below the data size
    assertCorrupt(() => r.read(out), 'hv_ring_buffer');
    ctl[WRITE] = 16; // fewer bytes than a descriptor + trailer
    assertCorrupt(() => r.read(out), 'hv_ring_buffer');
  }
  {
    const { mem, ctl } = makeRing();
    const w = new RingWriter(mem);
    ctl[READ] = -8;
    assertCorrupt(() => w.write(6, 0, 0, new Uint8Array(8)), 'hv_ring_buffer');
    ctl[READ] = 4;
    assertCorrupt(() => new RingReader(mem), 'hv_ring_buffer');
  }
  // Descriptor rules of OpenVMM parse_packet, each broken once in an otherwise valid 32-byte packet.
  const cases: [string, (v: DataView) => void][] = [
    ['offset8 < 2', (v) => v.setUint16(2, 1, true)],
    ['len8 < offset8', (v) => v.setUint16(4, 1, true)],
    ['len8 beyond published bytes', (v) => v.setUint16(4, 4, true)],
    ['unknown type', (v) => v.setUint16(0, 1, true)],
    ['type 0xC (legacy)', (v) => v.setUint16(0, 0xc, true)],
    ['flags 2', (v) => v.setUint16(6, 2, true)],
    ['trans_id >= 2^53', (v) => v.setUint32(12, 0x20_0000, true)],
  ];
  for (const [name, breakIt] of cases) {
    const { mem, data } = makeRing();
    const w = new RingWriter(mem);
    w.write(6, 0, 1, new Uint8Array(8));
    breakIt(new DataView(data.buffer, data.byteOffset));
    const r = new RingReader(mem);
    assert.throws(
      () => r.read(out),
      (e: unknown) => e instanceof ProtocolError && e.structure === 'vmpacket_descriptor',
      name,
    );
  }
});

test('the reader copies the packet out, so a peer rewriting the ring afterwards changes nothing', () => {
  const { mem, data } = makeRing();
  const w = new RingWriter(mem);
  const r = new RingReader(mem);
  const out = new PacketView();
  w.write(6, 0, 1, bytes(24, 5));
  assert.equal(r.read(out), true);
  data.fill(0xff, 0, 64);
  assert.deepEqual(out.payload, bytes(24, 5));
  assert.equal(out.type, 6);
});

test('random interleavings of writes, batches, reads and commits behave like a FIFO of bounded bytes', () => {
  type Op =
    | { k: 'write'; len: number }
    | { k: 'batch'; lens: number[] }
    | { k: 'read' }
    | { k: 'commit' }
    | { k: 'pending'; n: number }
    | { k: 'fill'; d: number }
    | { k: 'pendingNear'; d: number };
  const op = fc.oneof(
    fc.record({ k: fc.constant('write' as const), len: fc.integer({ min: 0, max: 3000 }) }),
    fc.record({
      k: fc.constant('batch' as const),
      lens: fc.array(fc.integer({ min: 0, max: 900 }), { maxLength: 5 }),
    }),
    fc.record({ k: fc.constant('read' as const) }),
    fc.record({ k: fc.constant('commit' as const) }),
    fc.record({ k: fc.constant('pending' as const), n: fc.integer({ min: 0, max: 8192 }) }),
    // Edges: a packet whose ring bytes are exactly the free space ± 8, a pending size at free space ± 8.
    fc.record({ k: fc.constant('fill' as const), d: fc.constantFrom(-8, 0, 8) }),
    fc.record({ k: fc.constant('pendingNear' as const), d: fc.constantFrom(-8, 0, 8) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 120 }), fc.integer({ min: 1, max: 2 }), (ops: Op[], pages) => {
      const size = pages * 4096;
      const { mem } = makeRing(size);
      const w = new RingWriter(mem);
      const r = new RingReader(mem);
      const out = new PacketView();
      // Model: packets written and not yet read; bytes held until commit; published bytes.
      const unread: { id: number; len: number }[] = [];
      let used = 0; // bytes of packets written and not yet committed
      let readNotCommitted = 0;
      let pending = 0;
      let nextId = 1;
      const totalOf = (len: number) => Math.ceil((16 + len) / 8) * 8 + 8;
      const tryWrite = (len: number, batched: boolean): number => {
        const id = nextId++;
        const res = w.write(6, 0, id, bytes(len, id));
        const fits = totalOf(len) < size - used;
        assert.equal(res !== RING_WRITE_FULL, fits, `write of ${len} with ${used} used`);
        if (fits) {
          if (!batched) {
            // Signal iff the reader's published read_index had reached the old write_index (nothing held).
            assert.equal(res, used === 0 ? RING_WRITE_SIGNAL : RING_WRITE_OK, `signal with ${used} used`);
          }
          unread.push({ id, len });
          used += totalOf(len);
        }
        return res;
      };
      for (const o of ops) {
        if (o.k === 'write') tryWrite(o.len, false);
        else if (o.k === 'batch') {
          const usedBefore = used;
          w.beginBatch();
          let any = false;
          for (const len of o.lens) any = tryWrite(len, true) !== RING_WRITE_FULL || any;
          assert.equal(w.endBatch(), any && usedBefore === 0 ? RING_WRITE_SIGNAL : RING_WRITE_OK);
        } else if (o.k === 'read') {
          const got = r.read(out);
          const head = unread.shift();
          assert.equal(got, head !== undefined);
          if (head) {
            assert.equal(out.transId, head.id);
            assert.deepEqual(out.payload.subarray(0, head.len), bytes(head.len, head.id));
            readNotCommitted += totalOf(head.len);
          }
        } else if (o.k === 'commit') {
          const freeBefore = size - used;
          const freeAfter = freeBefore + readNotCommitted;
          const p = pending & ~7;
          const expect = readNotCommitted > 0 && p !== 0 && freeBefore <= p && p < freeAfter;
          assert.equal(r.commit(), expect, `commit: free ${freeBefore} → ${freeAfter}, pending ${p}`);
          used -= readNotCommitted;
          readNotCommitted = 0;
        } else if (o.k === 'fill') {
          const len = size - used - 24 + o.d;
          if (len < 0) continue;
          if (totalOf(len) >= size) {
            assert.throws(() => w.write(6, 0, 0, new Uint8Array(len)), { code: 'HV_ERR_INVALID_ARGUMENT' });
          } else tryWrite(len, false);
        } else {
          const n = o.k === 'pending' ? o.n : Math.max(0, size - used + o.d);
          w.setPendingSendSize(n);
          pending = (n + 7) & ~7;
        }
        assert.equal(w.bytesAvailableToWrite(), size - used);
      }
    }),
    { numRuns: 300 },
  );
});
