import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ProtocolError } from '../../../src/protocol/errors.ts';
import {
  decodeIcMessage,
  encodeIcMessageHeader,
  ICMSG_HDR,
  ICMSGHDRFLAG_REQUEST,
  ICMSGHDRFLAG_TRANSACTION,
  ICMSGTYPE_HEARTBEAT,
  type IcMsgHdr,
} from '../../../src/protocol/ic/icmsg.ts';

const hex = (s: string) => Uint8Array.from(s.match(/[0-9a-f]{2}/g)!.map((b) => Number.parseInt(b, 16)));

// A heartbeat request as the reference §6.1 table lays it out: pipe DATA, msgsize 20+40; framework 3.0,
// icmsgtype 1, message 3.0, icmsgsize 40, status 0, transaction 0, flags TRANSACTION|REQUEST (3).
const HB_REQUEST_HEADER = hex('01000000 3c000000 0300 0000 0100 0300 0000 2800 00000000 00 03 0000');

test('IC header block encodes to the reference table bytes', () => {
  const buf = new Uint8Array(68).fill(0xee);
  const hdr: IcMsgHdr = {
    icverframe: { major: 3, minor: 0 },
    icmsgtype: ICMSGTYPE_HEARTBEAT,
    icvermsg: { major: 3, minor: 0 },
    icmsgsize: 40,
    status: 0,
    ictransaction_id: 0,
    icflags: ICMSGHDRFLAG_TRANSACTION | ICMSGHDRFLAG_REQUEST,
  };
  assert.equal(encodeIcMessageHeader(hdr, 40, buf), 68);
  assert.deepEqual(buf.subarray(0, ICMSG_HDR), HB_REQUEST_HEADER);
});

test('decodeIcMessage bounds the body by the pipe msgsize, not the padded payload', () => {
  const payload = new Uint8Array(72); // 68 bytes of message + 4 of VMBus padding
  payload.set(HB_REQUEST_HEADER);
  const m = decodeIcMessage(payload);
  assert.equal(m.body.length, 40);
  assert.equal(m.hdr.icmsgtype, 1);
  assert.equal(m.hdr.icflags, 3);
  assert.deepEqual(m.hdr.icvermsg, { major: 3, minor: 0 });
});

test('decodeIcMessage rejects short payloads, non-DATA pipes and overlong msgsize', () => {
  assert.throws(() => decodeIcMessage(new Uint8Array(27)), ProtocolError);
  const p = new Uint8Array(68);
  p.set(HB_REQUEST_HEADER);
  p[0] = 2;
  assert.throws(() => decodeIcMessage(p), ProtocolError);
  p[0] = 1;
  p[4] = 61; // one byte more than present
  assert.throws(() => decodeIcMessage(p), ProtocolError);
  p[4] = 19; // less than an icmsg_hdr
  assert.throws(() => decodeIcMessage(p), ProtocolError);
});

test('decodeIcMessage is total: any bytes give a message or a ProtocolError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 128 }), (bytes) => {
      try {
        const m = decodeIcMessage(bytes);
        assert.ok(m.body.length <= bytes.length - ICMSG_HDR);
      } catch (e) {
        assert.ok(e instanceof ProtocolError);
      }
    }),
  );
});

test('header round trip', () => {
  const ver = fc.record(
    { major: fc.integer({ min: 0, max: 0xffff }), minor: fc.integer({ min: 0, max: 0xffff }) },
    { noNullPrototype: true },
  );
  fc.assert(
    fc.property(
      fc.record(
        {
          icverframe: ver,
          icmsgtype: fc.integer({ min: 0, max: 0xffff }),
          icvermsg: ver,
          icmsgsize: fc.integer({ min: 0, max: 0xffff }),
          status: fc.integer({ min: 0, max: 0xffffffff }),
          ictransaction_id: fc.integer({ min: 0, max: 255 }),
          icflags: fc.integer({ min: 0, max: 255 }),
        },
        { noNullPrototype: true },
      ),
      fc.integer({ min: 0, max: 64 }),
      (hdr, bodyLen) => {
        const buf = new Uint8Array(ICMSG_HDR + bodyLen);
        encodeIcMessageHeader(hdr, bodyLen, buf);
        const m = decodeIcMessage(buf);
        assert.deepEqual(m.hdr, hdr);
        assert.equal(m.body.length, bodyLen);
      },
    ),
  );
});
