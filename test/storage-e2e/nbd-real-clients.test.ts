/**
 * Real NBD clients through the whole path (qemu-utils, libnbd-bin, e2fsprogs): every byte they read or
 * write crosses our NBD server, guest storvsc, VMBus rings with GPA-direct packets, host storvsp and the
 * image file.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { createDisk, openDisk } from '../../src/disk/open.ts';
import { requirePeer } from '../peers.ts';
import { exportDisk } from './nbd-fixture.ts';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'hvis-nbd-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('qemu-io writes through NBD; qemu-img compare finds the export identical to the image file', async () => {
  const qemuIo = requirePeer('qemu-io', 'qemu-utils');
  const qemuImg = requirePeer('qemu-img', 'qemu-utils');
  const nbdinfo = requirePeer('nbdinfo', 'libnbd-bin');
  const path = join(dir, 'a.raw');
  const disk = await createDisk(path, { size: 32 * 2 ** 20, type: 'fixed', format: 'Raw' });
  const x = await exportDisk(disk, join(dir, 'a.sock'));
  try {
    const info = JSON.parse((await run(nbdinfo, ['--json', x.uri])).stdout) as {
      exports: { 'export-size': number; description?: string; block_size_minimum?: number }[];
    };
    assert.equal(info.exports[0]?.['export-size'], 32 * 2 ** 20);
    assert.equal(info.exports[0]?.description, 'Msft Virtual Disk LUN 0');
    assert.equal(info.exports[0]?.block_size_minimum, 512);
    await run(qemuIo, [
      '-f',
      'raw',
      x.uri,
      '-c',
      'write -P 0xab 0 1M',
      '-c',
      'write -P 0x5c 5M 300k',
      '-c',
      'write -z 2M 64k',
      '-c',
      'flush',
    ]);
    const r = await run(qemuIo, [
      '-f',
      'raw',
      x.uri,
      '-c',
      'read -P 0xab 0 1M',
      '-c',
      'read -P 0x5c 5M 300k',
    ]);
    assert.doesNotMatch(r.stdout, /Pattern verification failed/);
    const file = readFileSync(path);
    assert.equal(file[0], 0xab);
    assert.equal(file[5 * 2 ** 20 + 300 * 1024 - 1], 0x5c);
    const cmp = await run(qemuImg, ['compare', '-f', 'raw', '-F', 'raw', x.uri, path]);
    assert.match(cmp.stdout, /Images are identical/);
  } finally {
    await x.close();
    await disk.close();
  }
});

test('nbdcopy an ext4 image into a dynamic VHDX guest disk and back: e2fsck -fn passes, bytes equal', async () => {
  const nbdcopy = requirePeer('nbdcopy', 'libnbd-bin');
  const mke2fs = requirePeer('mke2fs', 'e2fsprogs');
  const e2fsck = requirePeer('e2fsck', 'e2fsprogs');
  const src = join(dir, 'tree');
  mkdirSync(join(src, 'sub'), { recursive: true });
  for (let i = 0; i < 20; i++) writeFileSync(join(src, 'sub', `f${i}`), Buffer.alloc(10_000 + i * 997, i));
  const ext4 = join(dir, 'fs.img');
  await run(mke2fs, ['-q', '-F', '-t', 'ext4', '-d', src, ext4, '24M']);
  const vhdx = join(dir, 'b.vhdx');
  const disk = await createDisk(vhdx, { size: 32 * 2 ** 20, type: 'dynamic' });
  const x = await exportDisk(disk, join(dir, 'b.sock'));
  const out = join(dir, 'out.img');
  try {
    await run(nbdcopy, [ext4, x.uri]);
    writeFileSync(out, '');
    await run(nbdcopy, [x.uri, out]);
  } finally {
    await x.close();
    await disk.close();
  }
  const fsck = await run(e2fsck, ['-fn', out]).catch((e: { stdout: string; code: number }) => e);
  assert.equal((fsck as { code?: number }).code ?? 0, 0, `e2fsck: ${(fsck as { stdout: string }).stdout}`);
  const a = readFileSync(ext4);
  const b = readFileSync(out);
  assert.equal(b.length, 32 * 2 ** 20);
  assert.ok(a.equals(b.subarray(0, a.length)), 'first 24 MiB equal to the ext4 image');
  // The data is in the VHDX itself: reopen it with the disk library and look at the superblock magic.
  const re = await openDisk(vhdx, { readOnly: true });
  const sb = new Uint8Array(512);
  await re.read(sb, 1024);
  await re.close();
  assert.equal(sb[0x38]! | (sb[0x39]! << 8), 0xef53, 'ext4 superblock magic');
  assert.ok(statSync(vhdx).size < 40 * 2 ** 20);
});

test('bad NBD requests get errors; the export keeps serving', async () => {
  const qemuIo = requirePeer('qemu-io', 'qemu-utils');
  const disk = await createDisk(join(dir, 'c.raw'), { size: 4 * 2 ** 20, type: 'fixed', format: 'Raw' });
  const x = await exportDisk(disk, join(dir, 'c.sock'));
  try {
    const r = await run(qemuIo, ['-f', 'raw', x.uri, '-c', 'read 4M 4k']).catch(
      (e: { stdout: string; stderr: string }) => e,
    );
    assert.match(
      (r as { stdout: string }).stdout + (r as { stderr: string }).stderr,
      /(Input\/output error|Invalid argument|out of range|beyond)/i,
    );
    const ok = await run(qemuIo, ['-f', 'raw', x.uri, '-c', 'write -P 0x11 0 4k', '-c', 'read -P 0x11 0 4k']);
    assert.doesNotMatch(ok.stdout, /failed/);
  } finally {
    await x.close();
    await disk.close();
  }
});
