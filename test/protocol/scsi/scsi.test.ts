/**
 * SCSI CDBs, sense and data-in structures against the T10 layouts (SPC-4 / SBC-3 tables; byte values
 * written by hand from them) and OpenVMM scsidisk's Hyper-V values (devices.md B.10); totality of decoders.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ProtocolError } from '../../../src/protocol/errors.ts';
import {
  allocationLength,
  decodeBlockRange,
  decodeInquiry,
  decodeUnmapParameterList,
  encodeReadCapacity16 as encodeRc16Cdb,
  encodeReadWrite10,
  encodeReadWrite16,
  encodeUnmapParameterList,
} from '../../../src/protocol/scsi/cdb.ts';
import * as op from '../../../src/protocol/scsi/constants.ts';
import {
  decodeReadCapacity16,
  decodeReportLuns,
  decodeStandardInquiry,
  decodeVpdHeader,
  encodeReadCapacity16,
  encodeReportLuns,
  encodeStandardInquiry,
  encodeVpdPage,
} from '../../../src/protocol/scsi/data.ts';
import { decodeSense, writeFixedSense } from '../../../src/protocol/scsi/sense.ts';

const range = () => ({ lba: 0, blocks: 0, fua: false });

test('READ/WRITE CDB decoding: 6 (0 = 256 blocks), 10, 12, 16 with FUA', () => {
  assert.deepEqual(decodeBlockRange(Uint8Array.of(0x08, 0x01, 0x02, 0x03, 0x00, 0), range()), {
    lba: 0x10203,
    blocks: 256,
    fua: false,
  });
  assert.deepEqual(decodeBlockRange(Uint8Array.of(0x28, 0, 0, 0, 0x10, 0, 0, 0, 8, 0), range()), {
    lba: 0x1000,
    blocks: 8,
    fua: false,
  });
  assert.deepEqual(decodeBlockRange(Uint8Array.of(0xaa, 0x08, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0), range()), {
    lba: 0x10000,
    blocks: 0x100,
    fua: true,
  });
  const c16 = Uint8Array.of(0x88, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0);
  assert.deepEqual(decodeBlockRange(c16, range()), { lba: 2 ** 32, blocks: 0x8000, fua: false });
  const mine = new Uint8Array(16);
  encodeReadWrite16(mine, false, 2 ** 32, 0x8000);
  assert.deepEqual(mine, c16);
  encodeReadWrite10(mine, true, 0x1000, 8);
  assert.deepEqual([...mine.subarray(0, 10)], [0x2a, 0, 0, 0, 0x10, 0, 0, 0, 8, 0]);
  assert.throws(() => decodeBlockRange(Uint8Array.of(0x28, 0, 0), range()), ProtocolError);
});

test('INQUIRY / READ CAPACITY(16) / REPORT LUNS CDB fields', () => {
  assert.deepEqual(decodeInquiry(Uint8Array.of(0x12, 0x01, 0x83, 0x01, 0x00, 0)), {
    evpd: true,
    cmddt: false,
    page: 0x83,
    allocationLength: 256,
  });
  const c = new Uint8Array(16);
  encodeRc16Cdb(c, 32);
  assert.deepEqual([...c], [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]);
  assert.equal(allocationLength(c), 32);
});

test('fixed sense for UNIT ATTENTION capacity data has changed (2A/09)', () => {
  const b = new Uint8Array(18);
  assert.equal(writeFixedSense(b, 0, { senseKey: op.UNIT_ATTENTION, asc: 0x2a, ascq: 0x09 }), 18);
  assert.deepEqual([...b], [0x70, 0, 0x06, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x2a, 0x09, 0, 0, 0, 0]);
  assert.deepEqual(decodeSense(b), { senseKey: 6, asc: 0x2a, ascq: 9 });
  assert.deepEqual(decodeSense(Uint8Array.of(0x72, 0x05, 0x24, 0x00)), { senseKey: 5, asc: 0x24, ascq: 0 });
});

test('standard INQUIRY of a Hyper-V disk: Msft / Virtual Disk / 1.0, SPC-3, CmdQue', () => {
  const b = new Uint8Array(96);
  encodeStandardInquiry(b, {
    peripheral: 0,
    removable: false,
    version: 5,
    vendor: 'Msft',
    product: 'Virtual Disk',
    revision: '1.0',
  });
  assert.equal(b[2], 5);
  assert.equal(b[3], 2);
  assert.equal(b[4], 91);
  assert.equal(b[7], 0x02);
  assert.equal(Buffer.from(b.subarray(8, 36)).toString('latin1'), 'Msft    Virtual Disk    1.0 ');
  assert.equal(decodeStandardInquiry(b).product, 'Virtual Disk    ');
});

test('VPD pages: supported list, 0x83 identifiers, 0xB0 unmap limits, 0xB2 LBPU thin, unknown → -1', () => {
  const b = new Uint8Array(256);
  const d = {
    diskId: Uint8Array.from({ length: 16 }, (_, i) => i + 1),
    unmap: true,
    maxTransferBlocks: 512,
    optimalUnmapGranularityBlocks: 8,
  };
  const n = encodeVpdPage(b, 0x00, d);
  assert.deepEqual([...b.subarray(0, n)], [0, 0, 0, 7, 0x00, 0x83, 0xb0, 0xb1, 0xb2, 0xce, 0xcf]);
  encodeVpdPage(b, 0x83, d);
  assert.equal(Buffer.from(b.subarray(8, 16)).toString('latin1'), 'Msft    ');
  assert.deepEqual([...b.subarray(36, 40)], [0x60, 0x02, 0x24, 0x80]);
  encodeVpdPage(b, 0xb0, d);
  const v = new DataView(b.buffer);
  assert.equal(v.getUint16(2), 0x3c);
  assert.equal(v.getUint32(20), 0xffffffff);
  assert.equal(v.getUint32(24), 4096);
  assert.equal(v.getUint32(28), 8);
  encodeVpdPage(b, 0xb2, d);
  assert.equal(b[5], 0x80);
  assert.equal(b[6], 0x02);
  assert.equal(encodeVpdPage(b, 0x99, d), -1);
  assert.equal(decodeVpdHeader(b).page, 0xb2);
});

test('READ CAPACITY(16) data, REPORT LUNS data, UNMAP parameter list', () => {
  const b = new Uint8Array(32);
  encodeReadCapacity16(b, {
    lastLba: 2 ** 33 - 1,
    blockBytes: 512,
    logicalPerPhysicalExponent: 3,
    lbpme: true,
  });
  assert.deepEqual([...b.subarray(0, 16)], [0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 2, 0, 0, 3, 0x80, 0]);
  assert.deepEqual(decodeReadCapacity16(b), {
    lastLba: 2 ** 33 - 1,
    blockBytes: 512,
    logicalPerPhysicalExponent: 3,
    lbpme: true,
  });
  const rl = new Uint8Array(24);
  encodeReportLuns(rl, [0, 5]);
  assert.deepEqual([...rl], [0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(decodeReportLuns(rl), [0, 5]);
  const ul = encodeUnmapParameterList([{ lba: 0x1234, blocks: 16 }]);
  assert.deepEqual(
    [...ul],
    [0, 22, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0, 0, 16, 0, 0, 0, 0],
  );
  assert.deepEqual(decodeUnmapParameterList(ul), [{ lba: 0x1234, blocks: 16 }]);
});

test('SCSI decoders are total on arbitrary bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
      for (const f of [
        () => decodeBlockRange(bytes, range()),
        () => decodeInquiry(bytes),
        () => decodeUnmapParameterList(bytes, 2),
        () => decodeSense(bytes),
        () => decodeStandardInquiry(bytes),
        () => decodeReadCapacity16(bytes),
        () => decodeReportLuns(bytes),
        () => decodeVpdHeader(bytes),
        () => allocationLength(bytes),
      ]) {
        try {
          f();
        } catch (e) {
          assert.ok(e instanceof ProtocolError, String(e));
        }
      }
    }),
    { numRuns: 3000 },
  );
});
