/**
 * The VHDX format as the format-independent code (open.ts, ops/) sees it: adapts the loosely typed options of
 * `hvis new-vhd`/`convert-vhd` to src/disk/vhdx and maps its check report onto `test-vhd` problems.
 */
import { HvError } from '../protocol/errors.ts';
import type { BlockDevice } from './block-device.ts';
import { checkVhdx } from './vhdx/check.ts';
import { VhdxDisk } from './vhdx/vhdx-disk.ts';

export interface VhdxCreateOptions {
  size?: number;
  type: 'fixed' | 'dynamic' | 'differencing';
  blockSize?: number;
  logicalSectorSize?: number;
  physicalSectorSize?: number;
  parentPath?: string;
}

/** A `test-vhd` finding. */
export interface DiskProblem {
  /** Stable short name, e.g. `footer-checksum`, `bat-past-eof`; `leaked-space` is informational. */
  code: string;
  message: string;
  /** True when `--repair` fixed it. */
  repaired: boolean;
}

export interface VhdxApi {
  open(path: string, opts: { readOnly: boolean }): Promise<BlockDevice>;
  create(path: string, opts: VhdxCreateOptions): Promise<BlockDevice>;
  check(path: string, opts: { repair: boolean }): Promise<{ problems: DiskProblem[] }>;
}

function sectorSize(name: string, v: number | undefined): 512 | 4096 | undefined {
  if (v === undefined || v === 512 || v === 4096) return v;
  throw new HvError('HV_ERR_INVALID_ARGUMENT', `${name} must be 512 or 4096 bytes for VHDX, not ${v}`);
}

const api: VhdxApi = {
  open: (path, opts) => VhdxDisk.open(path, { readOnly: opts.readOnly }),
  create: (path, opts) => {
    const logical = sectorSize('LogicalSectorSizeBytes', opts.logicalSectorSize);
    const physical = sectorSize('PhysicalSectorSizeBytes', opts.physicalSectorSize);
    return VhdxDisk.create(path, {
      size: opts.size ?? 0,
      type: opts.type,
      ...(opts.blockSize !== undefined && { blockSize: opts.blockSize }),
      ...(logical !== undefined && { logicalSectorSize: logical }),
      ...(physical !== undefined && { physicalSectorSize: physical }),
      ...(opts.parentPath !== undefined && { parentPath: opts.parentPath }),
    });
  },
  check: async (path, opts) => {
    const r = await checkVhdx(path, opts);
    return {
      problems: [
        ...r.problems.map((message) => ({ code: 'vhdx', message, repaired: false })),
        ...r.repaired.map((message) => ({ code: 'vhdx-repaired', message, repaired: true })),
        ...r.notes.map((message) => ({ code: 'leaked-space', message, repaired: false })),
      ],
    };
  },
};

/** The VHDX entry points used by open.ts and ops/. */
export async function loadVhdx(): Promise<VhdxApi> {
  return api;
}
