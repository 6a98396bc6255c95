/**
 * Crash test: a child process writes random data to a dynamic VHDX and reports each flushed write; we SIGKILL it
 * at random points (60 times). Each time the image must open (read-only with in-memory replay, then read-write
 * with replay), pass `qemu-img check -f vhdx`, and hold every acknowledged write (a write in flight at the kill
 * may show old or new data, per sector).
 * The parent's kill decisions come from a seed printed in every failure; `HVIS_CRASH_SEED=<n>` replays it (the
 * children's op sequences are fixed per round; where a kill lands inside an op still depends on timing).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { VhdxDisk } from '../../../src/disk/vhdx/index.ts';
import { requirePeer } from '../../peers.ts';
import {
  type CrashModel,
  findLostWrite,
  newModel,
  runCrashChild,
  seededRandom,
  settle,
} from '../crash-model.ts';

const SIZE = 64 * 1024 * 1024;
const KILLS = 60;
const SEED = Number(process.env.HVIS_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 32)) >>> 0;

async function verify(disk: VhdxDisk, model: CrashModel, whole: Uint8Array, what: string): Promise<void> {
  await disk.read(whole, 0);
  const lost = findLostWrite(model, whole, 0);
  if (lost) assert.fail(`${what}: ${lost} (replay with HVIS_CRASH_SEED=${SEED})`);
}

test('SIGKILL at random points never loses an acknowledged write and leaves a clean image', {
  timeout: 300_000,
}, async () => {
  const qemuImg = requirePeer('qemu-img', 'qemu-utils');
  const dir = mkdtempSync(join(tmpdir(), 'vhdx-crash-'));
  const random = seededRandom(SEED);
  const child = fileURLToPath(new URL('./crash-child.js', import.meta.url));
  try {
    const image = join(dir, 'crash.vhdx');
    await (await VhdxDisk.create(image, { size: SIZE, type: 'dynamic', blockSize: 1024 * 1024 })).close();
    const model = newModel(SIZE / 512);
    const whole = new Uint8Array(SIZE);
    let nextId = 1;
    let replays = 0;
    for (let round = 0; round < KILLS; round++) {
      const killAfter = 1 + Math.floor(random() * 40);
      nextId = await runCrashChild(child, image, round * 7919 + 1, nextId, model, killAfter, [], random);
      const ro = await VhdxDisk.open(image, { readOnly: true });
      if (ro.problems.some((p) => p.startsWith('the log held'))) replays++;
      await verify(ro, model, whole, `round ${round}, read-only open`);
      await ro.close();
      const rw = await VhdxDisk.open(image);
      await verify(rw, model, whole, `round ${round}, read-write open`);
      await rw.close();
      // The sectors of the write in flight take what the image holds (verified to be old or new data).
      settle(model, whole);
      execFileSync(qemuImg, ['check', '-f', 'vhdx', image], { stdio: 'pipe' });
    }
    // The kills must have hit a dirty log at least sometimes, or the test proved nothing about replay.
    assert.ok(replays > 0, `no kill left a log to replay (HVIS_CRASH_SEED=${SEED})`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
