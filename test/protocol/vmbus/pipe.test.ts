import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ProtocolError } from '../../../src/protocol/errors.ts';
import { decodePipeHdr, encodePipeHdr } from '../../../src/protocol/vmbus/pipe.ts';

test('pipe header: flags u32 @0, msgsize u32 @4, little-endian', () => {
  const buf = new Uint8Array(8 + 0x3c);
  encodePipeHdr({ flags: 1, msgsize: 0x3c }, buf);
  assert.deepEqual(buf.subarray(0, 8), Uint8Array.of(1, 0, 0, 0, 0x3c, 0, 0, 0));
  assert.deepEqual(decodePipeHdr(buf), { flags: 1, msgsize: 0x3c });
});

test('msgsize beyond the buffer is a ProtocolError; decoder is total', () => {
  const buf = new Uint8Array(16);
  encodePipeHdr({ flags: 1, msgsize: 9 }, buf);
  assert.throws(() => decodePipeHdr(buf), ProtocolError);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 32 }), (bytes) => {
      try {
        const h = decodePipeHdr(bytes);
        assert.ok(8 + h.msgsize <= bytes.length);
      } catch (e) {
        assert.ok(e instanceof ProtocolError);
      }
    }),
  );
});
