/**
 * Storage benchmark: fio (nbd engine) against our NBD export of a guest disk (NBD → storvsc → VMBus rings
 * with GPA-direct packets → storvsp → image) and, in the same run, against `qemu-nbd` serving the same
 * raw image file directly. Jobs: 4 KiB random read and random write at queue depth 32, 1 MiB sequential
 * read at queue depth 8; each `RUNTIME_S` seconds, alternating ours / qemu-nbd for `ROUNDS` rounds. Result: both figures and the ratios ours / qemu-nbd
 * (`{randReadRatio, randWriteRatio, seqRatio}`); the target is every ratio >= 0.8.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { NbdServer } from '../../src/bridges/nbd/server.ts';
import { createDisk } from '../../src/disk/open.ts';
import { HvError } from '../../src/protocol/errors.ts';
import { createStorageLoopback } from './loopback.ts';

const exec = promisify(execFile);
const RUNTIME_S = 4;
/** Alternating rounds per job (best of each side), so load changes on a shared machine hit both. */
const ROUNDS = 2;
const SIZE = 256 * 2 ** 20;

interface FioFigures {
  randReadIops: number;
  randWriteIops: number;
  seqReadMBps: number;
}

async function fio(
  uri: string,
  rw: string,
  bs: string,
  iodepth: number,
): Promise<{ iops: number; mbps: number }> {
  const args = [
    '--name=b',
    '--ioengine=nbd',
    `--uri=${uri}`,
    `--rw=${rw}`,
    `--bs=${bs}`,
    `--iodepth=${iodepth}`,
    `--size=${SIZE}`,
    '--time_based',
    `--runtime=${RUNTIME_S}`,
    '--output-format=json',
  ];
  // In a temporary directory: fio writes state files into its cwd.
  const { stdout } = await exec('fio', args, { maxBuffer: 16 * 2 ** 20, cwd: tmpdir() });
  const j = JSON.parse(stdout.slice(stdout.indexOf('{'))) as {
    jobs: {
      error: number;
      read: { iops: number; bw_bytes: number };
      write: { iops: number; bw_bytes: number };
    }[];
  };
  const job = j.jobs[0];
  if (job?.error !== 0 || !job) throw new HvError('HV_ERR_IO', `fio ${rw} failed (error ${job?.error})`);
  const side = rw.includes('write') ? job.write : job.read;
  return { iops: side.iops, mbps: side.bw_bytes / 1e6 };
}

/** One job on each server, alternating (ours first) over `ROUNDS` rounds; the best figure of each side. */
async function compare(
  ours: string,
  peer: string,
  rw: string,
  bs: string,
  depth: number,
  key: 'iops' | 'mbps',
): Promise<[number, number]> {
  let a = 0;
  let b = 0;
  for (let i = 0; i < ROUNDS; i++) {
    a = Math.max(a, (await fio(ours, rw, bs, depth))[key]);
    b = Math.max(b, (await fio(peer, rw, bs, depth))[key]);
  }
  return [a, b];
}

export async function run(_opts: { json: boolean }): Promise<unknown> {
  const dir = mkdtempSync(join(tmpdir(), 'hvis-bench-storage-'));
  try {
    const path = join(dir, 'disk.raw');
    const disk = await createDisk(path, { size: SIZE, type: 'fixed', format: 'Raw' });
    // Fill the image so neither side reads holes.
    const chunk = new Uint8Array(4 * 2 ** 20).fill(0x5a);
    for (let o = 0; o < SIZE; o += chunk.length) await disk.write(chunk, o);
    await disk.flush();

    const lb = await createStorageLoopback({
      disks: [{ lun: 0, disk }],
      subChannels: 1,
      memoryBytes: 128 * 2 ** 20,
    });
    const g = lb.guest.disks()[0]!;
    const nbd = new NbdServer([
      {
        name: 'lun0',
        size: g.size,
        blockSize: g.blockSize,
        read: (b, o) => g.read(b, o),
        write: (b, o) => g.write(b, o),
        flush: () => g.flush(),
        trim: (o, l) => g.trim(o, l),
      },
    ]);
    const base = await nbd.listen({ path: join(dir, 'ours.sock') });
    const oursUri = base.replace('nbd+unix:///', 'nbd+unix:///lun0');
    // qemu-nbd serves the same raw file; the jobs alternate, so only one server touches it at a time.
    const sock = join(dir, 'qemu.sock');
    const q = spawn('qemu-nbd', ['-f', 'raw', '-k', sock, '-x', 'disk', '--persistent', '--shared=8', path], {
      stdio: 'ignore',
    });
    const peerUri = `nbd+unix:///disk?socket=${sock}`;
    const ours: FioFigures = { randReadIops: 0, randWriteIops: 0, seqReadMBps: 0 };
    const peer: FioFigures = { randReadIops: 0, randWriteIops: 0, seqReadMBps: 0 };
    try {
      for (let i = 0; i < 100; i++) {
        try {
          await exec('nbdinfo', ['--size', peerUri]);
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      [ours.randReadIops, peer.randReadIops] = await compare(oursUri, peerUri, 'randread', '4k', 32, 'iops');
      [ours.randWriteIops, peer.randWriteIops] = await compare(
        oursUri,
        peerUri,
        'randwrite',
        '4k',
        32,
        'iops',
      );
      [ours.seqReadMBps, peer.seqReadMBps] = await compare(oursUri, peerUri, 'read', '1m', 8, 'mbps');
    } finally {
      q.kill();
      await nbd.close();
      lb.close();
      await disk.close();
    }
    return {
      ours,
      qemuNbd: peer,
      rounds: ROUNDS,
      randReadRatio: ours.randReadIops / peer.randReadIops,
      randWriteRatio: ours.randWriteIops / peer.randWriteIops,
      seqRatio: ours.seqReadMBps / peer.seqReadMBps,
      runtimeSecondsPerJob: RUNTIME_S,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
