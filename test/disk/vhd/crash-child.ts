/**
 * Crash-test writer for dynamic VHDs (run from dist/ as a child process by crash.test.ts):
 * `crash-child.js <image> <seed> <firstId> [<k> <phase>]` opens the VHD and, forever, writes (or trims) a random
 * range then flushes, telling the parent on stdout before ("B kind offset length id") and after the flush
 * ("A id"). Every sector of write `id` holds u32 `id` then u32 sector number (little-endian), repeated.
 * With `k`, the process kills itself (SIGKILL) at its k-th file write: before it (`before`), after writing a
 * part of it ending at a 4 KiB file offset (`torn`, what
 * a kill inside pwrite leaves), or right after it (`after`), so every step of
 * block allocation is hit, not only the ones a timer happens to land in.
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const [path, seedText, firstIdText, killAtText, phase] = process.argv.slice(2);
let seed = Number(seedText) >>> 0 || 1;
function rand(n: number): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % n;
}

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
const sectors = disk.size / 512;
let id = Number(firstIdText ?? 1);
for (;;) {
  const count = 1 + rand(384);
  const first = rand(sectors - count);
  const trim = rand(6) === 0;
  process.stdout.write(`B ${trim ? 'T' : 'W'} ${first * 512} ${count * 512} ${id}\n`);
  if (trim) {
    await disk.trim(first * 512, count * 512);
  } else {
    const buf = new Uint8Array(count * 512);
    const dv = new DataView(buf.buffer);
    for (let s = 0; s < count; s++) {
      for (let o = 0; o < 512; o += 8) {
        dv.setUint32(s * 512 + o, id, true);
        dv.setUint32(s * 512 + o + 4, first + s, true);
      }
    }
    await disk.write(buf, first * 512);
  }
  await disk.flush();
  process.stdout.write(`A ${id}\n`);
  id++;
}
