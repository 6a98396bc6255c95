/**
 * disk-formats.md §5 cases 19–20: log replay from synthetic logs built in the test from the VHDX v1.00 §2.3
 * layout (helpers.ts), read-only in-memory replay, and the GUID rules of a read-write replay.
 * Case 19's QEMU sample (iotest-dirtylog-10G-4M.vhdx.bz2) is GPL test data and cannot be fetched here; these
 * synthetic logs cover the same paths.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { VhdxDisk } from '../../../src/disk/vhdx/index.ts';
import { isHvError } from '../../../src/protocol/errors.ts';
import {
  batEntry,
  currentHeader,
  dv,
  filled,
  HEADER1,
  headerFields,
  MiB,
  putEntry,
  readAt,
  setLogGuid,
  specEntry,
} from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'vhdx-log-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** A 64 MiB dynamic image, block 0 full of 0x11; returns its path, block 0's file offset and the log place. */
async function base(): Promise<{
  path: string;
  p: number;
  logOffset: number;
  logLength: number;
  size: number;
}> {
  const path = join(dir, `l${n++}.vhdx`);
  const d = await VhdxDisk.create(path, { size: 64 * MiB, type: 'dynamic', blockSize: MiB });
  await d.write(filled(MiB, 0x11), 0);
  await d.close();
  const h = readAt(path, HEADER1, 4096);
  return {
    path,
    p: batEntry(path, 0)[1],
    logOffset: Number(dv(h).getBigUint64(72, true)),
    logLength: dv(h).getUint32(68, true),
    size: statSync(path).size,
  };
}

async function readBack(path: string, off: number, len: number, readOnly = true): Promise<Uint8Array> {
  const d = await VhdxDisk.open(path, { readOnly });
  const b = new Uint8Array(len);
  await d.read(b, off);
  await d.close();
  return b;
}

const guid = () => new Uint8Array(randomBytes(16));
const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

test('a valid entry is replayed: read-only in memory without touching the file, read-write in place', async () => {
  const b = await base();
  const g = guid();
  setLogGuid(b.path, g);
  putEntry(
    b.path,
    b.logOffset,
    b.logLength,
    0,
    specEntry({
      seq: 7n,
      tail: 0,
      logGuid: g,
      flushed: b.size,
      last: b.size,
      sectors: [{ fileOffset: b.p + 4096, data: filled(4096, 0x22) }],
    }),
  );
  const before = headerFields(b.path, currentHeader(b.path));
  const hash = sha(b.path);
  assert.deepEqual(await readBack(b.path, 4096, 4096), filled(4096, 0x22));
  assert.deepEqual(await readBack(b.path, 0, 4096), filled(4096, 0x11));
  assert.equal(sha(b.path), hash, 'read-only open wrote to the file');
  const d = await VhdxDisk.open(b.path);
  const mid = headerFields(b.path, currentHeader(b.path));
  assert.equal(mid.log, '0'.repeat(32), 'LogGuid not cleared after replay');
  assert.notEqual(mid.fileWrite, before.fileWrite, 'FileWriteGuid not changed by the read-write replay');
  assert.equal(mid.dataWrite, before.dataWrite, 'replay must not change DataWriteGuid');
  await d.close();
  assert.deepEqual(readAt(b.path, b.p + 4096, 4096), filled(4096, 0x22));
});

test('an entry wrapping the end of the log buffer is replayed', async () => {
  const b = await base();
  const g = guid();
  setLogGuid(b.path, g);
  const e = specEntry({
    seq: 3n,
    tail: b.logLength - 4096,
    logGuid: g,
    flushed: b.size,
    last: b.size,
    sectors: [{ fileOffset: b.p, data: filled(4096, 0x33) }],
  });
  putEntry(b.path, b.logOffset, b.logLength, b.logLength - 4096, e);
  assert.deepEqual(await readBack(b.path, 0, 4096), filled(4096, 0x33));
});

test('two sequences: the one with the highest sequence number wins; its Tail entries are replayed in order', async () => {
  const b = await base();
  const g = guid();
  setLogGuid(b.path, g);
  const mk = (seq: bigint, tail: number, byte: number, at = 0) =>
    specEntry({
      seq,
      tail,
      logGuid: g,
      flushed: b.size,
      last: b.size,
      sectors: [{ fileOffset: b.p + at, data: filled(4096, byte) }],
    });
  // Active: seq 10 at 0 and seq 11 at 8 KiB (tail 0); stale: seq 5 at 512 KiB.
  putEntry(b.path, b.logOffset, b.logLength, 0, mk(10n, 0, 0x44, 0));
  putEntry(b.path, b.logOffset, b.logLength, 8192, mk(11n, 0, 0x55, 4096));
  putEntry(b.path, b.logOffset, b.logLength, 512 * 1024, mk(5n, 512 * 1024, 0x66, 0));
  const got = await readBack(b.path, 0, 8192);
  assert.deepEqual(got.subarray(0, 4096), filled(4096, 0x44));
  assert.deepEqual(got.subarray(4096), filled(4096, 0x55));
});

test('a bad CRC mid-sequence ends the sequence before it', async () => {
  const b = await base();
  const g = guid();
  setLogGuid(b.path, g);
  putEntry(
    b.path,
    b.logOffset,
    b.logLength,
    0,
    specEntry({
      seq: 1n,
      tail: 0,
      logGuid: g,
      flushed: b.size,
      last: b.size,
      sectors: [{ fileOffset: b.p, data: filled(4096, 0x77) }],
    }),
  );
  putEntry(
    b.path,
    b.logOffset,
    b.logLength,
    8192,
    specEntry({
      seq: 2n,
      tail: 0,
      logGuid: g,
      flushed: b.size,
      last: b.size,
      sectors: [{ fileOffset: b.p, data: filled(4096, 0x88) }],
      corruptCrc: true,
    }),
  );
  assert.deepEqual(await readBack(b.path, 0, 4096), filled(4096, 0x77));
});

test('entries with a foreign LogGuid or a mismatched data-sector sequence are ignored', async () => {
  for (const bad of ['guid', 'seq'] as const) {
    const b = await base();
    const g = guid();
    setLogGuid(b.path, g);
    putEntry(
      b.path,
      b.logOffset,
      b.logLength,
      0,
      specEntry({
        seq: 4n,
        tail: 0,
        logGuid: bad === 'guid' ? guid() : g,
        flushed: b.size,
        last: b.size,
        sectors: [{ fileOffset: b.p, data: filled(4096, 0x99) }],
        badDataSeq: bad === 'seq',
      }),
    );
    assert.deepEqual(await readBack(b.path, 0, 4096), filled(4096, 0x11), bad);
    assert.deepEqual(await readBack(b.path, 0, 4096, false), filled(4096, 0x11), bad);
  }
});

test('a zero descriptor zeroes several sectors', async () => {
  const b = await base();
  const g = guid();
  setLogGuid(b.path, g);
  putEntry(
    b.path,
    b.logOffset,
    b.logLength,
    0,
    specEntry({
      seq: 9n,
      tail: 0,
      logGuid: g,
      flushed: b.size,
      last: b.size,
      zeros: [{ fileOffset: b.p + 8192, length: 16384 }],
    }),
  );
  const got = await readBack(b.path, 0, 32768);
  assert.deepEqual(got.subarray(0, 8192), filled(8192, 0x11));
  assert.deepEqual(got.subarray(8192, 24576), filled(16384, 0));
  assert.deepEqual(got.subarray(24576), filled(8192, 0x11));
  assert.deepEqual(await readBack(b.path, 0, 32768, false), got);
});

test('FlushedFileOffset beyond the file means truncation: open fails with HV_ERR_CORRUPT', async () => {
  const b = await base();
  const g = guid();
  setLogGuid(b.path, g);
  putEntry(
    b.path,
    b.logOffset,
    b.logLength,
    0,
    specEntry({
      seq: 1n,
      tail: 0,
      logGuid: g,
      flushed: b.size + MiB,
      last: b.size + MiB,
      sectors: [{ fileOffset: b.p, data: filled(4096, 1) }],
    }),
  );
  await assert.rejects(
    VhdxDisk.open(b.path, { readOnly: true }),
    (e) => isHvError(e, 'HV_ERR_CORRUPT') && /truncated/.test(e.message),
  );
});

test('LastFileOffset beyond the file (already 1 MiB aligned) extends the file on replay', async () => {
  const b = await base();
  const g = guid();
  setLogGuid(b.path, g);
  putEntry(
    b.path,
    b.logOffset,
    b.logLength,
    0,
    specEntry({
      seq: 1n,
      tail: 0,
      logGuid: g,
      flushed: b.size,
      last: b.size + 3 * MiB,
      sectors: [{ fileOffset: b.p, data: filled(4096, 2) }],
    }),
  );
  await (await VhdxDisk.open(b.path)).close();
  assert.equal(statSync(b.path).size, b.size + 3 * MiB);
});

test('our own log: a commit left in the log (process gone before close) replays to the same data', async () => {
  const b = await base();
  const d = await VhdxDisk.open(b.path);
  await d.write(filled(8192, 0xab), 5 * MiB);
  await d.flush();
  // Abandon without close: the log still carries the commit (LogGuid set).
  assert.notEqual(headerFields(b.path, currentHeader(b.path)).log, '0'.repeat(32));
  assert.deepEqual(await readBack(b.path, 5 * MiB, 8192), filled(8192, 0xab));
  assert.deepEqual(await readBack(b.path, 5 * MiB, 8192, false), filled(8192, 0xab));
  await d.close().catch(() => {});
});
