/**
 * VHD against real readers and writers: qemu-img/qemu-io (Debian qemu-utils 7.2, `-f vpc` always) and
 * libvhdi (pyvhdi via /usr/bin/python3). Expected bytes come from those tools, not from our code.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { createDisk, openDisk } from '../../../src/disk/open.ts';
import { decodeFooter } from '../../../src/disk/vhd/footer.ts';
import { requirePeer } from '../../peers.ts';
import { libvhdiHash, ourHash } from '../hashes.ts';

const qemuImg = requirePeer('qemu-img', 'qemu-utils');
const qemuIo = requirePeer('qemu-io', 'qemu-utils');
requirePeer('vhdiinfo', 'libvhdi-utils');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hvis-vhd-oracle-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function fileHash(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

test('images we write read identically in qemu-io, qemu-img compare and libvhdi', async () => {
  for (const type of ['dynamic', 'fixed'] as const) {
    // 21 MiB + 512: not a multiple of the 2 MiB block (partial last block) and not CHS-representable.
    const size = 21 * MiB + 512;
    const file = path.join(dir, `ours-${type}.vhd`);
    const d = await createDisk(file, { size, type });
    await d.write(new Uint8Array(MiB).fill(0xab), 0);
    await d.write(new Uint8Array(65536).fill(0xcd), 5 * MiB + 4096);
    await d.write(new Uint8Array(1024).fill(0xef), size - 1024);
    await d.close();
    assert.match(
      run(qemuImg, ['info', '-f', 'vpc', file]),
      new RegExp(`virtual size: .*\\(${size} bytes\\)`),
    );
    const out = run(qemuIo, [
      '-f',
      'vpc',
      '-r',
      '-c',
      'read -P 0xab 0 1M',
      '-c',
      `read -P 0xcd ${5 * MiB + 4096} 65536`,
      '-c',
      `read -P 0xef ${size - 1024} 1024`,
      '-c',
      `read -P 0 ${2 * MiB} ${MiB}`,
      file,
    ]);
    assert.doesNotMatch(out, /fail/i);
    const raw = path.join(dir, `ours-${type}.raw`);
    run(qemuImg, ['convert', '-f', 'vpc', '-O', 'raw', file, raw]);
    assert.equal(await ourHash(file), fileHash(raw));
    assert.equal(libvhdiHash([file]), fileHash(raw));
    execFileSync(qemuImg, ['compare', '-f', 'vpc', '-F', 'raw', file, raw]);
  }
});

test('images qemu-img writes (dynamic/fixed, force_size on/off) read identically by us', async () => {
  for (const sub of ['dynamic', 'fixed']) {
    for (const force of ['off', 'on']) {
      const file = path.join(dir, `q-${sub}-${force}.vhd`);
      run(qemuImg, ['create', '-q', '-f', 'vpc', '-o', `subformat=${sub},force_size=${force}`, file, '30M']);
      run(qemuIo, [
        '-f',
        'vpc',
        '-c',
        'write -P 0x5a 0 1M',
        '-c',
        'write -P 0x33 7340032 512',
        '-c',
        'write -P 0x77 29360128 65536',
        file,
      ]);
      const info = JSON.parse(run(qemuImg, ['info', '--output=json', '-f', 'vpc', file])) as {
        'virtual-size': number;
      };
      const d = await openDisk(file, { readOnly: true });
      assert.equal(d.size, info['virtual-size'], `${sub} force_size=${force}`);
      assert.equal(d.type, sub === 'fixed' ? 'Fixed' : 'Dynamic');
      await d.close();
      const raw = path.join(dir, `q-${sub}-${force}.raw`);
      run(qemuImg, ['convert', '-f', 'vpc', '-O', 'raw', file, raw]);
      assert.equal(await ourHash(file), fileHash(raw));
    }
  }
});

test('creation sizes and geometry match qemu-img (CHS rounding, force_size max geometry)', async () => {
  for (const n of [MiB, 20 * MiB, 127 * GiB, 128 * GiB, 2040 * GiB]) {
    for (const force of [false, true]) {
      const q = path.join(dir, `geo-q-${n}-${force}.vhd`);
      run(qemuImg, [
        'create',
        '-q',
        '-f',
        'vpc',
        '-o',
        `subformat=dynamic,force_size=${force ? 'on' : 'off'}`,
        q,
        String(n),
      ]);
      const qf = decodeFooter(fs.readFileSync(q).subarray(0, 512));
      const o = path.join(dir, `geo-o-${n}-${force}.vhd`);
      const d = await createDisk(o, { size: n, type: 'dynamic', sizeRule: force ? 'max-geometry' : 'chs' });
      await d.close();
      const of = decodeFooter(fs.readFileSync(o).subarray(0, 512));
      assert.deepEqual(of.geometry, qf.geometry, `geometry for ${n} force=${force}`);
      assert.equal(of.currentSize, qf.currentSize, `size for ${n} force=${force}`);
      fs.rmSync(q);
      fs.rmSync(o);
    }
  }
});

// libvhdi 20210425 reads sectors whose bit is clear as zeros (not from the parent) when they share a
// bitmap byte with set bits (observed here: byte 0xF0 → sectors 4..7 read 0). So the libvhdi comparison
// uses 4 KiB-aligned writes (whole bitmap bytes, still partial bitmaps); mid-byte runs are checked
// against the bytes the writes put there.
test('a three-deep differencing chain we write reads the same in libvhdi', async () => {
  const base = path.join(dir, 'chain-base.vhd');
  const mid = path.join(dir, 'chain-mid.vhd');
  const leaf = path.join(dir, 'chain-leaf.vhd');
  const size = 9 * MiB;
  const b = await createDisk(base, { size, type: 'dynamic', blockSize: 512 * 1024 });
  await b.write(new Uint8Array(3 * MiB).fill(0x11), 0);
  await b.close();
  const m = await createDisk(mid, { type: 'differencing', parentPath: base, blockSize: 512 * 1024 });
  await m.write(new Uint8Array(8192).fill(0x22), 512 * 1024 - 4096); // spans two blocks
  await m.write(new Uint8Array(4096).fill(0x23), 5 * MiB + 4096);
  await m.close();
  const l = await createDisk(leaf, { type: 'differencing', parentPath: mid, blockSize: 512 * 1024 });
  await l.write(new Uint8Array(4096).fill(0x33), 512 * 1024);
  await l.write(new Uint8Array(4096).fill(0x34), size - 4096);
  await l.close();
  assert.equal(await ourHash(leaf), libvhdiHash([leaf, mid, base]));
  assert.equal(await ourHash(mid), libvhdiHash([mid, base]));
  assert.match(run('vhdiinfo', [leaf]), /Disk type\s*: Differential/);
  const d = await openDisk(leaf, { readOnly: true });
  const got = new Uint8Array(16384);
  await d.read(got, 512 * 1024 - 8192);
  await d.close();
  const want = new Uint8Array(16384).fill(0x11);
  want.fill(0x22, 4096, 12288);
  want.fill(0x33, 8192, 12288);
  assert.deepEqual(got, want);
});

test('mid-byte bitmap runs in a differencing chain read parent data where bits are clear', async () => {
  const base = path.join(dir, 'mb-base.vhd');
  const leaf = path.join(dir, 'mb-leaf.vhd');
  const b = await createDisk(base, { size: 2 * MiB, type: 'dynamic', blockSize: 512 * 1024 });
  await b.write(new Uint8Array(2 * MiB).fill(0x11), 0);
  await b.close();
  const l = await createDisk(leaf, { type: 'differencing', parentPath: base, blockSize: 512 * 1024 });
  await l.write(new Uint8Array(2048).fill(0x22), 512 * 1024 - 1024); // bits 1022-1023 and 0-1 of next block
  await l.close();
  const d = await openDisk(leaf, { readOnly: true });
  const got = new Uint8Array(8192);
  await d.read(got, 512 * 1024 - 4096);
  await d.close();
  const want = new Uint8Array(8192).fill(0x11);
  want.fill(0x22, 3072, 5120);
  assert.deepEqual(got, want);
});
