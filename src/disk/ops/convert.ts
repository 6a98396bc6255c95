/**
 * Convert-VHD: copies any image to any format, sparse-aware. Runs the source reports as zero are skipped,
 * and so are all-zero 64 KiB granules of data runs, so holes stay holes in dynamic targets and fixed targets are
 * written sparse. The destination is built under a temp name and renamed into place when complete.
 * Azure mode (`azure: true`): a fixed VHD whose virtual size is rounded up to a whole MiB, footer with
 * CurrentSize = OriginalSize = N MiB, spec geometry, file length N MiB + 512 (disk-formats.md §4.1).
 */
import * as fs from 'node:fs';
import { HvError } from '../../protocol/errors.ts';
import type { BlockDevice, VhdFormat, VhdInfo } from '../block-device.ts';
import { isZero, publishTemp, removeQuietly, tempPathFor } from '../file-io.ts';
import { createDisk, formatForPath, openDisk } from '../open.ts';
import type { Progress } from './progress.ts';

const MiB = 1024 * 1024;
/** Copy granularity in bytes. */
const CHUNK = 2 * MiB;
/** Zero-detection granularity inside a chunk: zero granules are not written, so fixed targets keep holes. */
const GRANULE = 64 * 1024;
/** Bytes written to a fixed target between background flushes. */
const FLUSH_EVERY = 256 * MiB;
/** Source chunks read ahead of the writer. */
const READ_AHEAD = 3;

export interface ConvertOptions {
  /** Target type; default: the source's (differencing becomes dynamic). */
  vhdType?: 'fixed' | 'dynamic';
  /** Target format; default from the destination extension. */
  format?: VhdFormat;
  blockSize?: number;
  logicalSectorSize?: number;
  physicalSectorSize?: number;
  /** Azure upload form: fixed VHD, size rounded up to a whole MiB. */
  azure?: boolean;
  /** Allow a 4 KiB-sector source into a 512-byte-sector format (reinterprets sector numbering). */
  allowSectorSizeChange?: boolean;
  progress?: Progress;
}

/**
 * Converts `src` to a new image at `dest`.
 * @throws HvError HV_ERR_ALREADY_EXISTS (dest exists), HV_ERR_INVALID_ARGUMENT (impossible target),
 *   plus the open/create errors of either side.
 */
export async function convertDisk(src: string, dest: string, opts: ConvertOptions = {}): Promise<VhdInfo> {
  if (fs.existsSync(dest))
    throw new HvError('HV_ERR_ALREADY_EXISTS', `${dest} already exists; Convert-VHD writes a new file`, {
      path: dest,
    });
  const format = opts.azure ? 'VHD' : (opts.format ?? formatForPath(dest));
  if (opts.azure && opts.vhdType === 'dynamic')
    throw new HvError('HV_ERR_INVALID_ARGUMENT', 'Azure accepts only fixed VHDs; drop --vhd-type Dynamic');
  const source = await openDisk(src, { readOnly: true });
  const temp = tempPathFor(dest);
  let target: BlockDevice | null = null;
  try {
    if (format !== 'VHDX' && source.logicalSectorSize !== 512 && !opts.allowSectorSizeChange) {
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `${src} has ${source.logicalSectorSize}-byte logical sectors; ${format} has 512-byte sectors. Convert to VHDX, or pass --allow-sector-size-change`,
      );
    }
    const type = opts.azure
      ? 'fixed'
      : (opts.vhdType ?? (source.type === 'Fixed' || format === 'Raw' ? 'fixed' : 'dynamic'));
    if (format === 'Raw' && type !== 'fixed')
      throw new HvError('HV_ERR_INVALID_ARGUMENT', 'a raw image is always fixed');
    const size = opts.azure ? Math.ceil(source.size / MiB) * MiB : source.size;
    const create: Parameters<typeof createDisk>[1] = { size, type, format };
    if (opts.blockSize !== undefined) create.blockSize = opts.blockSize;
    if (format === 'VHDX') {
      create.logicalSectorSize = opts.logicalSectorSize ?? source.logicalSectorSize;
      create.physicalSectorSize = opts.physicalSectorSize ?? source.physicalSectorSize;
    }
    target = await createDisk(temp, create);
    if (target.size < source.size) {
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `the ${format} target holds ${target.size} bytes, less than the source's ${source.size}`,
      );
    }
    await copyData(source, target, opts.progress);
    await target.flush();
    await target.close();
    target = null;
    await publishTemp(temp, dest);
    const out = await openDisk(dest, { readOnly: true });
    try {
      return await out.info();
    } finally {
      await out.close();
    }
  } catch (err) {
    await target?.close().catch(() => undefined);
    await removeQuietly(temp);
    throw err;
  } finally {
    await source.close();
  }
}

/** Writes the non-zero granules of `buf` (disk offset `pos`) as maximal runs, leaving zero granules unwritten. */
async function writeNonZero(target: BlockDevice, buf: Uint8Array, pos: number): Promise<void> {
  let start = -1;
  for (let g = 0; g < buf.length; g += GRANULE) {
    const zero = isZero(buf, g, Math.min(GRANULE, buf.length - g));
    if (!zero && start < 0) start = g;
    if (zero && start >= 0) {
      await target.write(buf.subarray(start, g), pos + start);
      start = -1;
    }
  }
  if (start >= 0) await target.write(buf.subarray(start), pos + start);
}

/**
 * Copies every non-zero byte of `source` into `target` (which must read as zeros where nothing is written,
 * i.e. be new). Up to READ_AHEAD chunks are read concurrently ahead of the writer (the thread pool serves
 * them in parallel); writes stay in order, one at a time, so the target's allocator never sees two writes at
 * once. With `blankTarget` false (merge into an existing disk) zero runs are trimmed and zero chunks
 * written, so the target ends up reading as the source.
 */
export async function copyData(
  source: BlockDevice,
  target: BlockDevice,
  progress?: Progress,
  blankTarget = true,
): Promise<void> {
  const total = source.size;
  // Slot i % SLOTS holds chunk i: READ_AHEAD reads in flight plus the one chunk being written.
  const slots = Array.from({ length: READ_AHEAD + 1 }, () => new Uint8Array(CHUNK));
  let writing: Promise<void> = Promise.resolve();
  // Fixed targets: a flush started every FLUSH_EVERY bytes (never two at once) lets the device write back
  // while copying goes on, so the caller's final flush has little left to do.
  let flushing: Promise<void> | null = null;
  let flushError: unknown = null;
  let unflushed = 0;
  const earlyFlush = blankTarget && target.type === 'Fixed';
  let chunkNo = 0;
  let pos = 0;
  while (pos < total) {
    // Fixed sources have no allocation map: their block status would read the data once more just to find
    // zeros, which the chunk check below does anyway.
    const st =
      source.type === 'Fixed'
        ? { state: 'data' as const, length: total - pos }
        : await source.blockStatus(pos, Math.min(total - pos, 1024 * MiB));
    if (st.state === 'zero') {
      if (!blankTarget) {
        await writing;
        await target.trim(pos, st.length);
      }
      pos += st.length;
      progress?.(pos, total);
      continue;
    }
    const runEnd = pos + st.length;
    const reads: { pos: number; buf: Uint8Array; done: Promise<void> }[] = [];
    let next = pos;
    const issue = () => {
      const n = Math.min(CHUNK - (next % CHUNK), runEnd - next);
      const buf = slots[(chunkNo + reads.length) % slots.length]!.subarray(0, n);
      reads.push({ pos: next, buf, done: source.read(buf, next) });
      next += n;
    };
    while (reads.length < READ_AHEAD && next < runEnd) issue();
    while (reads.length > 0) {
      const c = reads[0]!;
      await c.done;
      // The previous chunk's write must finish before its slot is read into again.
      await writing;
      reads.shift();
      chunkNo++;
      if (next < runEnd) issue();
      if (!blankTarget) writing = target.write(c.buf, c.pos);
      else if (!isZero(c.buf)) {
        writing = writeNonZero(target, c.buf, c.pos);
        unflushed += c.buf.length;
      }
      if (earlyFlush && unflushed >= FLUSH_EVERY && flushing === null) {
        unflushed = 0;
        flushing = writing
          .then(() => target.flush())
          .then(
            () => {
              flushing = null;
            },
            (err: unknown) => {
              flushError ??= err;
              flushing = null;
            },
          );
      }
      pos = c.pos + c.buf.length;
      progress?.(pos, total);
    }
  }
  await writing;
  await flushing;
  if (flushError !== null) throw flushError;
}
