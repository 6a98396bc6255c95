/**
 * convertDisk between every pair of raw, fixed/dynamic VHD and fixed/dynamic VHDX: qemu-img compare (an
 * independent reader) finds each result identical to the raw original, and holes stay holes (allocated file
 * size measured with stat, not from our code).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { convertDisk } from '../../../src/disk/ops/convert.ts';
import { isHvError } from '../../../src/protocol/errors.ts';
import { requirePeer } from '../../peers.ts';

const qemuImg = requirePeer('qemu-img', 'qemu-utils');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hvis-convert-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const MiB = 1024 * 1024;
const SIZE = 40 * MiB;
const original = path.join(dir, 'original.img');
/** Bytes of data in the original; everything else is a hole. */
const DATA = [
  { at: 0, len: 4096 },
  { at: 5 * MiB + 512, len: 65536 },
  { at: 17 * MiB, len: 3 * MiB },
  { at: SIZE - MiB, len: MiB },
];

interface Kind {
  name: string;
  ext: string;
  qemu: string;
  vhdType?: 'fixed' | 'dynamic';
}
const KINDS: Kind[] = [
  { name: 'raw', ext: 'img', qemu: 'raw' },
  { name: 'vhd-fixed', ext: 'vhd', qemu: 'vpc', vhdType: 'fixed' },
  { name: 'vhd-dynamic', ext: 'vhd', qemu: 'vpc', vhdType: 'dynamic' },
  { name: 'vhdx-fixed', ext: 'vhdx', qemu: 'vhdx', vhdType: 'fixed' },
  { name: 'vhdx-dynamic', ext: 'vhdx', qemu: 'vhdx', vhdType: 'dynamic' },
];

before(() => {
  const fd = fs.openSync(original, 'w');
  for (const [i, d] of DATA.entries()) fs.writeSync(fd, Buffer.alloc(d.len, 0x31 + i), 0, d.len, d.at);
  fs.ftruncateSync(fd, SIZE);
  fs.closeSync(fd);
});

function sameAsOriginal(file: string, fmt: string, what: string): void {
  const r = spawnSync(qemuImg, ['compare', '-f', fmt, '-F', 'raw', file, original], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${what}: ${r.stdout}${r.stderr}`);
}

const allocated = (file: string) => fs.statSync(file).blocks * 512;

/** Units of `unit` bytes the data touches. */
function touched(unit: number): number {
  const set = new Set<number>();
  for (const d of DATA) for (let u = Math.floor(d.at / unit); u * unit < d.at + d.len; u++) set.add(u);
  return set.size;
}

/**
 * Most bytes a converted file may allocate if holes stayed holes: the data rounded to the converter's 64 KiB
 * zero-detection granules, plus the format's structures (VHDX: 1 MiB header area, 1 MiB log, BAT and metadata
 * regions), or whole 2 MiB blocks for a dynamic VHD (whose blocks are written complete, zeros included).
 */
function allowance(kind: string): number {
  const granules = touched(64 * 1024) * 64 * 1024;
  if (kind === 'vhd-dynamic') return touched(2 * MiB) * (2 * MiB + 512) + 64 * 1024;
  if (kind.startsWith('vhdx')) return granules + 3 * MiB;
  return granules + 64 * 1024;
}

test('every format pair converts to an identical disk and stays sparse', async () => {
  const sources = new Map<string, string>();
  for (const k of KINDS) {
    const file = path.join(dir, `src-${k.name}.${k.ext}`);
    if (k.name === 'raw') fs.copyFileSync(original, file);
    else await convertDisk(original, file, { vhdType: k.vhdType! });
    sameAsOriginal(file, k.qemu, `raw → ${k.name}`);
    sources.set(k.name, file);
  }
  for (const from of KINDS) {
    for (const to of KINDS) {
      const dest = path.join(dir, `${from.name}-to-${to.name}.${to.ext}`);
      const opts = to.vhdType ? { vhdType: to.vhdType } : {};
      const info = await convertDisk(sources.get(from.name)!, dest, opts);
      const what = `${from.name} → ${to.name}`;
      assert.equal(info.Size, SIZE, what);
      assert.equal(info.VhdType, to.vhdType === 'dynamic' ? 'Dynamic' : 'Fixed', what);
      sameAsOriginal(dest, to.qemu, what);
      assert.ok(allocated(dest) <= allowance(to.name), `${what}: ${allocated(dest)} bytes allocated`);
      fs.rmSync(dest);
    }
  }
});

test('convert refuses an existing destination and an unknown extension, and leaves no temp file', async () => {
  const dest = path.join(dir, 'exists.vhd');
  fs.writeFileSync(dest, 'x');
  await assert.rejects(convertDisk(original, dest), (e: unknown) => isHvError(e, 'HV_ERR_ALREADY_EXISTS'));
  await assert.rejects(
    convertDisk(original, path.join(dir, 'x.qcow2')),
    (e: unknown) => isHvError(e, 'HV_ERR_INVALID_ARGUMENT') && /\.vhd, \.vhdx/.test(e.message),
  );
  await assert.rejects(
    convertDisk(original, path.join(dir, 'dyn.img'), { vhdType: 'dynamic' }),
    (e: unknown) => isHvError(e, 'HV_ERR_INVALID_ARGUMENT') && /raw image is always fixed/.test(e.message),
  );
  assert.deepEqual(
    fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')),
    [],
  );
});
