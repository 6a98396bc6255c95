/**
 * Format-independent entry points: probe a file's format by signature, open it (with its parent chain),
 * create a new image choosing the format by extension.
 * Probe order: a valid VHD footer at the end (512 or 511 bytes) whose disk type is fixed wins (so a fixed
 * VHD whose guest data starts with `vhdxfile` or `conectix` is still a fixed VHD); then `vhdxfile` at 0
 * (VHDX); then any `conectix` footer at the end or at 0 (VHD); else raw.
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { HvError } from '../protocol/errors.ts';
import type { BlockDevice, VhdFormat } from './block-device.ts';
import { DiskFile } from './file-io.ts';
import { RawDisk } from './raw.ts';
import {
  decodeFooter,
  footerChecksumOk,
  hasVhdCookie,
  type VhdSizeCalc,
  type VhdSizeRule,
} from './vhd/footer.ts';
import { VhdDisk } from './vhd/vhd-disk.ts';
import { loadVhdx, type VhdxApi } from './vhdx-bridge.ts';

/** Longest parent chain we follow before calling it corrupt. */
const MAX_CHAIN_DEPTH = 64;

/**
 * Detects the format of an existing file from its bytes (never from its name).
 * @throws HvError HV_ERR_NOT_FOUND / HV_ERR_IO.
 */
export async function probeFormat(path: string): Promise<VhdFormat> {
  const file = await DiskFile.open(path, { readOnly: true });
  try {
    const size = await file.size();
    const head = new Uint8Array(8);
    const got = await file.readAt(head, 0);
    const tail = new Uint8Array(512);
    const tailLen = Math.min(512, size);
    await file.readAt(tail, size - tailLen, 0, tailLen);
    const tailVhd = tailLen === 512 && hasVhdCookie(tail);
    const tail511 = !tailVhd && hasVhdCookie(tail, 1);
    if (tailVhd && footerChecksumOk(tail) && decodeFooterSafe(tail)?.diskType === 2) return 'VHD';
    if (got === 8 && String.fromCharCode(...head) === 'vhdxfile') return 'VHDX';
    if (tailVhd || tail511 || (got === 8 && hasVhdCookie(head))) return 'VHD';
    return 'Raw';
  } finally {
    await file.close();
  }
}

function decodeFooterSafe(b: Uint8Array) {
  try {
    return decodeFooter(b);
  } catch {
    return null;
  }
}

export interface OpenDiskOptions {
  readOnly?: boolean;
  /** Skip probing. */
  format?: VhdFormat;
  /** VHD only: which footer field is the size (QEMU's force_size_calc). */
  sizeCalc?: VhdSizeCalc;
}

/**
 * Opens any supported image. Parents of differencing disks are opened read-only; a chain that loops or
 * exceeds 64 levels is refused.
 * @throws HvError HV_ERR_NOT_FOUND (file or parent missing), HV_ERR_CORRUPT (damaged image, cyclic chain,
 *   parent identity mismatch), HV_ERR_UNSUPPORTED.
 */
export async function openDisk(path: string, opts: OpenDiskOptions = {}): Promise<BlockDevice> {
  return openInChain(path, opts, []);
}

async function openInChain(path: string, opts: OpenDiskOptions, chain: string[]): Promise<BlockDevice> {
  let real: string;
  try {
    real = fs.realpathSync(path);
  } catch {
    throw new HvError('HV_ERR_NOT_FOUND', `${path}: no such file`, { path });
  }
  if (chain.includes(real)) {
    throw new HvError('HV_ERR_CORRUPT', `cyclic parent chain: ${[...chain, real].join(' -> ')}`, { path });
  }
  if (chain.length >= MAX_CHAIN_DEPTH)
    throw new HvError('HV_ERR_CORRUPT', `parent chain deeper than ${MAX_CHAIN_DEPTH} levels at ${path}`, {
      path,
    });
  const next = [...chain, real];
  const openParent = (p: string) => openInChain(p, { readOnly: true }, next);
  const format = opts.format ?? (await probeFormat(path));
  const readOnly = opts.readOnly ?? false;
  switch (format) {
    case 'VHD': {
      const o: Parameters<typeof VhdDisk.open>[1] = { readOnly, openParent };
      if (opts.sizeCalc) o.sizeCalc = opts.sizeCalc;
      return VhdDisk.open(path, o);
    }
    case 'VHDX':
      return (await loadVhdx()).open(path, { readOnly });
    default:
      return RawDisk.open(path, { readOnly });
  }
}

export interface CreateDiskOptions {
  /** Virtual size in bytes (not needed for differencing). */
  size?: number;
  type: 'fixed' | 'dynamic' | 'differencing';
  /** Overrides the choice by extension. */
  format?: VhdFormat;
  blockSize?: number;
  logicalSectorSize?: number;
  physicalSectorSize?: number;
  parentPath?: string;
  /** VHD only. */
  sizeRule?: VhdSizeRule;
}

/** Format for a file name: .vhd → VHD, .vhdx → VHDX, .img/.raw/.bin → Raw. */
export function formatForPath(path: string): VhdFormat {
  const ext = nodePath.extname(path).toLowerCase();
  if (ext === '.vhd') return 'VHD';
  if (ext === '.vhdx' || ext === '.avhdx') return 'VHDX';
  if (ext === '.img' || ext === '.raw' || ext === '.bin') return 'Raw';
  throw new HvError(
    'HV_ERR_INVALID_ARGUMENT',
    `cannot tell the disk format from '${nodePath.basename(path)}': name it .vhd, .vhdx, .img or .raw`,
    { path },
  );
}

/**
 * Creates an image, choosing the format from the extension unless `format` is given.
 * @throws HvError HV_ERR_INVALID_ARGUMENT (bad size, sector size, block size, type for the format),
 *   HV_ERR_ALREADY_EXISTS, HV_ERR_NOT_FOUND (parent).
 */
export async function createDisk(path: string, opts: CreateDiskOptions): Promise<BlockDevice> {
  const format = opts.format ?? formatForPath(path);
  const openParent = (p: string) => openInChain(p, { readOnly: true }, []);
  if (format !== 'VHDX') {
    for (const [name, v] of [
      ['logical', opts.logicalSectorSize],
      ['physical', opts.physicalSectorSize],
    ] as const) {
      if (v !== undefined && v !== 512)
        throw new HvError(
          'HV_ERR_INVALID_ARGUMENT',
          `${format} disks have 512-byte sectors; ${name} sector size ${v} needs VHDX`,
        );
    }
  }
  if (format === 'Raw') {
    if (opts.type !== 'fixed')
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `a raw image is always fixed; use .vhd or .vhdx for a ${opts.type} disk`,
      );
    return RawDisk.create(path, { size: opts.size ?? 0 });
  }
  if (format === 'VHD') {
    const o: Parameters<typeof VhdDisk.create>[1] = { type: opts.type, openParent };
    if (opts.size !== undefined) o.size = opts.size;
    if (opts.blockSize !== undefined) o.blockSize = opts.blockSize;
    if (opts.parentPath !== undefined) o.parentPath = opts.parentPath;
    if (opts.sizeRule !== undefined) o.sizeRule = opts.sizeRule;
    return VhdDisk.create(path, o);
  }
  const vhdx: VhdxApi = await loadVhdx();
  return vhdx.create(path, opts);
}
