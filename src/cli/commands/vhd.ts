/**
 * The Hyper-V disk cmdlets: New-VHD, Get-VHD, Convert-VHD, Resize-VHD, Optimize-VHD, Merge-VHD, Test-VHD.
 * Objects printed carry Get-VHD's property names (VirtualHardDisk). Long operations show a progress line
 * on stderr when it is a TTY, never under --json.
 */

import { resolve } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import type { VhdInfo } from '../../disk/block-device.ts';
import { createDisk, openDisk } from '../../disk/open.ts';
import { convertDisk } from '../../disk/ops/convert.ts';
import { mergeDisk } from '../../disk/ops/merge.ts';
import { optimizeDisk } from '../../disk/ops/optimize.ts';
import { stderrProgress } from '../../disk/ops/progress.ts';
import { resizeDisk } from '../../disk/ops/resize.ts';
import { testDisk } from '../../disk/ops/test.ts';
import { HvError, isHvError } from '../../protocol/errors.ts';
import { connectHost } from '../client.ts';
import { formatList, printJson } from '../output.ts';

const UNITS: Record<string, number> = { '': 1, B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

/** Parses `1073741824`, `1GB`, `512MB` (PowerShell's binary multipliers). */
export function parseBytes(name: string, v: unknown): number {
  const m = /^\s*(\d+)\s*(B|KB|MB|GB|TB)?\s*$/i.exec(String(v));
  const n = m ? Number(m[1]) * UNITS[(m[2] ?? '').toUpperCase()]! : Number.NaN;
  if (!Number.isSafeInteger(n))
    throw new HvError(
      'HV_ERR_INVALID_ARGUMENT',
      `--${name} '${String(v)}' is not a byte count (e.g. 1073741824 or 1GB)`,
    );
  return n;
}

const INFO_KEYS: (keyof VhdInfo)[] = [
  'Path',
  'VhdFormat',
  'VhdType',
  'FileSize',
  'Size',
  'MinimumSize',
  'LogicalSectorSize',
  'PhysicalSectorSize',
  'BlockSize',
  'ParentPath',
  'DiskIdentifier',
  'FragmentationPercentage',
  'Alignment',
  'Attached',
];

function show(obj: VhdInfo | object, json: boolean): void {
  if (json) printJson(obj);
  else {
    const keys = INFO_KEYS.filter((k) => k in obj);
    process.stdout.write(
      formatList(obj as Record<string, unknown>, keys.length > 3 ? keys : Object.keys(obj)),
    );
  }
}

function req(args: Record<string, unknown>, name: string, flag: string): string {
  const v = args[name];
  if (typeof v !== 'string' || v === '')
    throw new HvError('HV_ERR_INVALID_ARGUMENT', `missing --${flag} <file>`);
  return v;
}

const pathOpt = (y: Argv) =>
  y
    .positional('path', { type: 'string', describe: 'image file' })
    .option('path', { type: 'string', describe: 'image file (-Path)' });

const newVhd: CommandModule = {
  command: 'new-vhd',
  describe: 'New-VHD: create a VHD, VHDX or raw image (format from the extension)',
  builder: (y) =>
    y
      .option('path', { type: 'string', describe: 'file to create (.vhd, .vhdx, .img/.raw)' })
      .option('size-bytes', { type: 'string', describe: 'virtual size (bytes, or 10GB style)' })
      .option('fixed', { type: 'boolean' })
      .option('dynamic', { type: 'boolean' })
      .option('differencing', { type: 'boolean' })
      .option('parent-path', { type: 'string' })
      .option('block-size-bytes', { type: 'string' })
      .option('logical-sector-size-bytes', { type: 'number' })
      .option('physical-sector-size-bytes', { type: 'number' })
      .option('source-disk', {
        type: 'string',
        describe: 'raw image (or any image) whose contents fill the new disk',
      }),
  handler: async (a) => {
    const path = req(a, 'path', 'path');
    const kinds = (['fixed', 'dynamic', 'differencing'] as const).filter((k) => a[k] === true);
    if (kinds.length > 1)
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `choose one of --fixed, --dynamic, --differencing (got ${kinds.join(', ')})`,
      );
    const type = kinds[0] ?? (a.parentPath ? 'differencing' : 'dynamic');
    if (type === 'differencing' && !a.parentPath)
      throw new HvError('HV_ERR_INVALID_ARGUMENT', '--differencing needs --parent-path <file>');
    const json = a.json === true;
    let info: VhdInfo;
    if (a.sourceDisk !== undefined) {
      if (type === 'differencing')
        throw new HvError('HV_ERR_INVALID_ARGUMENT', '--source-disk cannot make a differencing disk');
      const p = stderrProgress('new-vhd', !json);
      const o: Parameters<typeof convertDisk>[2] = { vhdType: type, progress: p.progress };
      if (a.blockSizeBytes !== undefined) o.blockSize = parseBytes('block-size-bytes', a.blockSizeBytes);
      info = await convertDisk(String(a.sourceDisk), path, o);
      p.finish();
    } else {
      const o: Parameters<typeof createDisk>[1] = { type };
      if (type !== 'differencing') {
        if (a.sizeBytes === undefined)
          throw new HvError('HV_ERR_INVALID_ARGUMENT', `a ${type} disk needs --size-bytes (e.g. 10GB)`);
        o.size = parseBytes('size-bytes', a.sizeBytes);
      } else o.parentPath = String(a.parentPath);
      if (a.blockSizeBytes !== undefined) o.blockSize = parseBytes('block-size-bytes', a.blockSizeBytes);
      if (a.logicalSectorSizeBytes !== undefined) o.logicalSectorSize = Number(a.logicalSectorSizeBytes);
      if (a.physicalSectorSizeBytes !== undefined) o.physicalSectorSize = Number(a.physicalSectorSizeBytes);
      const dev = await createDisk(path, o);
      try {
        info = await dev.info();
      } finally {
        await dev.close();
      }
    }
    show(info, json);
  },
};

const getVhd: CommandModule = {
  command: 'get-vhd [path]',
  describe: 'Get-VHD: show an image (format, type, sizes, block size, parent, identifier)',
  builder: pathOpt,
  handler: async (a) => {
    const dev = await openDisk(req(a, 'path', 'path'), { readOnly: true });
    try {
      show(await dev.info(), a.json === true);
    } finally {
      await dev.close();
    }
  },
};

const convertVhd: CommandModule = {
  command: 'convert-vhd [path] [destination-path]',
  describe:
    'Convert-VHD: copy an image to another format/type (by extension or --vhd-type); --azure for an Azure fixed VHD',
  builder: (y) =>
    pathOpt(y)
      .positional('destination-path', { type: 'string' })
      .option('destination-path', { type: 'string' })
      .option('vhd-type', { type: 'string', describe: 'Fixed or Dynamic' })
      .option('block-size-bytes', { type: 'string' })
      .option('azure', {
        type: 'boolean',
        describe: 'fixed VHD, size rounded up to a whole MiB, footer as Azure accepts it',
      })
      .option('allow-sector-size-change', { type: 'boolean' }),
  handler: async (a) => {
    const json = a.json === true;
    const o: Parameters<typeof convertDisk>[2] = {};
    if (a.vhdType !== undefined) {
      const t = String(a.vhdType).toLowerCase();
      if (t !== 'fixed' && t !== 'dynamic')
        throw new HvError(
          'HV_ERR_INVALID_ARGUMENT',
          `--vhd-type '${String(a.vhdType)}': use Fixed or Dynamic`,
        );
      o.vhdType = t;
    }
    if (a.blockSizeBytes !== undefined) o.blockSize = parseBytes('block-size-bytes', a.blockSizeBytes);
    if (a.azure === true) o.azure = true;
    if (a.allowSectorSizeChange === true) o.allowSectorSizeChange = true;
    const p = stderrProgress('convert-vhd', !json);
    o.progress = p.progress;
    const info = await convertDisk(req(a, 'path', 'path'), req(a, 'destinationPath', 'destination-path'), o);
    p.finish();
    show(info, json);
  },
};

/**
 * Resize-VHD of an image a running VM has attached, through the running host (`POST /attached-vhd/resize`):
 * the open image is resized in place and the guest sees the new size online (UNIT ATTENTION 2A/09).
 * @returns null when no host runs or no running VM has the file attached (then the file is resized here).
 */
async function resizeAttached(path: string, o: Parameters<typeof resizeDisk>[1]): Promise<VhdInfo | null> {
  const c = await connectHost();
  try {
    if (!c.online) return null;
    try {
      // --to-minimum-size has no online form: a 1-byte size is refused (HV_ERR_INVALID_ARGUMENT) only
      // when the file is attached, and 404s otherwise.
      return await c.call<VhdInfo>('POST', '/attached-vhd/resize', { path, sizeBytes: o.sizeBytes ?? 1 });
    } catch (e) {
      if (isHvError(e, 'HV_ERR_NOT_FOUND')) return null;
      if (o.toMinimumSize && isHvError(e, 'HV_ERR_INVALID_ARGUMENT'))
        throw new HvError(
          'HV_ERR_INVALID_ARGUMENT',
          `${path} is attached to a running VM: --to-minimum-size works on a detached image; give --size-bytes to resize it online`,
        );
      throw e;
    }
  } finally {
    await c.close();
  }
}

const resizeVhd: CommandModule = {
  command: 'resize-vhd [path]',
  describe:
    'Resize-VHD: grow or shrink the virtual size (--size-bytes or --to-minimum-size); an image attached to a running VM is resized online through the running host, and the guest sees the new size',
  builder: (y) =>
    pathOpt(y).option('size-bytes', { type: 'string' }).option('to-minimum-size', { type: 'boolean' }),
  handler: async (a) => {
    const o: Parameters<typeof resizeDisk>[1] = {};
    if (a.sizeBytes !== undefined) o.sizeBytes = parseBytes('size-bytes', a.sizeBytes);
    if (a.toMinimumSize === true) o.toMinimumSize = true;
    const path = resolve(req(a, 'path', 'path'));
    show((await resizeAttached(path, o)) ?? (await resizeDisk(path, o)), a.json === true);
  },
};

const optimizeVhd: CommandModule = {
  command: 'optimize-vhd [path]',
  describe: 'Optimize-VHD: compact a dynamic or differencing disk (drops empty blocks and unused space)',
  builder: pathOpt,
  handler: async (a) => {
    const json = a.json === true;
    const p = stderrProgress('optimize-vhd', !json);
    const info = await optimizeDisk(req(a, 'path', 'path'), p.progress);
    p.finish();
    show(info, json);
  },
};

const mergeVhd: CommandModule = {
  command: 'merge-vhd [path]',
  describe:
    'Merge-VHD: fold a differencing disk into its parent (or --destination-path ancestor) and delete it',
  builder: (y) => pathOpt(y).option('destination-path', { type: 'string' }),
  handler: async (a) => {
    const json = a.json === true;
    const p = stderrProgress('merge-vhd', !json);
    const info = await mergeDisk(
      req(a, 'path', 'path'),
      a.destinationPath === undefined ? undefined : String(a.destinationPath),
      p.progress,
    );
    p.finish();
    show(info, json);
  },
};

const testVhd: CommandModule = {
  command: 'test-vhd [path]',
  describe:
    'Test-VHD: check an image and explain what is wrong; --repair fixes what can be fixed (exit 1 if not valid)',
  builder: (y) => pathOpt(y).option('repair', { type: 'boolean' }),
  handler: async (a) => {
    const report = await testDisk(req(a, 'path', 'path'), { repair: a.repair === true });
    if (a.json === true) printJson(report);
    else {
      process.stdout.write(`${report.Path}: ${report.VhdFormat}, ${report.Valid ? 'valid' : 'NOT valid'}\n`);
      for (const p of report.Problems)
        process.stdout.write(`  ${p.repaired ? 'repaired' : p.code}: ${p.message}\n`);
    }
    if (!report.Valid) process.exitCode = 1;
  },
};

export const vhdCommands: CommandModule[] = [
  newVhd,
  getVhd,
  convertVhd,
  resizeVhd,
  optimizeVhd,
  mergeVhd,
  testVhd,
];
