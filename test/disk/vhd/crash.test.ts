/**
 * VHD block-allocation crash ordering (disk-formats.md §5 case 14): a child process writes random data to a
 * dynamic VHD and reports each flushed write; we SIGKILL it at random points, dozens of times. Each time the
 * image must open read-write, `test-vhd` must find nothing but possibly leaked space, and every write
 * acknowledged by flush must read back (the write in flight may show old or new data). Half the kills are
 * injected by the child at its k-th file write (before it, torn inside it, or after it), so each step of a
 * block allocation is interrupted, not only the steps a timer happens to land in. Every tenth round the
 * image is also read by qemu-img (an independent reader) and checked against the same model.
 *
 * Why leaked space is allowed: a new block is placed at the old end of the file; the footer is first written
 * after it (new end of file), then the bitmap and data, and only then the BAT entry. A kill after the footer or
 * the data but before the BAT entry leaves a block no BAT entry points to, in front of a valid footer: the
 * image is consistent and `optimize-vhd` reclaims the space. (Whole-block trims also unreference blocks.)
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createDisk } from '../../../src/disk/open.ts';
import { testDisk } from '../../../src/disk/ops/test.ts';
import { VhdDisk } from '../../../src/disk/vhd/vhd-disk.ts';
import { requirePeer } from '../../peers.ts';
import { findLostWrite, newModel, runCrashChild, settle } from '../crash-model.ts';

const SIZE = 16 * 1024 * 1024;
const KILLS = 60;
const PHASES = ['before', 'torn', 'after'] as const;

test('SIGKILL during dynamic VHD writes: test-vhd clean (but leaked space), acknowledged writes intact', {
  timeout: 120_000,
}, async () => {
  const qemuImg = requirePeer('qemu-img', 'qemu-utils');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hvis-vhd-crash-'));
  try {
    const image = path.join(dir, 'crash.vhd');
    // 64 KiB blocks: 256 of them, so allocations keep happening, and 192 KiB trims can drop whole blocks.
    await (await createDisk(image, { size: SIZE, type: 'dynamic', blockSize: 64 * 1024 })).close();
    const model = newModel(SIZE / 512);
    const child = fileURLToPath(new URL('./crash-child.js', import.meta.url));
    const whole = new Uint8Array(SIZE);
    let nextId = 1;
    let leaks = 0;
    for (let round = 0; round < KILLS; round++) {
      // Even rounds: the child kills itself at a chosen file write (before / torn / after it); odd rounds: we
      // kill it from outside at a random moment.
      const inject = round % 2 === 0;
      const extra = inject ? [String(1 + Math.floor(Math.random() * 40)), PHASES[(round / 2) % 3]!] : [];
      const minAcks = inject ? Number.POSITIVE_INFINITY : Math.floor(Math.random() * 12);
      nextId = await runCrashChild(child, image, round * 7919 + 1, nextId, model, minAcks, extra);
      const report = await testDisk(image);
      const faults = report.Problems.filter((p) => p.code !== 'leaked-space');
      assert.deepEqual(faults, [], `round ${round}: test-vhd found ${JSON.stringify(faults)}`);
      assert.equal(report.Valid, true);
      if (report.Problems.length > 0) leaks++;
      const disk = await VhdDisk.open(image);
      await disk.read(whole, 0);
      await disk.close();
      const lost = findLostWrite(model, whole, 0);
      assert.equal(lost, null, `round ${round}: ${lost}`);
      if (round % 10 === 9) {
        const raw = path.join(dir, 'qemu.raw');
        execFileSync(qemuImg, ['convert', '-f', 'vpc', '-O', 'raw', image, raw], { stdio: 'pipe' });
        const q = fs.readFileSync(raw);
        fs.rmSync(raw);
        assert.equal(findLostWrite(model, q, 0), null, `round ${round}: qemu-img reads a lost write`);
      }
      settle(model, whole);
    }
    console.log(`# ${KILLS} kills, ${leaks} left leaked space, last id ${nextId - 1}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
