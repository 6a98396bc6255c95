/**
 * Crash-safe file replacement: a reader (or the next start after a crash) sees the old content or the new
 * content, never a torn mix. Sequence: write `<file>.<pid>.<n>.tmp`, fsync it, rename over the target, fsync
 * the directory so the rename itself is durable.
 */
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

let counter = 0;

/**
 * Atomically replaces `path` with `data` (UTF-8 when a string).
 * @throws the underlying `fs` error (ENOENT when the directory is missing, EACCES...); the temp file is removed.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${counter++}.tmp`);
  try {
    const fh = await open(tmp, 'w', 0o644);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
