/**
 * Compaction crash test: a child process compacts a copy of a dynamic VHDX (zeroed and trimmed blocks below
 * live ones, so blocks are freed, moved and the file truncated) and SIGKILLs itself at its k-th file write,
 * truncate or fsync — before it, torn, or after it — for k spread over the whole run (60 kills). Each time the
 * image opens (read-only with in-memory replay, then read-write), every block reads as the raw twin,
 * `qemu-img check -f vhdx` is clean, and a second compaction then completes to the same final size.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { compactVhdx, VhdxDisk } from '../../../src/disk/vhdx/index.ts';
import { requirePeer } from '../../peers.ts';
import { filled, MiB } from './helpers.ts';

const SIZE = 24 * MiB;
const KILLS = 60;
const PHASES = ['before', 'torn', 'after'] as const;
const child = fileURLToPath(new URL('./compact-crash-child.js', import.meta.url));

async function readAll(path: string, readOnly: boolean): Promise<Uint8Array> {
  const d = await VhdxDisk.open(path, { readOnly });
  try {
    const out = new Uint8Array(d.size);
    await d.read(out, 0);
    return out;
  } finally {
    await d.close();
  }
}

function runChild(image: string, k: number, phase: string): { signal: string | null; out: string } {
  const r = spawnSync(process.execPath, [child, image, String(k), phase], { encoding: 'utf8' });
  if (r.status !== 0 && r.signal !== 'SIGKILL') throw new Error(`compact child failed: ${r.stderr}`);
  return { signal: r.signal, out: r.stdout };
}

test('SIGKILL at any file operation of a compaction leaves an image that opens with every block intact', {
  timeout: 120_000,
}, async () => {
  const qemuImg = requirePeer('qemu-img', 'qemu-utils');
  const dir = mkdtempSync(join(tmpdir(), 'vhdx-compact-crash-'));
  try {
    const template = join(dir, 'template.vhdx');
    const twin = new Uint8Array(SIZE);
    const d = await VhdxDisk.create(template, { size: SIZE, type: 'dynamic', blockSize: MiB });
    for (let b = 0; b < 20; b++) {
      const data = filled(MiB, 0x10 + b);
      await d.write(data, b * MiB);
      twin.set(data, b * MiB);
    }
    for (const b of [0, 2, 4, 6, 9]) {
      await d.write(filled(MiB, 0), b * MiB);
      twin.fill(0, b * MiB, (b + 1) * MiB);
    }
    await d.trim(11 * MiB, 2 * MiB);
    twin.fill(0, 11 * MiB, 13 * MiB);
    await d.close();

    // A full run: how many file operations a compaction takes, and the final size.
    const full = join(dir, 'full.vhdx');
    copyFileSync(template, full);
    const done = runChild(full, 0, 'none');
    const ops = Number(/done (\d+)/.exec(done.out)?.[1]);
    assert.ok(ops > 10, `a compaction took ${ops} file operations`);
    const finalSize = statSync(full).size;
    assert.ok(finalSize < statSync(template).size - 6 * MiB, 'the full run shrinks the file');

    const image = join(dir, 'crash.vhdx');
    for (let round = 0; round < KILLS; round++) {
      copyFileSync(template, image);
      const k = 1 + Math.floor((round * ops) / KILLS);
      const phase = PHASES[round % PHASES.length]!;
      const r = runChild(image, k, phase);
      assert.equal(r.signal, 'SIGKILL', `round ${round}: the child was killed at operation ${k}`);
      const what = `round ${round} (killed ${phase} operation ${k} of ${ops})`;
      assert.ok(Buffer.from(await readAll(image, true)).equals(twin), `${what}: read-only open differs`);
      assert.ok(Buffer.from(await readAll(image, false)).equals(twin), `${what}: read-write open differs`);
      execFileSync(qemuImg, ['check', '-f', 'vhdx', image], { stdio: 'pipe' });
      if (round % 10 === 0) {
        await compactVhdx(image);
        assert.equal(statSync(image).size, finalSize, `${what}: compaction after the crash completes`);
        assert.ok(Buffer.from(await readAll(image, true)).equals(twin), `${what}: data after recompaction`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
