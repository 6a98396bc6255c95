/**
 * Both directions against real tools: VHDX files we write are read identically by qemu-img/qemu-io and libvhdi
 * (vhdiinfo, pyvhdi), pass `qemu-img check`; files qemu-img writes (dynamic/fixed, block_size, log_size,
 * block_state_zero on/off) are read identically by us and stay clean after our writes. 4 KiB-sector files and a
 * three-deep differencing chain are checked against libvhdi (qemu cannot open either).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { VhdxDisk } from '../../../src/disk/vhdx/index.ts';
import { requirePeer } from '../../peers.ts';
import { filled, MiB } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'vhdx-oracle-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const qemuImg = () => requirePeer('qemu-img', 'qemu-utils');
const qemuIo = () => requirePeer('qemu-io', 'qemu-utils');
const PY = '/usr/bin/python3';
function pyvhdi(script: string, ...args: string[]): string {
  requirePeer('vhdiinfo', 'libvhdi-utils');
  try {
    return execFileSync(PY, ['-c', script, ...args], { encoding: 'utf8' });
  } catch (e) {
    throw new Error(`pyvhdi failed (install python3-libvhdi): ${(e as Error).message}`);
  }
}
const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });

/** sha256 of the whole virtual disk read through pyvhdi, with an optional parent chain (leaf first). */
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
print(size, h.hexdigest(), leaf.get_disk_type())
`;

async function ourSha(path: string): Promise<[number, string]> {
  const d = await VhdxDisk.open(path, { readOnly: true });
  const h = createHash('sha256');
  const buf = new Uint8Array(4 * MiB);
  for (let off = 0; off < d.size; off += buf.length) {
    const b = buf.subarray(0, Math.min(buf.length, d.size - off));
    await d.read(b, off);
    h.update(b);
  }
  await d.close();
  return [d.size, h.digest('hex')];
}

/** Writes the same pattern set to a VHDX (through us) and a raw twin. */
async function pattern(path: string, raw: string, size: number): Promise<void> {
  const d = await VhdxDisk.open(path);
  const twin = new Uint8Array(size);
  const writes: Array<[number, number, number]> = [
    [0, MiB, 0xab],
    [5 * MiB + 512, 3 * 512, 0xcd],
    [size - 4096, 4096, 0xef],
    [17 * MiB, 40 * MiB > size ? 4096 : 9 * MiB, 0x5c],
  ];
  for (const [off, len, byte] of writes) {
    if (off + len > size) continue;
    await d.write(filled(len, byte), off);
    twin.fill(byte, off, off + len);
  }
  await d.trim(17 * MiB + 4 * MiB, MiB);
  twin.fill(0, 17 * MiB + 4 * MiB, 18 * MiB + 4 * MiB);
  await d.close();
  writeFileSync(raw, twin);
}

test('our dynamic and fixed VHDX: qemu-img check clean, qemu-img compare equal, qemu-io patterns, libvhdi identical', async () => {
  for (const type of ['dynamic', 'fixed'] as const) {
    const p = join(dir, `ours-${type}.vhdx`);
    const raw = join(dir, `ours-${type}.raw`);
    const size = 48 * MiB;
    await (await VhdxDisk.create(p, { size, type, blockSize: 2 * MiB })).close();
    await pattern(p, raw, size);
    assert.match(run(qemuImg(), ['check', '-f', 'vhdx', p]), /No errors were found/);
    assert.match(run(qemuImg(), ['compare', '-f', 'vhdx', '-F', 'raw', p, raw]), /Images are identical/);
    const io = run(qemuIo(), [
      '-f',
      'vhdx',
      '-r',
      '-c',
      'read -P 0xab 0 1M',
      '-c',
      `read -P 0xcd ${5 * MiB + 512} 1536`,
      '-c',
      `read -P 0 ${21 * MiB} 1M`,
      p,
    ]);
    assert.doesNotMatch(io, /failed/i);
    const info = run('vhdiinfo', [p]);
    assert.match(info, new RegExp(`Disk type\\s*: ${type === 'fixed' ? 'Fixed' : 'Dynamic'}`));
    assert.match(info, new RegExp(`\\(${size} bytes\\)`));
    const rawSha = createHash('sha256').update(readFileSync(raw)).digest('hex');
    const [, py] = pyvhdi(PY_SHA, p).trim().split(' ');
    assert.equal(py, rawSha, `${type}: pyvhdi reads different bytes`);
  }
});

test('qemu-img-made VHDX of every variant reads identically through us, and stays clean after our writes', async () => {
  const variants = [
    'subformat=dynamic',
    'subformat=fixed',
    'subformat=fixed,block_state_zero=off',
    'subformat=dynamic,block_size=1M,log_size=2M',
    'subformat=dynamic,block_state_zero=off,block_size=8M',
  ];
  for (const [i, opt] of variants.entries()) {
    const p = join(dir, `q${i}.vhdx`);
    const size = 40 * MiB;
    run(qemuImg(), ['create', '-q', '-f', 'vhdx', '-o', opt, p, String(size)]);
    run(qemuIo(), [
      '-f',
      'vhdx',
      '-c',
      'write -P 0x71 0 1M',
      '-c',
      `write -P 0x72 ${20 * MiB + 4096} 8k`,
      '-c',
      `write -z ${MiB} 64k`,
      p,
    ]);
    const d = await VhdxDisk.open(p);
    const b = new Uint8Array(MiB);
    await d.read(b, 0);
    assert.deepEqual(b, filled(MiB, 0x71), opt);
    const c = new Uint8Array(8192);
    await d.read(c, 20 * MiB + 4096);
    assert.deepEqual(c, filled(8192, 0x72), opt);
    await d.read(b, 30 * MiB);
    assert.deepEqual(b, new Uint8Array(MiB), opt);
    await d.write(filled(4096, 0x73), 33 * MiB);
    await d.write(filled(4096, 0x74), 4096);
    await d.close();
    assert.match(run(qemuImg(), ['check', '-f', 'vhdx', p]), /No errors were found/, opt);
    const io = run(qemuIo(), [
      '-f',
      'vhdx',
      '-r',
      '-c',
      `read -P 0x73 ${33 * MiB} 4k`,
      '-c',
      'read -P 0x74 4096 4k',
      '-c',
      'read -P 0x71 8192 4k',
      p,
    ]);
    assert.doesNotMatch(io, /failed/i, opt);
  }
});

test('4 KiB logical sectors: libvhdi reads our file identically (qemu refuses these)', async () => {
  const p = join(dir, 'native4k.vhdx');
  const raw = join(dir, 'native4k.raw');
  const size = 40 * MiB;
  await (
    await VhdxDisk.create(p, {
      size,
      type: 'dynamic',
      logicalSectorSize: 4096,
      physicalSectorSize: 4096,
      blockSize: MiB,
    })
  ).close();
  const d = await VhdxDisk.open(p);
  const twin = new Uint8Array(size);
  await d.write(filled(8192, 0x41), 12288);
  twin.fill(0x41, 12288, 20480);
  await d.write(filled(4096, 0x42), size - 4096);
  twin.fill(0x42, size - 4096);
  await d.close();
  writeFileSync(raw, twin);
  assert.match(run('vhdiinfo', [p]), /Bytes per sector\s*: 4096 bytes/);
  const [, py] = pyvhdi(PY_SHA, p).trim().split(' ');
  assert.equal(py, createHash('sha256').update(twin).digest('hex'));
});

test('a three-deep differencing chain we write reads identically through libvhdi', async () => {
  const base = join(dir, 'chain-base.vhdx');
  const mid = join(dir, 'chain-mid.vhdx');
  const leaf = join(dir, 'chain-leaf.vhdx');
  const size = 24 * MiB;
  const b = await VhdxDisk.create(base, { size, type: 'dynamic', blockSize: MiB });
  await b.write(filled(4 * MiB, 0x10), 0);
  await b.close();
  const m = await VhdxDisk.create(mid, { size: 0, type: 'differencing', parentPath: base });
  await m.write(filled(1024, 0x20), 512 * 7);
  await m.write(filled(MiB, 0x21), 6 * MiB);
  await m.close();
  const l = await VhdxDisk.create(leaf, { size: 0, type: 'differencing', parentPath: mid });
  await l.write(filled(512, 0x30), 512 * 8);
  await l.write(filled(3 * 512, 0x31), 6 * MiB + 512);
  await l.trim(MiB, MiB);
  await l.close();
  const [size2, ours] = await ourSha(leaf);
  const [pySize, py, type] = pyvhdi(PY_SHA, leaf, mid, base).trim().split(' ');
  assert.equal(Number(pySize), size2);
  assert.equal(type, '4', 'libvhdi disk type should be differential');
  assert.equal(py, ours);
  // And the expected content, computed by hand.
  const want = new Uint8Array(size);
  want.fill(0x10, 0, 4 * MiB);
  want.fill(0x20, 512 * 7, 512 * 9);
  want.fill(0x21, 6 * MiB, 7 * MiB);
  want.fill(0x30, 512 * 8, 512 * 9);
  want.fill(0x31, 6 * MiB + 512, 6 * MiB + 2048);
  want.fill(0, MiB, 2 * MiB);
  assert.equal(ours, createHash('sha256').update(want).digest('hex'));
});
