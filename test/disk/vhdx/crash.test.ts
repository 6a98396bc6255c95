/**
 * Crash test: a child process writes random data to a dynamic VHDX and reports each flushed write; we SIGKILL it
 * at random points (60 times). Each time the image must open (read-only with in-memory replay, then read-write
 * with replay), pass `qemu-img check -f vhdx`, and hold every acknowledged write (a write in flight at the kill
 * may show old or new data).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { VhdxDisk } from '../../../src/disk/vhdx/index.ts';
import { requirePeer } from '../../peers.ts';

const SIZE = 64 * 1024 * 1024;
const SECTORS = SIZE / 512;
const KILLS = 60;

/** Per sector: the acknowledged writer id (0 = zeros) and the id of a write in flight that may have landed. */
interface Model {
  acked: Int32Array;
  maybe: Int32Array;
}

function runChild(image: string, seed: number, firstId: number, model: Model): Promise<number> {
  const child = spawn(
    process.execPath,
    [fileURLToPath(new URL('./crash-child.js', import.meta.url)), image, String(seed), String(firstId)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let pending: { kind: string; first: number; count: number; id: number } | null = null;
  let lastId = firstId - 1;
  let acks = 0;
  const killAfter = 1 + Math.floor(Math.random() * 40);
  let buf = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    buf += chunk;
    let nl = buf.indexOf('\n');
    while (nl >= 0) {
      const line = buf.slice(0, nl).split(' ');
      buf = buf.slice(nl + 1);
      nl = buf.indexOf('\n');
      if (line[0] === 'B') {
        pending = {
          kind: line[1]!,
          first: Number(line[2]) / 512,
          count: Number(line[3]) / 512,
          id: Number(line[4]),
        };
        lastId = pending.id;
        for (let s = pending.first; s < pending.first + pending.count; s++)
          model.maybe[s] = pending.kind === 'T' ? -1 : pending.id;
        // Kill at a random point: sometimes right after the write starts, sometimes between writes.
        if (acks >= killAfter && Math.random() < 0.5) child.kill('SIGKILL');
      } else if (line[0] === 'A' && pending && Number(line[1]) === pending.id) {
        for (let s = pending.first; s < pending.first + pending.count; s++) {
          model.acked[s] = pending.kind === 'T' ? 0 : pending.id;
          model.maybe[s] = 0;
        }
        pending = null;
        acks++;
        if (acks >= killAfter && Math.random() < 0.3)
          setTimeout(() => child.kill('SIGKILL'), Math.random() * 5);
      }
    }
  });
  return new Promise((resolve, reject) => {
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(lastId + 1);
      else reject(new Error(`crash child exited with ${code}`));
    });
  });
}

function sectorMatches(buf: Uint8Array, at: number, id: number, sector: number): boolean {
  const dv = new DataView(buf.buffer, buf.byteOffset + at, 512);
  for (let o = 0; o < 512; o += 8) {
    const a = dv.getUint32(o, true);
    const b = dv.getUint32(o + 4, true);
    if (id === 0 ? a !== 0 || b !== 0 : a !== id || b !== sector) return false;
  }
  return true;
}

async function verify(disk: VhdxDisk, model: Model, round: number): Promise<void> {
  const chunk = 4 * 1024 * 1024;
  const buf = new Uint8Array(chunk);
  for (let off = 0; off < SIZE; off += chunk) {
    await disk.read(buf, off);
    for (let i = 0; i < chunk / 512; i++) {
      const s = off / 512 + i;
      const ok =
        sectorMatches(buf, i * 512, model.acked[s]!, s) ||
        (model.maybe[s] !== 0 && sectorMatches(buf, i * 512, model.maybe[s] === -1 ? 0 : model.maybe[s]!, s));
      if (!ok)
        assert.fail(
          `round ${round}: sector ${s} lost acknowledged write ${model.acked[s]} (maybe ${model.maybe[s]})`,
        );
    }
  }
}

test('SIGKILL at random points never loses an acknowledged write and leaves a clean image', {
  timeout: 300_000,
}, async () => {
  const qemuImg = requirePeer('qemu-img', 'qemu-utils');
  const dir = mkdtempSync(join(tmpdir(), 'vhdx-crash-'));
  try {
    const image = join(dir, 'crash.vhdx');
    await (await VhdxDisk.create(image, { size: SIZE, type: 'dynamic', blockSize: 1024 * 1024 })).close();
    const model: Model = { acked: new Int32Array(SECTORS), maybe: new Int32Array(SECTORS) };
    let nextId = 1;
    let replays = 0;
    for (let round = 0; round < KILLS; round++) {
      nextId = await runChild(image, round * 7919 + 1, nextId, model);
      const ro = await VhdxDisk.open(image, { readOnly: true });
      if (ro.problems.some((p) => p.startsWith('the log held'))) replays++;
      await verify(ro, model, round);
      await ro.close();
      const rw = await VhdxDisk.open(image);
      await verify(rw, model, round);
      await settleInFlight(rw, model);
      await rw.close();
      execFileSync(qemuImg, ['check', '-f', 'vhdx', image], { stdio: 'pipe' });
    }
    // The kills must have hit a dirty log at least sometimes, or the test proved nothing about replay.
    assert.ok(replays > 0, 'no kill left a log to replay');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Sectors of the write in flight at the kill hold old or new data (verified); the model takes what is there. */
async function settleInFlight(disk: VhdxDisk, model: Model): Promise<void> {
  const buf = new Uint8Array(512);
  const dv = new DataView(buf.buffer);
  for (let s = 0; s < SECTORS; s++) {
    if (model.maybe[s] === 0) continue;
    await disk.read(buf, s * 512);
    model.acked[s] = dv.getUint32(0, true);
    model.maybe[s] = 0;
  }
}
