/** Whole-disk SHA-256 digests, through our BlockDevice and through libvhdi, for comparing readers. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { openDisk } from '../../src/disk/open.ts';

/** SHA-256 of a whole disk read through our BlockDevice. */
export async function ourHash(file: string): Promise<string> {
  const d = await openDisk(file, { readOnly: true });
  const h = createHash('sha256');
  const buf = new Uint8Array(1 << 20);
  for (let p = 0; p < d.size; p += buf.length) {
    const n = Math.min(buf.length, d.size - p);
    await d.read(buf.subarray(0, n), p);
    h.update(buf.subarray(0, n));
  }
  await d.close();
  return h.digest('hex');
}

/**
 * SHA-256 of the disk as libvhdi (`pyvhdi`, Debian's python3-libvhdi under /usr/bin/python3) reads it, parents
 * attached in order (leaf first). Reads are 64 KiB and block-aligned: libvhdi 20210425 returns zeros for the
 * rest of a read that runs from clear-bitmap sectors into the next block.
 */
export function libvhdiHash(chain: string[]): string {
  const script = `
import sys, hashlib, pyvhdi
fs = [pyvhdi.file() for _ in sys.argv[1:]]
for f, p in zip(fs, sys.argv[1:]): f.open(p)
for i in range(len(fs) - 1): fs[i].set_parent(fs[i + 1])
f = fs[0]; n = f.get_media_size(); h = hashlib.sha256(); off = 0
while off < n:
    k = min(65536, n - off); h.update(f.read_buffer_at_offset(k, off)); off += k
print(h.hexdigest())`;
  return execFileSync('/usr/bin/python3', ['-c', script, ...chain], { encoding: 'utf8' }).trim();
}
