/**
 * fio's nbd engine (Debian fio 3.33 is built with libnbd: `fio --enghelp` lists nbd) runs a 30-second
 * random read/write job with crc32c verification against our NBD export of a dynamic-VHDX guest disk.
 * This is the one long storage test (the issue asks for 30 s).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { createDisk } from '../../src/disk/open.ts';
import { requirePeer } from '../peers.ts';
import { exportDisk } from './nbd-fixture.ts';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'hvis-fio-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('fio nbd engine: 30 s random read/write with crc32c verify, no errors', {
  timeout: 120_000,
}, async () => {
  const fio = requirePeer('fio', 'fio');
  const engines = (await run(fio, ['--enghelp'])).stdout;
  assert.match(engines, /\bnbd\b/, 'this fio is built without the nbd engine');
  const disk = await createDisk(join(dir, 'f.vhdx'), { size: 64 * 2 ** 20, type: 'dynamic' });
  const x = await exportDisk(disk, join(dir, 'f.sock'));
  try {
    const { stdout } = await run(
      fio,
      [
        '--name=verify',
        '--ioengine=nbd',
        `--uri=${x.uri}`,
        '--rw=randrw',
        '--bs=4k',
        '--iodepth=32',
        '--size=64m',
        '--verify=crc32c',
        '--verify_backlog=512',
        '--verify_fatal=1',
        '--time_based',
        '--runtime=30',
        '--output-format=json',
        // fio would leave local-*-verify.state in its cwd at the end of a verify job.
        '--verify_state_save=0',
      ],
      { maxBuffer: 16 * 2 ** 20, cwd: dir },
    );
    const j = JSON.parse(stdout.slice(stdout.indexOf('{'))) as {
      jobs: { error: number; read: { io_bytes: number }; write: { io_bytes: number } }[];
    };
    const job = j.jobs[0]!;
    assert.equal(job.error, 0);
    assert.ok(job.write.io_bytes > 0 && job.read.io_bytes > 0, 'both reads (verifies) and writes happened');
    assert.equal(x.nbd.stats.errors, 0);
  } finally {
    await x.close();
    await disk.close();
  }
});
