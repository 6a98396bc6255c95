/**
 * Crash-test writer (run as a child process by crash.test.ts from dist/): opens the VHDX at argv[2] and, forever,
 * writes (or trims) a random range then flushes, telling the parent on stdout before ("B kind offset length id")
 * and after the flush ("A id"). Every sector of write `id` holds u32 `id` then u32 sector number, repeated.
 */
import { VhdxDisk } from '../../../src/disk/vhdx/index.ts';

const [path, seedText] = process.argv.slice(2);
let seed = Number(seedText) >>> 0 || 1;
function rand(n: number): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % n;
}

const disk = await VhdxDisk.open(path!);
const sectors = disk.size / 512;
let id = Number(process.argv[4] ?? 1);
for (;;) {
  const count = 1 + rand(256);
  const first = rand(sectors - count);
  const trim = rand(10) === 0;
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
