/**
 * The VHDX format as the format-independent code (open.ts, ops/) sees it. VHDX itself lives in
 * src/disk/vhdx/ (another module); this adapter names the three entry points used here and reports
 * clearly when one is not available.
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
  /** Stable short name, e.g. `footer-checksum`, `bat-past-eof`. */
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

type Fn = (...args: never[]) => unknown;

function entry(name: string, f: unknown): Fn {
  if (typeof f !== 'function')
    throw new HvError('HV_ERR_UNSUPPORTED', `VHDX ${name} is not available in this build`);
  return f as Fn;
}

/** Binds the VHDX module's entry points. */
export async function loadVhdx(): Promise<VhdxApi> {
  const statics = VhdxDisk as unknown as Record<string, unknown>;
  return {
    open: (path, opts) => VhdxDisk.open(path, { readOnly: opts.readOnly }),
    create: async (path, opts) => {
      const clean = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
      return entry('create', statics.create).call(VhdxDisk, ...([path, clean] as never[])) as Promise<BlockDevice>;
    },
    check: async (path, opts) => {
      const r = await checkVhdx(path, opts);
      const repaired = r.repaired.map((m) => ({ code: 'vhdx-repaired', message: m, repaired: true }));
      return { problems: [...r.problems.map((m) => ({ code: 'vhdx', message: m, repaired: false })), ...repaired] };
    },
  };
}
