/**
 * Copy-VMFile (`-FileSource Host`): streams a host file into the guest through the file copy IC. The file
 * is read ahead 192 KiB at a time and sent in 6144-byte fragments, each copied once (read-ahead → ring),
 * one fragment in flight (the guest serves one transaction at a time), so files of any size pass without
 * being held in memory. Errors carry
 * Copy-VMFile's wording and the Windows text of the guest's HRESULT. An abort (Ctrl-C on the CLI, the API
 * client going away) sends CANCEL_FCOPY after the fragment in flight, so the guest drops the partial file.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { posix } from 'node:path';
import type { FcopyHost } from '../devices/fcopy/host.ts';
import { HvError } from '../protocol/errors.ts';
import { CREATE_PATH, DATA_FRAGMENT, OVER_WRITE } from '../protocol/ic/fcopy.ts';
import { HV_E_FAIL, HV_ERROR_ALREADY_EXISTS, HV_ERROR_DISK_FULL, HV_S_OK } from '../protocol/ic/icmsg.ts';

export interface CopyVmFileRequest {
  vmName: string;
  /** Host path of the file to copy. */
  sourcePath: string;
  /** Absolute guest path of the new file; a trailing `/` means "into this folder, keep the source name". */
  destinationPath: string;
  /** Create missing folders in the guest (`-CreateFullPath`). */
  createFullPath: boolean;
  /** Overwrite an existing guest file (`-Force`). */
  force: boolean;
}

export interface CopyVmFileOptions {
  signal?: AbortSignal;
  /** Called after each acknowledged fragment with bytes done and the total. */
  onProgress?(done: number, total: number): void;
}

/** Windows' message texts for the HRESULTs the guest answers (FormatMessage of each code). */
const HRESULT_TEXT: Record<number, string> = {
  [HV_ERROR_ALREADY_EXISTS]: 'The file exists.',
  [HV_ERROR_DISK_FULL]: 'There is not enough space on the disk.',
  [HV_E_FAIL]: 'Unspecified error',
};

/** Bytes read from the source per readSync (a multiple of DATA_FRAGMENT). */
const READ_AHEAD = 32 * DATA_FRAGMENT; // 192 KiB: one read stays well inside the guest's busy-poll window

const hex = (s: number) => `0x${(s >>> 0).toString(16).toUpperCase().padStart(8, '0')}`;

/**
 * Splits and checks the destination: absolute POSIX path, not a folder name only (unless ending in `/`).
 * @throws HvError `HV_ERR_INVALID_ARGUMENT` for a relative path or an empty file name.
 */
export function splitDestination(destinationPath: string, sourcePath: string): { dir: string; name: string } {
  if (!destinationPath.startsWith('/')) {
    throw new HvError(
      'HV_ERR_INVALID_ARGUMENT',
      `the destination path '${destinationPath}' must be an absolute path in the guest (for example /tmp/${posix.basename(sourcePath)})`,
    );
  }
  const name = destinationPath.endsWith('/') ? posix.basename(sourcePath) : posix.basename(destinationPath);
  const dir = destinationPath.endsWith('/') ? destinationPath : posix.dirname(destinationPath);
  if (name === '' || name === '.' || name === '..') {
    throw new HvError('HV_ERR_INVALID_ARGUMENT', `the destination path '${destinationPath}' names no file`);
  }
  return { dir: dir.length > 1 && dir.endsWith('/') ? dir.slice(0, -1) : dir, name };
}

/**
 * Copies `req.sourcePath` to the guest behind `dev`.
 * @returns the number of bytes copied.
 * @throws (rejects) HvError `HV_ERR_NOT_FOUND` when the source is missing or not a file;
 *   `HV_ERR_INVALID_ARGUMENT` for a bad destination; `HV_ERR_ALREADY_EXISTS` when the guest file exists and
 *   `force` is off; `HV_ERR_IO` when the guest refuses or fails (details.status = HRESULT), including a full
 *   disk; `HV_ERR_INVALID_STATE` when aborted (the guest got CANCEL_FCOPY) or the service is not connected;
 *   `HV_ERR_TIMEOUT` / `HV_ERR_CHANNEL_CLOSED` when the guest stops answering.
 */
export function copyVmFile(
  dev: FcopyHost,
  req: CopyVmFileRequest,
  opts: CopyVmFileOptions = {},
): Promise<number> {
  try {
    return run(dev, req, opts);
  } catch (e) {
    return Promise.reject(e);
  }
}

function run(dev: FcopyHost, req: CopyVmFileRequest, opts: CopyVmFileOptions): Promise<number> {
  const { dir, name } = splitDestination(req.destinationPath, req.sourcePath);
  let fd: number;
  try {
    fd = openSync(req.sourcePath, 'r');
  } catch (e) {
    throw new HvError(
      'HV_ERR_NOT_FOUND',
      `Failed to initiate copying files to the guest: cannot open the source file '${req.sourcePath}' (${(e as NodeJS.ErrnoException).code})`,
    );
  }
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    throw new HvError(
      'HV_ERR_NOT_FOUND',
      `Failed to initiate copying files to the guest: the source '${req.sourcePath}' is not a file`,
    );
  }
  const total = st.size;
  const failed = (status: number) => {
    const text = HRESULT_TEXT[status] ?? 'Unknown error';
    const msg = `Failed to copy the source file '${req.sourcePath}' to the destination '${req.destinationPath}' in the guest of '${req.vmName}': ${text} (${hex(status)}).`;
    return new HvError(status === HV_ERROR_ALREADY_EXISTS ? 'HV_ERR_ALREADY_EXISTS' : 'HV_ERR_IO', msg, {
      status,
    });
  };

  return new Promise<number>((resolve, reject) => {
    let done = 0;
    let finished = false;
    const finish = (err: Error | null) => {
      if (finished) return;
      finished = true;
      closeSync(fd);
      opts.signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(done);
    };
    /** Sends CANCEL_FCOPY (best effort) and fails with `err`. */
    const cancelWith = (err: Error) => {
      try {
        dev.cancel(() => finish(err));
      } catch {
        finish(err);
      }
    };
    let aborted = false;
    const onAbort = () => {
      aborted = true;
    };
    opts.signal?.addEventListener('abort', onAbort);
    const abortError = () =>
      new HvError(
        'HV_ERR_INVALID_STATE',
        `Copy-VMFile of '${req.sourcePath}' to '${req.vmName}' was cancelled; the guest discarded the partial file`,
      );

    // Read-ahead: one readSync per READ_AHEAD bytes instead of one per 6 KiB fragment (a syscall per
    // fragment was a tenth of the host thread's time); each fragment then goes from here into the ring.
    // Refills start at a fragment boundary, so fragment i of the buffer is always at i × 6144: its view is
    // made once and reused.
    const ahead = new Uint8Array(Math.min(READ_AHEAD, Math.max(total, 1)));
    const views: Uint8Array[] = [];
    let aheadStart = 0;
    let aheadLen = 0;
    /** The data of the fragment at `done` (shorter at the end of the file, or if the file shrank). */
    const fragment = (): Uint8Array => {
      const n = Math.min(DATA_FRAGMENT, total - done);
      if (done < aheadStart || done + n > aheadStart + aheadLen) {
        aheadStart = done;
        aheadLen = 0;
        const want = Math.min(ahead.length, total - done);
        while (aheadLen < want) {
          const r = readSync(fd, ahead, aheadLen, want - aheadLen, done + aheadLen);
          if (r === 0) break;
          aheadLen += r;
        }
      }
      const from = done - aheadStart;
      const got = Math.max(0, Math.min(n, aheadLen - from));
      if (got !== DATA_FRAGMENT) return ahead.subarray(from, from + got);
      const slot = from / DATA_FRAGMENT;
      views[slot] ??= ahead.subarray(from, from + DATA_FRAGMENT);
      return views[slot]!;
    };
    const onWritten = (e: HvError | null, s: number): void => {
      if (!e && s === HV_S_OK) {
        done = Math.min(total, done + DATA_FRAGMENT);
        opts.onProgress?.(done, total);
      }
      next(e, s);
    };
    const next = (err: HvError | null, status: number): void => {
      if (err) {
        finish(err);
        return;
      }
      if (status !== HV_S_OK || aborted) {
        cancelWith(status !== HV_S_OK ? failed(status) : abortError());
        return;
      }
      if (done >= total) {
        dev.complete((e, s) => (e ? finish(e) : s === HV_S_OK ? finish(null) : finish(failed(s))));
        return;
      }
      try {
        dev.write(done, fragment(), onWritten);
      } catch (e) {
        finish(e as Error);
      }
    };
    try {
      if (aborted || opts.signal?.aborted) throw abortError();
      dev.startFileCopy(
        {
          fileName: name,
          pathName: dir,
          copyFlags: (req.force ? OVER_WRITE : 0) | (req.createFullPath ? CREATE_PATH : 0),
          fileSize: total,
        },
        (e, s) => (e ? finish(e) : s === HV_S_OK ? next(null, s) : finish(failed(s))),
      );
    } catch (e) {
      finish(e as Error);
    }
  });
}
