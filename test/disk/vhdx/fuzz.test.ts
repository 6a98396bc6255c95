/**
 * Every VHDX parser is total: random bytes and randomly damaged valid structures give a value or an HvError,
 * never another exception. Structures: header, region table, metadata table and items, parent locator, log
 * entry and log search, and whole files (random damage to the header section, metadata and BAT, then open).
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import fc from 'fast-check';
import {
  decodeHeader,
  decodeRegionTable,
  encodeHeader,
  encodeRegionTable,
  VHDX_BAT_REGION_GUID,
  VHDX_METADATA_REGION_GUID,
} from '../../../src/disk/vhdx/format.ts';
import { checkVhdx, VhdxDisk } from '../../../src/disk/vhdx/index.ts';
import { decodeLogEntry, encodeLogEntry, findActiveSequence } from '../../../src/disk/vhdx/log.ts';
import {
  decodeMetadata,
  decodeParentLocator,
  encodeMetadata,
  encodeParentLocator,
} from '../../../src/disk/vhdx/metadata.ts';
import { HvError } from '../../../src/protocol/errors.ts';
import { Guid } from '../../../src/protocol/guid.ts';
import { MiB, writeAt } from './helpers.ts';

function total(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof HvError)) throw e;
  }
}

/** Applies (offset, byte) overwrites to a copy of `base`. */
const damage = (base: Uint8Array, span = base.length) =>
  fc
    .array(fc.tuple(fc.nat(span - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 12 })
    .map((edits) => {
      const b = base.slice();
      for (const [o, v] of edits) b[o] = v;
      return b;
    });

const validHeader = encodeHeader({
  sequenceNumber: 5n,
  fileWriteGuid: Guid.random(),
  dataWriteGuid: Guid.random(),
  logGuid: Guid.NIL,
  logVersion: 0,
  version: 1,
  logLength: MiB,
  logOffset: MiB,
});
const validRegions = encodeRegionTable([
  { guid: VHDX_BAT_REGION_GUID, fileOffset: 3 * MiB, length: MiB, required: true },
  { guid: VHDX_METADATA_REGION_GUID, fileOffset: 2 * MiB, length: MiB, required: true },
]);
const validLocator = encodeParentLocator([
  ['parent_linkage', `{${Guid.random()}}`],
  ['relative_path', '..\\a\\parent.vhdx'],
]);
const validMetadata = encodeMetadata(
  {
    blockSize: 32 * MiB,
    leaveBlockAllocated: false,
    virtualDiskSize: 1 << 30,
    page83Data: Guid.random(),
    logicalSectorSize: 512,
    physicalSectorSize: 4096,
    parentLocator: validLocator,
  },
  MiB,
);

test('header and region table decoders are total (random bytes and damaged valid ones)', () => {
  // Damage limited to the first 128 bytes (the fields), then the CRC recomputed so the field checks run.
  const reseal = (b: Uint8Array, len: number) => {
    const dv = new DataView(b.buffer, b.byteOffset, len);
    dv.setUint32(4, 0, true);
    dv.setUint32(4, crc32c(b.subarray(0, len)) >>> 0, true);
    return b;
  };
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 5000 }), (b) => total(() => decodeHeader(b))),
    { numRuns: 200 },
  );
  fc.assert(
    fc.property(damage(validHeader, 128), (b) => total(() => decodeHeader(reseal(b, 4096)))),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(damage(validRegions, 80), (b) => total(() => decodeRegionTable(reseal(b, 65536)))),
    { numRuns: 300 },
  );
  assert.equal(decodeRegionTable(validRegions).length, 2);
});

test('metadata and parent locator decoders are total', () => {
  fc.assert(
    fc.property(damage(validMetadata, 64 * 1024 + 400), (b) => total(() => decodeMetadata(b))),
    { numRuns: 400 },
  );
  fc.assert(
    fc.property(damage(validLocator), (b) => total(() => decodeParentLocator(b))),
    { numRuns: 400 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (b) => total(() => decodeParentLocator(b))),
    { numRuns: 200 },
  );
  assert.equal(decodeMetadata(validMetadata).parentLocator?.get('relative_path'), '..\\a\\parent.vhdx');
});

test('log entry decoder and log search are total', () => {
  const g = Guid.random();
  const entry = encodeLogEntry({
    sequenceNumber: 3n,
    tail: 0,
    logGuid: g,
    flushedFileOffset: 4 * MiB,
    lastFileOffset: 4 * MiB,
    sectors: [{ fileOffset: 3 * MiB, data: new Uint8Array(4096).fill(1) }],
    zeros: [{ fileOffset: 5 * MiB, length: 8192 }],
  });
  const log = new Uint8Array(64 * 1024);
  log.set(entry, 0);
  assert.equal(findActiveSequence(log, g)?.length, 1);
  fc.assert(
    fc.property(damage(log, entry.length), fc.nat(15), (b, at) => {
      total(() => decodeLogEntry(b, at * 4096, g));
      total(() => findActiveSequence(b, g));
    }),
    { numRuns: 300 },
  );
});

test('opening randomly damaged files gives a value or an HvError, and check never throws', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vhdx-fuzz-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const base = join(dir, 'base.vhdx');
  const d = await VhdxDisk.create(base, { size: 16 * MiB, type: 'dynamic', blockSize: MiB });
  await d.write(new Uint8Array(MiB).fill(9), 0);
  await d.close();
  // Places: header 1 fields, region table 1 entries, metadata table and items, BAT entries.
  const places = [64 * 1024, 192 * 1024, 2 * MiB, 2 * MiB + 64 * 1024, 3 * MiB];
  let i = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...places),
      fc.array(fc.tuple(fc.nat(255), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
      async (place, edits) => {
        const p = join(dir, `f${i++}.vhdx`);
        copyFileSync(base, p);
        for (const [o, v] of edits) writeAt(p, place + o, Uint8Array.of(v));
        try {
          const x = await VhdxDisk.open(p, { readOnly: true });
          await x.read(new Uint8Array(MiB), 0);
          await x.close();
        } catch (e) {
          if (!(e instanceof HvError)) throw e;
        }
        await checkVhdx(p, { repair: false });
        rmSync(p);
      },
    ),
    { numRuns: 150 },
  );
});
