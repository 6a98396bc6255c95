/**
 * `hvis new-vm [[-Name]] [[-MemoryStartupBytes]] [[-Generation] 1|2] [-SwitchName] [-ProcessorCount]
 * [-NewVHDPath -NewVHDSizeBytes | -NoVHD]` — New-VM. Sizes accept PowerShell's multipliers (`1GB`,
 * `512MB`: powers of 1024). Works without a running host (the configuration is written to disk).
 */
import { resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import type { VmView } from '../../host/vm-view.ts';
import { HvError } from '../../protocol/errors.ts';
import { connectHost } from '../client.ts';
import { printJson } from '../output.ts';
import { oneName } from '../vm-args.ts';
import { formatVmTable } from '../vm-output.ts';

interface Args {
  name?: string[] | undefined;
  memoryStartupBytes?: string | undefined;
  generation?: number | undefined;
  processorCount?: number | undefined;
  switchName?: string | undefined;
  newVhdPath?: string | undefined;
  newVhdSizeBytes?: string | undefined;
  noVhd?: boolean | undefined;
  json?: boolean | undefined;
}

const MULT: Record<string, number> = {
  '': 1,
  KB: 1024,
  MB: 1024 ** 2,
  GB: 1024 ** 3,
  TB: 1024 ** 4,
  PB: 1024 ** 5,
};

/**
 * Parses a byte count with an optional PowerShell multiplier suffix (KB, MB, GB, TB, PB; case-insensitive).
 * @throws HvError `HV_ERR_INVALID_ARGUMENT` naming the parameter when the text is not such a number.
 */
export function parseBytes(text: string, param: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGTP]B)?\s*$/i.exec(text);
  const v = m ? Number(m[1]) * MULT[(m[2] ?? '').toUpperCase()]! : Number.NaN;
  if (!Number.isSafeInteger(v) || v <= 0) {
    throw new HvError(
      'HV_ERR_INVALID_ARGUMENT',
      `${param}: '${text}' is not a byte count (examples: 1073741824, 1GB, 512MB)`,
    );
  }
  return v;
}

export const newVmCommand: CommandModule<object, Args> = {
  command: 'new-vm [name..]',
  describe:
    'New-VM: create a virtual machine configuration (generation 2, 1 GB, every integration service on)',
  builder: (y) =>
    y
      .positional('name', { type: 'string', array: true, describe: 'VM name' })
      .option('memory-startup-bytes', { type: 'string', describe: 'startup memory, e.g. 1GB (default 1GB)' })
      .option('generation', { type: 'number', choices: [1, 2], describe: 'VM generation (default 2)' })
      .option('processor-count', { type: 'number', describe: 'virtual processors (default 1)' })
      .option('switch-name', {
        type: 'string',
        describe: "connect one network adapter to this switch, e.g. 'Default Switch'",
      })
      .option('new-vhd-path', { type: 'string', describe: 'create a dynamic VHDX here for the VM' })
      .option('new-vhd-size-bytes', { type: 'string', describe: 'size of the new VHDX, e.g. 127GB' })
      .option('no-vhd', { type: 'boolean', describe: 'create the VM without a virtual hard disk' })
      .check((a) => {
        if (a.newVhdPath !== undefined && a.noVhd)
          throw new HvError('HV_ERR_INVALID_ARGUMENT', '--new-vhd-path and --no-vhd exclude each other');
        if ((a.newVhdPath === undefined) !== (a.newVhdSizeBytes === undefined)) {
          throw new HvError(
            'HV_ERR_INVALID_ARGUMENT',
            '--new-vhd-path and --new-vhd-size-bytes go together: give both or neither',
          );
        }
        return true;
      }),
  handler: async (argv) => {
    const name = oneName(argv.name, 'new-vm');
    const body = {
      name,
      ...(argv.memoryStartupBytes !== undefined && {
        memoryStartupBytes: parseBytes(argv.memoryStartupBytes, '--memory-startup-bytes'),
      }),
      ...(argv.generation !== undefined && { generation: argv.generation }),
      ...(argv.processorCount !== undefined && { processorCount: argv.processorCount }),
      ...(argv.switchName !== undefined && { switchName: argv.switchName }),
      ...(argv.newVhdPath !== undefined && {
        newVhdPath: resolve(argv.newVhdPath),
        newVhdSizeBytes: parseBytes(argv.newVhdSizeBytes ?? '', '--new-vhd-size-bytes'),
      }),
    };
    const c = await connectHost();
    try {
      const vm = await c.call<VmView>('POST', '/vms', body);
      if (argv.json) printJson(vm);
      else process.stdout.write(formatVmTable([vm]));
    } finally {
      await c.close();
    }
  },
};
