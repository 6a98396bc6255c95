/**
 * Regression test for the lost write of the VHDX SIGKILL crash test ("sector 84371 lost acknowledged write 64
 * (maybe -1)"): a trim in flight at the kill left a sector with 496 bytes of zeros and 16 bytes of the old data.
 * Cause: the trim zero-filled its range from a fresh 1 MiB buffer whose pages were never touched; Linux's
 * buffered write commits a short copy at the first unmapped source page and stops there on a fatal signal, and
 * that boundary lies 16 bytes before a sector boundary of the file (ArrayBuffer data starts 16 bytes into a
 * page). The fix maps every source page before the pwrite, so a kill can only cut at file page (= sector)
 * boundaries.
 *
 * Deterministic check: every FileHandle.write the VHDX code issues is intercepted and mincore(2) (through koffi)
 * must report all pages of the source range resident at that moment. A control asserts that a fresh buffer is
 * indeed not resident on this machine, so the check can fail.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { VhdxDisk } from '../../../src/disk/vhdx/index.ts';
import { libcFunction } from '../../../src/guest/daemons/libc.ts';

const PAGE = 4096;
const MiB = 1024 * 1024;
/** koffi passes a TypedArray as a pointer to its first byte; memset(p, 0, 0) returns p without touching it. */
const memset = libcFunction<(p: Uint8Array, c: number, n: number) => number | bigint>(
  'uintptr_t memset(uint8_t *s, int c, size_t n)',
);
const mincore = libcFunction<(addr: bigint, length: number, vec: Uint8Array) => number>(
  'int mincore(uintptr_t addr, size_t length, _Out_ uint8_t *vec)',
);

/** Pages of `buf` not mapped in RAM right now (mincore bit 0 clear). */
function unmappedPages(buf: Uint8Array): number {
  if (buf.length === 0) return 0;
  const start = BigInt(memset(buf, 0, 0));
  const first = start - (start % BigInt(PAGE));
  const len = Number(start - first) + buf.length;
  const vec = new Uint8Array(Math.ceil(len / PAGE));
  assert.equal(mincore(first, len, vec), 0, 'mincore failed');
  return vec.filter((v) => (v & 1) === 0).length;
}

const dir = mkdtempSync(join(tmpdir(), 'vhdx-source-pages-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Records, for every FileHandle.write while `fn` runs, how many source pages were unmapped. */
async function recordWrites(fn: () => Promise<void>): Promise<number[]> {
  const probe = await open(join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as { write: (...a: unknown[]) => Promise<unknown> };
  await probe.close();
  const orig = proto.write;
  const seen: number[] = [];
  proto.write = function (this: unknown, ...args: unknown[]) {
    const [buf, off, len] = args as [Uint8Array, number, number];
    seen.push(unmappedPages(buf.subarray(off, off + len)));
    return orig.apply(this, args);
  };
  try {
    await fn();
  } finally {
    proto.write = orig;
  }
  return seen;
}

test('control: a fresh 1 MiB buffer has unmapped pages (so the checks below can fail)', () => {
  assert.ok(unmappedPages(new Uint8Array(MiB)) > 0);
  const touched = new Uint8Array(MiB).fill(1);
  assert.equal(unmappedPages(touched), 0);
});

test('a partial-block trim zero-fills from source pages that are all mapped', async () => {
  const image = join(dir, 'trim.vhdx');
  const disk = await VhdxDisk.create(image, { size: 64 * MiB, type: 'dynamic', blockSize: MiB });
  try {
    // Block 41 allocated and committed, then the crash test's trim: 215 sectors from sector 84332.
    await disk.write(new Uint8Array(MiB).fill(0xab), 41 * MiB);
    await disk.flush();
    const seen = await recordWrites(() => disk.trim(84332 * 512, 215 * 512));
    assert.ok(seen.length > 0, 'the trim wrote nothing');
    assert.deepEqual(
      seen.filter((n) => n > 0),
      [],
      'a pwrite copied from unmapped pages: a SIGKILL could tear a sector',
    );
    const back = new Uint8Array(215 * 512 + 1024);
    await disk.read(back, 84331 * 512);
    assert.ok(back.subarray(0, 512).every((b) => b === 0xab));
    assert.ok(back.subarray(512, 512 + 215 * 512).every((b) => b === 0));
    assert.ok(back.subarray(512 + 215 * 512).every((b) => b === 0xab));
  } finally {
    await disk.close();
  }
});

test('a write of a never-touched zero buffer reaches pwrite with every source page mapped', async () => {
  const image = join(dir, 'write.vhdx');
  const disk = await VhdxDisk.create(image, { size: 16 * MiB, type: 'dynamic', blockSize: MiB });
  try {
    await disk.write(new Uint8Array(MiB).fill(7), 3 * MiB);
    await disk.flush();
    // 64 MiB is above glibc's largest mmap threshold: a fresh mapping, never touched.
    const fresh = new Uint8Array(64 * MiB).subarray(0, MiB);
    assert.ok(unmappedPages(fresh) > 0, 'precondition: the buffer is not mapped yet');
    const seen = await recordWrites(() => disk.write(fresh, 3 * MiB));
    assert.ok(seen.length > 0);
    assert.deepEqual(
      seen.filter((n) => n > 0),
      [],
    );
  } finally {
    await disk.close();
  }
});
