/**
 * The loop both crash-test children (VHD and VHDX) run: forever write (or trim) a random range, then flush,
 * telling the parent on stdout before ("B kind offset length id") and after the flush ("A id"). Every
 * sector of write `id` holds u32 `id` then u32 sector number (little-endian), repeated; test/disk/crash-model.ts
 * checks images against those lines.
 */
import type { BlockDevice } from '../../src/disk/block-device.ts';

/** xorshift32 from a seed given on the child's command line, so a failing round can be replayed. */
export function xorshift(seedText: string | undefined): (n: number) => number {
  let seed = Number(seedText) >>> 0 || 1;
  return (n) => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
}

export async function writeForever(
  disk: BlockDevice,
  rand: (n: number) => number,
  opts: { firstId: number; maxSectors: number; trimOneIn: number },
): Promise<never> {
  const sectors = disk.size / 512;
  for (let id = opts.firstId; ; id++) {
    const count = 1 + rand(opts.maxSectors);
    const first = rand(sectors - count);
    const trim = rand(opts.trimOneIn) === 0;
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
  }
}
