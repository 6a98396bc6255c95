/**
 * Crash-test writer (run as a child process by crash.test.ts from dist/): opens the VHDX at argv[2] and runs
 * test/disk/crash-writer.ts with the seed argv[3] and the first write id argv[4].
 */
import { VhdxDisk } from '../../../src/disk/vhdx/index.ts';
import { writeForever, xorshift } from '../crash-writer.ts';

const [path, seedText, firstIdText] = process.argv.slice(2);
const disk = await VhdxDisk.open(path!);
await writeForever(disk, xorshift(seedText), {
  firstId: Number(firstIdText ?? 1),
  maxSectors: 256,
  trimOneIn: 10,
});
