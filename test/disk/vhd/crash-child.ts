/**
 * Crash-test writer for dynamic VHDs (run from dist/ as a child process by crash.test.ts):
 * `crash-child.js <image> <seed> <firstId> [<k> <phase>]` opens the VHD and runs test/disk/crash-writer.ts.
 * With `k`, the process kills itself (SIGKILL) at its k-th file write: before it (`before`), after writing a
 * part of it ending at a 4 KiB file offset (`torn`, what
 * a kill inside pwrite leaves), or right after it (`after`), so every step of
 * block allocation is hit, not only the ones a timer happens to land in.
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { writeForever, xorshift } from '../crash-writer.ts';

const [path, seedText, firstIdText, killAtText, phase] = process.argv.slice(2);
const rand = xorshift(seedText);

if (killAtText) {
  const killAt = Number(killAtText);
  let writes = 0;
  const write = fs.write;
  // Every pwrite of src/disk goes through fs.write(fd, buf, off, len, pos, cb) (file-io.ts).
  fs.write = ((fd: number, buf: Uint8Array, off: number, len: number, pos: number, cb: never) => {
    if (++writes === killAt) {
      if (phase === 'torn') {
        // Linux copies a write into the page cache page by page and stops between pages on a fatal signal,
        // so a kill tears a write at a 4 KiB file offset.
        const pages = Math.floor((pos + len - 1) / 4096) - Math.floor(pos / 4096);
        const cut = pages > 0 ? (Math.floor(pos / 4096) + 1 + rand(pages)) * 4096 - pos : 0;
        fs.writeSync(fd, buf, off, cut, pos);
      } else if (phase === 'after') fs.writeSync(fd, buf, off, len, pos);
      process.kill(process.pid, 'SIGKILL');
    }
    return (write as (...a: unknown[]) => void)(fd, buf, off, len, pos, cb);
  }) as typeof fs.write;
  syncBuiltinESMExports();
}

const { VhdDisk } = await import('../../../src/disk/vhd/vhd-disk.ts');
const disk = await VhdDisk.open(path!);
await writeForever(disk, rand, { firstId: Number(firstIdText ?? 1), maxSectors: 384, trimOneIn: 6 });
