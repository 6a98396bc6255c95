/**
 * Optimize-VHD on VHDX (src/disk/vhdx/compact.ts through ops/optimize.ts): the file shrinks, every remaining
 * block reads the same, real readers agree (qemu-img check/compare with a raw twin, pyvhdi), differencing
 * children keep blocks that hide parent data, fixed files are refused (case 31), and the move planner.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { optimizeDisk } from '../../../src/disk/ops/optimize.ts';
import { type FileAllocation, planMoves, VhdxDisk } from '../../../src/disk/vhdx/index.ts';
import { requirePeer } from '../../peers.ts';
import { batEntry, currentHeader, filled, headerFields, MiB } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'vhdx-compact-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const qemuImg = () => requirePeer('qemu-img', 'qemu-utils');

const PY_SHA = `
import sys, hashlib, pyvhdi
files = []
for p in sys.argv[1:]:
    f = pyvhdi.file(); f.open(p); files.append(f)
for child, parent in zip(files, files[1:]):
    child.set_parent(parent)
leaf = files[0]; size = leaf.get_media_size(); h = hashlib.sha256(); off = 0
while off < size:
    n = min(4 << 20, size - off); h.update(leaf.read_buffer_at_offset(n, off)); off += n
print(h.hexdigest())
`;
function pyvhdiSha(...chain: string[]): string {
  requirePeer('vhdiinfo', 'libvhdi-utils');
  return execFileSync('/usr/bin/python3', ['-c', PY_SHA, ...chain], { encoding: 'utf8' }).trim();
}
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function readAll(path: string): Promise<Uint8Array> {
  const d = await VhdxDisk.open(path, { readOnly: true });
  try {
    const out = new Uint8Array(d.size);
    await d.read(out, 0);
    return out;
  } finally {
    await d.close();
  }
}

/** Block-sized content unique to `b` (never all zeros). */
function blockData(b: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  const dv = new DataView(out.buffer);
  for (let o = 0; o < len; o += 8) {
    dv.setUint32(o, b + 1, true);
    dv.setUint32(o + 4, o, true);
  }
  return out;
}

const SIZE = 24 * MiB;
// Our create layout (create.ts doc): header section, log, metadata and BAT regions fill the first 4 MiB.
const STRUCTURES = 4 * MiB;

test('dynamic: zeroed and trimmed blocks are freed, the tail is moved down, the file shrinks; readers agree', async () => {
  const p = join(dir, 'dyn.vhdx');
  const raw = join(dir, 'dyn.raw');
  const twin = new Uint8Array(SIZE);
  const d = await VhdxDisk.create(p, { size: SIZE, type: 'dynamic', blockSize: MiB });
  for (let b = 0; b < 16; b++) {
    const data = blockData(b, MiB);
    await d.write(data, b * MiB);
    twin.set(data, b * MiB);
  }
  for (const b of [1, 3, 7]) {
    await d.write(filled(MiB, 0), b * MiB);
    twin.fill(0, b * MiB, (b + 1) * MiB);
  }
  for (const b of [5, 14]) {
    await d.trim(b * MiB, MiB);
    twin.fill(0, b * MiB, (b + 1) * MiB);
  }
  // A block partly zero stays.
  await d.write(filled(MiB - 4096, 0), 9 * MiB);
  twin.fill(0, 9 * MiB, 10 * MiB - 4096);
  await d.close();
  writeFileSync(raw, twin);
  const dataGuid = headerFields(p, currentHeader(p)).dataWrite;
  assert.equal(statSync(p).size, STRUCTURES + 16 * MiB);

  const info = await optimizeDisk(p);
  // 16 blocks written, 5 read as zeros: 11 stay, packed right after the structures.
  assert.equal(statSync(p).size, STRUCTURES + 11 * MiB);
  assert.ok(info.FileSize <= STRUCTURES + 11 * MiB, `FileSize ${info.FileSize}`);
  assert.equal(info.VhdType, 'Dynamic');
  for (const b of [1, 3, 5, 7, 14])
    assert.deepEqual(batEntry(p, b), [2, 0], `block ${b} is ZERO at offset 0`);
  const offsets = new Set<number>();
  for (const b of [0, 2, 4, 6, 8, 9, 10, 11, 12, 13, 15]) {
    const [state, off] = batEntry(p, b);
    assert.equal(state, 6, `block ${b} stays FULLY_PRESENT`);
    assert.ok(off >= STRUCTURES && off + MiB <= statSync(p).size, `block ${b} at ${off} inside the file`);
    offsets.add(off);
  }
  assert.equal(offsets.size, 11, 'no two blocks share a place');
  // No user-visible change: the DataWriteGuid stays (children of this disk keep their linkage).
  assert.equal(headerFields(p, currentHeader(p)).dataWrite, dataGuid);
  assert.deepEqual(await readAll(p), twin);
  execFileSync(qemuImg(), ['check', '-f', 'vhdx', p], { stdio: 'pipe' });
  execFileSync(qemuImg(), ['compare', '-f', 'vhdx', '-F', 'raw', p, raw], { stdio: 'pipe' });
  assert.equal(pyvhdiSha(p), sha(twin));
  // Compacting again finds nothing to do; writes after compaction land in fresh space and read back.
  await optimizeDisk(p);
  assert.equal(statSync(p).size, STRUCTURES + 11 * MiB);
  const w = await VhdxDisk.open(p);
  await w.write(blockData(40, MiB), 20 * MiB);
  await w.close();
  twin.set(blockData(40, MiB), 20 * MiB);
  assert.deepEqual(await readAll(p), twin);
  execFileSync(qemuImg(), ['check', '-f', 'vhdx', p], { stdio: 'pipe' });
});

test('differencing: blocks equal to the parent go, a zero block hiding parent data stays; the chain reads the same', async () => {
  const base = join(dir, 'base.vhdx');
  const child = join(dir, 'child.vhdx');
  const b0 = await VhdxDisk.create(base, { size: 8 * MiB, type: 'dynamic', blockSize: MiB });
  for (const b of [0, 1, 2]) await b0.write(blockData(b, MiB), b * MiB);
  await b0.close();
  const c = await VhdxDisk.create(child, {
    size: 8 * MiB,
    type: 'differencing',
    parentPath: base,
    blockSize: MiB,
  });
  await c.write(blockData(0, MiB).subarray(0, 8192), 0); // same as the parent (partial block): removable
  await c.write(blockData(1, MiB), MiB); // same as the parent: removable
  await c.write(filled(MiB, 0), 2 * MiB); // zeros over parent data: must stay
  await c.write(filled(8192, 0), 4 * MiB); // zeros over parent zeros (partial block): removable
  await c.write(filled(4096, 0x77), 6 * MiB + 8192); // new data (partial block): stays
  await c.close();
  const before = await readAll(child);
  const sizeBefore = statSync(child).size;
  await optimizeDisk(child);
  assert.deepEqual(await readAll(child), before);
  assert.equal(batEntry(child, 0)[0], 0, 'block 0 (partly written, same as parent) is NOT_PRESENT');
  assert.equal(batEntry(child, 1)[0], 0, 'block 1 (same as parent) is NOT_PRESENT');
  assert.equal(batEntry(child, 4)[0], 0, 'block 4 (zeros over parent zeros) is NOT_PRESENT');
  assert.notEqual(batEntry(child, 2)[0], 0, 'block 2 (zeros hiding parent data) stays');
  assert.equal(batEntry(child, 6)[0], 7, 'block 6 stays PARTIALLY_PRESENT');
  assert.ok(statSync(child).size <= sizeBefore - 2 * MiB, `${statSync(child).size} vs ${sizeBefore}`);
  assert.equal(pyvhdiSha(child, base), sha(before));
  // A later write into a freed partial block must not resurrect its old bitmap bits (zeros over the parent).
  const w = await VhdxDisk.open(child);
  await w.write(filled(512, 0x11), 65536);
  await w.close();
  before.fill(0x11, 65536, 65536 + 512);
  assert.deepEqual(await readAll(child), before);
  assert.equal(pyvhdiSha(child, base), sha(before));
});

test('compacting a parent keeps its identity: the child still opens and reads through it', async () => {
  const base = join(dir, 'p-base.vhdx');
  const child = join(dir, 'p-child.vhdx');
  const b0 = await VhdxDisk.create(base, { size: 8 * MiB, type: 'dynamic', blockSize: MiB });
  for (const b of [0, 1, 2, 3]) await b0.write(blockData(b, MiB), b * MiB);
  await b0.write(filled(MiB, 0), MiB);
  await b0.close();
  await (
    await VhdxDisk.create(child, { size: 8 * MiB, type: 'differencing', parentPath: base, blockSize: MiB })
  ).close();
  const before = await readAll(child);
  await optimizeDisk(base);
  assert.equal(statSync(base).size, STRUCTURES + 3 * MiB);
  assert.deepEqual(await readAll(child), before);
});

test('31: a fixed VHDX is refused and left byte-identical', async () => {
  const p = join(dir, 'fixed.vhdx');
  const d = await VhdxDisk.create(p, { size: 4 * MiB, type: 'fixed', blockSize: MiB });
  await d.write(blockData(0, MiB), 0);
  await d.close();
  const bytes = readFileSync(p);
  await assert.rejects(optimizeDisk(p), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'HV_ERR_INVALID_ARGUMENT');
    assert.match(e.message, /fixed VHDX/);
    return true;
  });
  assert.ok(readFileSync(p).equals(bytes));
});

test('planMoves: highest allocation first into the lowest gap below it that fits; batches never reuse sources', () => {
  const a = (index: number, fileOffset: number, length = MiB): FileAllocation => ({
    index,
    kind: 'payload',
    block: index,
    fileOffset,
    length,
  });
  const reserved: Array<[number, number]> = [[0, 4 * MiB]];
  // Gaps at 5 MiB (1 MiB) and 7-9 MiB (2 MiB); blocks at 4, 6, 9 (2 MiB), 12, 13 MiB.
  const allocs = [a(0, 4 * MiB), a(1, 6 * MiB), a(2, 9 * MiB, 2 * MiB), a(3, 12 * MiB), a(4, 13 * MiB)];
  assert.deepEqual(planMoves(allocs, reserved, Infinity), [
    { index: 4, to: 5 * MiB },
    { index: 3, to: 7 * MiB },
  ]); // the 2 MiB block at 9 MiB has no 2 MiB gap below it (8-9 and 11-12 MiB are 1 MiB each): the plan stops
  // The byte budget stops a batch (but a batch always takes at least one move).
  assert.deepEqual(planMoves(allocs, reserved, MiB), [{ index: 4, to: 5 * MiB }]);
  // Nothing below fits: no moves.
  assert.deepEqual(planMoves([a(0, 4 * MiB), a(1, 5 * MiB)], reserved, Infinity), []);
  // A 2 MiB block does not go into a 1 MiB gap, and the plan stops at it.
  assert.deepEqual(planMoves([a(0, 5 * MiB), a(1, 6 * MiB, 2 * MiB)], reserved, Infinity), []);
});
