/**
 * Compaction crash child (run from dist/ by compact-crash.test.ts): `compact-crash-child.js <image> <k> <phase>`
 * compacts the VHDX and SIGKILLs itself at its k-th file operation (write, truncate or fsync): before it
 * (`before`), after writing part of it up to a 4 KiB boundary (`torn`, what a kill inside pwrite leaves), or
 * right after it (`after`). With k = 0 it runs to the end and prints "done <operations>".
 */
import { open } from 'node:fs/promises';
import { compactVhdx } from '../../../src/disk/vhdx/index.ts';

const [path, kText, phase] = process.argv.slice(2);
const killAt = Number(kText);
let ops = 0;
const probe = await open(path!, 'r');
const proto = Object.getPrototypeOf(probe) as Record<string, (...a: unknown[]) => Promise<unknown>>;
await probe.close();
for (const name of ['write', 'truncate', 'datasync']) {
  const orig = proto[name]!;
  proto[name] = async function (this: unknown, ...args: unknown[]) {
    if (++ops === killAt) {
      if (phase === 'after') await orig.apply(this, args);
      if (phase === 'torn' && name === 'write') {
        const [buf, off, len, pos] = args as [Uint8Array, number, number, number];
        const cut = Math.floor(len / 2 / 4096) * 4096;
        if (cut > 0) await orig.call(this, buf, off, cut, pos);
      }
      process.kill(process.pid, 'SIGKILL');
      await new Promise(() => {});
    }
    return orig.apply(this, args);
  };
}
await compactVhdx(path!);
process.stdout.write(`done ${ops}\n`);
