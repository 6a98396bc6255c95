/**
 * Resize-VHD, Optimize-VHD, Merge-VHD and Test-VHD --repair at library level, checked with real readers:
 * qemu-img/qemu-io for sizes and bytes, libvhdi (pyvhdi) for differencing chains, which qemu cannot follow.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { createDisk, openDisk } from '../../../src/disk/open.ts';
import { mergeDisk } from '../../../src/disk/ops/merge.ts';
import { optimizeDisk } from '../../../src/disk/ops/optimize.ts';
import { resizeDisk } from '../../../src/disk/ops/resize.ts';
import { testDisk } from '../../../src/disk/ops/test.ts';
import { isHvError } from '../../../src/protocol/errors.ts';
import { requirePeer } from '../../peers.ts';
import { libvhdiHash, ourHash } from '../hashes.ts';

const qemuImg = requirePeer('qemu-img', 'qemu-utils');
const qemuIo = requirePeer('qemu-io', 'qemu-utils');
requirePeer('vhdiinfo', 'libvhdi-utils');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hvis-ops-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const KiB = 1024;
const MiB = 1024 * KiB;

const QEMU_FMT: Record<string, string> = { '.img': 'raw', '.vhd': 'vpc', '.vhdx': 'vhdx' };
const fmtOf = (file: string) => QEMU_FMT[path.extname(file)]!;

function qemuSize(file: string): number {
  const info = JSON.parse(
    execFileSync(qemuImg, ['info', '--output=json', '-f', fmtOf(file), file], { encoding: 'utf8' }),
  );
  return info['virtual-size'] as number;
}

/** qemu-io reads `len` bytes of `byte` at `off` (fails the test otherwise). */
function qemuHas(file: string, byte: number, off: number, len: number): void {
  const r = spawnSync(qemuIo, ['-f', fmtOf(file), '-r', '-c', `read -P ${byte} ${off} ${len}`, file], {
    encoding: 'utf8',
  });
  assert.ok(
    r.status === 0 && !/Pattern verification failed/.test(r.stdout + r.stderr),
    `${file}: ${r.stdout}${r.stderr}`,
  );
}

async function fill(file: string, byte: number, off: number, len: number): Promise<void> {
  const d = await openDisk(file);
  await d.write(new Uint8Array(len).fill(byte), off);
  await d.close();
}

const rejectsWith = (code: string, re: RegExp) => (e: unknown) =>
  isHvError(e) && e.code === code && re.test(e.message);

test('resize grows, shrinks, and shrinks to the minimum size without cutting data, for every format', async () => {
  const kinds = [
    ['r.img', 'fixed'],
    ['f.vhd', 'fixed'],
    ['d.vhd', 'dynamic'],
    ['d.vhdx', 'dynamic'],
  ] as const;
  for (const [name, type] of kinds) {
    const file = path.join(dir, name);
    await (await createDisk(file, { size: 8 * MiB, type, blockSize: MiB })).close();
    await fill(file, 0x61, MiB, 64 * KiB);
    await fill(file, 0x62, 6 * MiB, 64 * KiB);
    await resizeDisk(file, { sizeBytes: 20 * MiB });
    assert.equal(qemuSize(file), 20 * MiB, name);
    await fill(file, 0x63, 19 * MiB, 4 * KiB);
    qemuHas(file, 0x62, 6 * MiB, 64 * KiB);
    qemuHas(file, 0x63, 19 * MiB, 4 * KiB);
    await assert.rejects(
      resizeDisk(file, { sizeBytes: 12 * MiB }),
      (e: unknown) => isHvError(e) && /data|MinimumSize/.test(e.message),
      name,
    );
    const d = await openDisk(file);
    await d.trim(19 * MiB, MiB);
    await d.close();
    await resizeDisk(file, { sizeBytes: 7 * MiB });
    assert.equal(qemuSize(file), 7 * MiB, name);
    qemuHas(file, 0x61, MiB, 64 * KiB);
    qemuHas(file, 0x62, 6 * MiB, 64 * KiB);
    const min = await resizeDisk(file, { toMinimumSize: true });
    // The smallest size keeping the last byte of data (VHDX may keep its last allocated block whole).
    assert.ok(min.Size >= 6 * MiB + 64 * KiB && min.Size <= 7 * MiB, `${name}: minimum ${min.Size}`);
    if (!name.endsWith('.vhdx')) assert.equal(min.Size, 6 * MiB + 64 * KiB, name);
    assert.equal(qemuSize(file), min.Size, name);
    qemuHas(file, 0x62, 6 * MiB, 64 * KiB);
  }
  await assert.rejects(
    resizeDisk(path.join(dir, 'd.vhd'), {}),
    rejectsWith('HV_ERR_INVALID_ARGUMENT', /exactly one/),
  );
  await assert.rejects(
    resizeDisk(path.join(dir, 'd.vhd'), { sizeBytes: 1000 }),
    rejectsWith('HV_ERR_INVALID_ARGUMENT', /multiple of (the )?512/),
  );
});

test('optimize drops zeroed blocks of a dynamic VHD: the file shrinks, the data and identity stay', async () => {
  const file = path.join(dir, 'opt.vhd');
  await (await createDisk(file, { size: 16 * MiB, type: 'dynamic' })).close();
  for (let b = 0; b < 6; b++) await fill(file, 0x41 + b, b * 2 * MiB, 2 * MiB);
  // Zero blocks 1 and 3 by writing zeros: they stay allocated until optimized.
  await fill(file, 0, 2 * MiB, 2 * MiB);
  await fill(file, 0, 6 * MiB, 2 * MiB);
  const child = path.join(dir, 'opt-child.vhd');
  await (await createDisk(child, { type: 'differencing', parentPath: file })).close();
  const raw = path.join(dir, 'opt-before.img');
  execFileSync(qemuImg, ['convert', '-f', 'vpc', '-O', 'raw', file, raw]);
  const before = fs.statSync(file).size;
  const id = (await testDisk(file)).Valid;
  assert.equal(id, true);
  const info = await optimizeDisk(file);
  const after = fs.statSync(file).size;
  assert.ok(before - after >= 2 * (2 * MiB + 512), `file went from ${before} to ${after} bytes`);
  assert.equal(info.FileSize, after);
  const r = spawnSync(qemuImg, ['compare', '-f', 'vpc', '-F', 'raw', file, raw], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.equal((await testDisk(file)).Valid, true);
  // Unique id kept: the child still opens on the compacted parent and reads through it.
  assert.equal(libvhdiHash([child, file]), libvhdiHash([file]));
  assert.equal(await ourHash(child), libvhdiHash([file]));
  const fixed = path.join(dir, 'opt-fixed.vhd');
  await (await createDisk(fixed, { size: MiB, type: 'fixed' })).close();
  await assert.rejects(optimizeDisk(fixed), rejectsWith('HV_ERR_INVALID_ARGUMENT', /fixed VHD/));
  const rawImg = path.join(dir, 'opt.img');
  fs.writeFileSync(rawImg, Buffer.alloc(MiB));
  await assert.rejects(optimizeDisk(rawImg), rejectsWith('HV_ERR_INVALID_ARGUMENT', /raw image/));
});

/**
 * base (dynamic) ← c1 ← c2 with overlapping, sector-unaligned writes at each level. The chain's view is the
 * model of those writes (expected bytes from the writes themselves). libvhdi is not the oracle here: 20210425
 * reads clear-bit sectors that follow a set bit within the same 16 sectors from the child instead of the parent.
 */
async function chain(tag: string): Promise<{ base: string; c1: string; c2: string; view: string }> {
  const base = path.join(dir, `${tag}-base.vhd`);
  const c1 = path.join(dir, `${tag}-c1.vhd`);
  const c2 = path.join(dir, `${tag}-c2.vhd`);
  const model = Buffer.alloc(12 * MiB);
  const put = async (file: string, byte: number, off: number, len: number) => {
    await fill(file, byte, off, len);
    model.fill(byte, off, off + len);
  };
  await (await createDisk(base, { size: 12 * MiB, type: 'dynamic' })).close();
  await put(base, 0x11, 0, 6 * MiB);
  await (await createDisk(c1, { type: 'differencing', parentPath: base })).close();
  await put(c1, 0x22, MiB + 512, 3 * MiB);
  await put(c1, 0x23, 10 * MiB, 4 * KiB);
  await (await createDisk(c2, { type: 'differencing', parentPath: c1 })).close();
  await put(c2, 0x33, 2 * MiB + 4 * KiB, 8 * KiB);
  await put(c2, 0, 5 * MiB, 512);
  const view = createHash('sha256').update(model).digest('hex');
  assert.equal(await ourHash(c2), view);
  return { base, c1, c2, view };
}

test('merge folds a child into its parent, or the whole chain into the base; data equals the chain view', async () => {
  const a = await chain('m1');
  await mergeDisk(a.c2);
  assert.equal(fs.existsSync(a.c2), false);
  assert.equal(await ourHash(a.c1), a.view);
  const b = await chain('m2');
  await mergeDisk(b.c2, b.base);
  assert.equal(fs.existsSync(b.c2) || fs.existsSync(b.c1), false);
  // The merged base is a plain dynamic disk: qemu-img and libvhdi read it independently.
  assert.equal(libvhdiHash([b.base]), b.view);
  assert.equal(await ourHash(b.base), b.view);
  execFileSync(qemuIo, [
    '-f',
    'vpc',
    '-r',
    '-c',
    'read -P 0x33 2101248 8k',
    '-c',
    'read -P 0 5M 512',
    b.base,
  ]);
  await assert.rejects(mergeDisk(b.base), rejectsWith('HV_ERR_INVALID_ARGUMENT', /only a differencing disk/));
  const c = await chain('m3');
  await assert.rejects(mergeDisk(c.c1, c.c2), rejectsWith('HV_ERR_INVALID_ARGUMENT', /not an ancestor/));
});

test('test-vhd --repair fixes a bad dynamic-header checksum and a damaged footer copy', async () => {
  const file = path.join(dir, 'repair.vhd');
  await (await createDisk(file, { size: 4 * MiB, type: 'dynamic' })).close();
  await fill(file, 0x77, 0, 4096);
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.from([0x01]), 0, 1, 512 + 60); // dynamic header reserved byte: checksum now wrong
  fs.writeSync(fd, Buffer.from([0x01]), 0, 1, 100); // footer copy reserved byte: its checksum now wrong
  fs.closeSync(fd);
  await assert.rejects(openDisk(file), rejectsWith('HV_ERR_CORRUPT', /header checksum/));
  const report = await testDisk(file);
  assert.equal(report.Valid, false);
  assert.deepEqual(report.Problems.map((p) => p.code).sort(), ['dynamic-header-checksum', 'footer-copy']);
  const fixed = await testDisk(file, { repair: true });
  assert.ok(fixed.Problems.every((p) => p.repaired));
  assert.deepEqual((await testDisk(file)).Problems, []);
  qemuHas(file, 0x77, 0, 4096);
  const vhdx = path.join(dir, 'clean.vhdx');
  await (await createDisk(vhdx, { size: 4 * MiB, type: 'dynamic' })).close();
  assert.deepEqual(await testDisk(vhdx), { Path: vhdx, VhdFormat: 'VHDX', Valid: true, Problems: [] });
});
