/**
 * UNMAP and hot plug under load: a discard through NBD (NBD_CMD_TRIM → SCSI UNMAP → VHDX trim) lets
 * optimize-vhd shrink the dynamic VHDX file; hot add and hot remove of LUNs while writes run lose no
 * acknowledged write (every write that completed is in the image file afterwards).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { createStorageLoopback } from '../../bench/storage/loopback.ts';
import { createDisk } from '../../src/disk/open.ts';
import { optimizeDisk } from '../../src/disk/ops/optimize.ts';
import { requirePeer } from '../peers.ts';
import { exportDisk } from './nbd-fixture.ts';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'hvis-unmap-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('qemu-io discard through NBD deallocates VHDX blocks; optimize-vhd then shrinks the file', async () => {
  const qemuIo = requirePeer('qemu-io', 'qemu-utils');
  const path = join(dir, 'thin.vhdx');
  const disk = await createDisk(path, { size: 64 * 2 ** 20, type: 'dynamic', blockSize: 2 ** 20 });
  const x = await exportDisk(disk, join(dir, 'thin.sock'));
  let written = 0;
  try {
    await run(qemuIo, ['-f', 'raw', x.uri, '-c', 'write -P 0x77 0 32M', '-c', 'flush']);
    await disk.flush();
    written = statSync(path).size;
    assert.ok(written > 32 * 2 ** 20, `file holds the 32 MiB written (${written})`);
    await run(qemuIo, ['-f', 'raw', '-d', 'unmap', x.uri, '-c', 'discard 0 24M', '-c', 'flush']);
    const r = await run(qemuIo, ['-f', 'raw', x.uri, '-c', 'read -P 0 0 24M', '-c', 'read -P 0x77 24M 8M']);
    assert.doesNotMatch(r.stdout, /Pattern verification failed/);
    assert.equal((await disk.blockStatus(0, 2 ** 20)).state, 'zero');
    assert.equal((await disk.blockStatus(24 * 2 ** 20, 2 ** 20)).state, 'data');
  } finally {
    await x.close();
    await disk.close();
  }
  const info = await optimizeDisk(path);
  assert.ok(
    statSync(path).size < written - 16 * 2 ** 20,
    `optimize-vhd shrank ${written} → ${statSync(path).size}`,
  );
  assert.equal(info.Size, 64 * 2 ** 20);
});

test('hot add and hot remove during writes lose no acknowledged write', async () => {
  const p0 = join(dir, 'h0.raw');
  const p1 = join(dir, 'h1.raw');
  const d0 = await createDisk(p0, { size: 8 * 2 ** 20, type: 'fixed', format: 'Raw' });
  const d1 = await createDisk(p1, { size: 8 * 2 ** 20, type: 'fixed', format: 'Raw' });
  const lb = await createStorageLoopback({ disks: [{ lun: 0, disk: d0 }] });
  const acked0: number[] = [];
  const acked1: number[] = [];
  const block = (seq: number) => new Uint8Array(4096).fill((seq % 250) + 1);
  let stop = false;
  try {
    const g0 = lb.guest.disks()[0]!;
    const writer0 = (async () => {
      for (let seq = 0; !stop && seq < 2048; seq++) {
        await g0.write(block(seq), seq * 4096);
        acked0.push(seq);
      }
    })();
    for (let round = 0; round < 6; round++) {
      lb.host.attach(1, d1, new Uint8Array(16));
      for (let i = 0; i < 500 && !lb.guest.disks().some((d) => d.lun === 1); i++)
        await new Promise((r) => setTimeout(r, 2));
      const g1 = lb.guest.disks().find((d) => d.lun === 1);
      assert.ok(g1, `round ${round}: LUN 1 appeared`);
      // Writes to LUN 1 race with its removal: each either completes (and must be on disk) or fails.
      const writes1: Promise<void>[] = [];
      for (let k = 0; k < 16; k++) {
        const seq = round * 16 + k;
        writes1.push(
          g1.write(block(seq), seq * 4096).then(
            () => void acked1.push(seq),
            () => {},
          ),
        );
      }
      await new Promise((r) => setTimeout(r, round));
      await lb.host.detach(1);
      await Promise.all(writes1);
    }
    stop = true;
    await writer0;
  } finally {
    lb.close();
    await d0.close();
    await d1.close();
  }
  assert.ok(acked0.length > 0 && acked1.length > 0);
  const f0 = readFileSync(p0);
  for (const seq of acked0) assert.equal(f0[seq * 4096 + 4095], (seq % 250) + 1, `LUN 0 write ${seq}`);
  const f1 = readFileSync(p1);
  for (const seq of acked1) assert.equal(f1[seq * 4096], (seq % 250) + 1, `LUN 1 write ${seq}`);
});
