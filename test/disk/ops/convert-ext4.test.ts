/**
 * Real input: an ext4 filesystem built by mke2fs -d from a directory tree (files of many sizes, a symlink,
 * non-ASCII names, a hole) goes raw → VHDX → VHD → raw through our converter (once through the library,
 * once through `hvis convert-vhd`). The result must be byte-equal to mke2fs's image and pass `e2fsck -fn`;
 * qemu-img must see the same bytes in our VHDX and VHD as in the raw original.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { convertDisk } from '../../../src/disk/ops/convert.ts';
import { requirePeer } from '../../peers.ts';

const mke2fs = requirePeer('mke2fs', 'e2fsprogs');
const e2fsck = requirePeer('e2fsck', 'e2fsprogs');
const qemuImg = requirePeer('qemu-img', 'qemu-utils');
const main = path.resolve(import.meta.dirname, '../../../src/cli/main.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hvis-ext4-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const original = path.join(dir, 'fs.img');

/** Deterministic pseudo-random bytes (xorshift32), so failures reproduce. */
function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

before(() => {
  const tree = path.join(dir, 'tree');
  fs.mkdirSync(path.join(tree, 'deep/er/still'), { recursive: true });
  fs.mkdirSync(path.join(tree, 'ünïcödé-目录'));
  fs.writeFileSync(path.join(tree, 'empty'), '');
  fs.writeFileSync(path.join(tree, 'one-byte'), 'x');
  fs.writeFileSync(path.join(tree, 'sector-511'), bytes(511, 1));
  fs.writeFileSync(path.join(tree, 'deep/er/still/block-4097'), bytes(4097, 2));
  fs.writeFileSync(path.join(tree, 'ünïcödé-目录/файл.bin'), bytes(300 * 1024, 3));
  fs.writeFileSync(path.join(tree, 'big-3M'), bytes(3 * 1024 * 1024 + 17, 4));
  // A file with a hole in the middle (mke2fs -d keeps holes).
  const holey = path.join(tree, 'holey');
  fs.writeFileSync(holey, bytes(8192, 5));
  const fd = fs.openSync(holey, 'r+');
  fs.writeSync(fd, bytes(8192, 6), 0, 8192, 2 * 1024 * 1024);
  fs.closeSync(fd);
  fs.symlinkSync('deep/er/still/block-4097', path.join(tree, 'link → block'));
  execFileSync(mke2fs, ['-q', '-F', '-t', 'ext4', '-b', '4096', '-d', tree, original, '24M'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // The image the test starts from must itself be a clean filesystem.
  execFileSync(e2fsck, ['-fn', original], { stdio: ['ignore', 'pipe', 'pipe'] });
});

function sha(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function qemuCompare(image: string, fmt: string): void {
  const r = spawnSync(qemuImg, ['compare', '-f', fmt, '-F', 'raw', image, original], { encoding: 'utf8' });
  assert.equal(r.status, 0, `qemu-img compare ${fmt}: ${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /Images are identical/);
}

function fsck(file: string): void {
  const r = spawnSync(e2fsck, ['-fn', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, `e2fsck -fn ${file}: ${r.stdout}${r.stderr}`);
}

test('ext4 from mke2fs -d: raw → VHDX → VHD → raw with convertDisk is byte-equal and fsck-clean', async () => {
  const vhdx = path.join(dir, 'lib.vhdx');
  const vhd = path.join(dir, 'lib.vhd');
  const back = path.join(dir, 'lib-back.img');
  const x = await convertDisk(original, vhdx);
  assert.equal(x.VhdFormat, 'VHDX');
  assert.equal(x.VhdType, 'Fixed');
  const v = await convertDisk(vhdx, vhd, { vhdType: 'dynamic' });
  assert.equal(v.VhdFormat, 'VHD');
  assert.equal(v.VhdType, 'Dynamic');
  await convertDisk(vhd, back);
  qemuCompare(vhdx, 'vhdx');
  qemuCompare(vhd, 'vpc');
  assert.equal(fs.statSync(back).size, fs.statSync(original).size);
  assert.equal(sha(back), sha(original));
  fsck(back);
});

test('ext4 round trip through `hvis convert-vhd` (dynamic VHDX → fixed VHD → raw)', () => {
  const hvis = (...args: string[]) => {
    const r = spawnSync(process.execPath, [main, ...args], { encoding: 'utf8' });
    assert.equal(r.status, 0, `hvis ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  };
  const vhdx = path.join(dir, 'cli.vhdx');
  const vhd = path.join(dir, 'cli.vhd');
  const back = path.join(dir, 'cli-back.raw');
  assert.equal(hvis('convert-vhd', original, vhdx, '--vhd-type', 'Dynamic', '--json').VhdType, 'Dynamic');
  assert.equal(
    hvis('convert-vhd', '-Path', vhdx, '-DestinationPath', vhd, '-VHDType', 'Fixed', '--json').VhdType,
    'Fixed',
  );
  hvis('convert-vhd', '--path', vhd, '--destination-path', back, '--json');
  qemuCompare(vhdx, 'vhdx');
  qemuCompare(vhd, 'vpc');
  assert.equal(sha(back), sha(original));
  fsck(back);
});
