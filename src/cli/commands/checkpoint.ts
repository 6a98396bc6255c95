/**
 * `hvis checkpoint-vm <vm> [-SnapshotName n] [-SnapshotType Production|ProductionOnly|Standard]`,
 * `hvis get-vmsnapshot <vm>`, `hvis restore-vmsnapshot <vm> -Name n`, `hvis remove-vmsnapshot <vm> -Name n`:
 * Checkpoint-VM and the *-VMSnapshot cmdlets over the VM's virtual hard disks (differencing .avhdx
 * children; removing merges). A running VM gets a production checkpoint through the guest's VSS freeze/thaw;
 * `-SnapshotType` stands in for the VM's Set-VM -CheckpointType (see src/host/checkpoints.ts).
 */
import type { CommandModule } from 'yargs';
import { connectHost } from '../client.ts';
import { formatTable, printJson } from '../output.ts';
import { oneName } from '../vm-args.ts';

interface Args {
  vmName?: string | undefined;
  name?: string | undefined;
  snapshotName?: string | undefined;
  snapshotType?: string | undefined;
  json?: boolean | undefined;
}

const vmPositional = { type: 'string', describe: 'VM name' } as const;
const path = (vm: string, tail = '') => `/vms/${encodeURIComponent(vm)}/checkpoints${tail}`;

function print(rows: Record<string, unknown>[], json: boolean): void {
  if (json) printJson(rows);
  else
    process.stdout.write(
      formatTable(rows, ['VMName', 'Name', 'SnapshotType', 'CreationTime', 'ParentSnapshotName']),
    );
}

export const checkpointVmCommand: CommandModule<object, Args> = {
  command: 'checkpoint-vm [vm-name]',
  describe: 'Checkpoint-VM: take a checkpoint of a VM (its disks continue in differencing .avhdx images)',
  builder: (y) =>
    y
      .positional('vm-name', { ...vmPositional, alias: ['name'] })
      .option('snapshot-name', { type: 'string', describe: 'checkpoint name (default: "<vm> - (<time>)")' })
      .option('snapshot-type', {
        type: 'string',
        choices: ['Production', 'ProductionOnly', 'Standard'],
        default: 'Production',
        describe:
          'as Set-VM -CheckpointType: Production freezes a running guest through VSS and falls back to Standard when it cannot; ProductionOnly fails instead; Standard (memory state) is refused while the VM runs (hvis saves no memory state)',
      }),
  handler: async (argv) => {
    const vm = oneName(argv.vmName, 'checkpoint-vm');
    const c = await connectHost();
    try {
      const body: Record<string, unknown> = { snapshotType: argv.snapshotType ?? 'Production' };
      if (argv.snapshotName) body.name = argv.snapshotName;
      const r = await c.call<Record<string, unknown>>('POST', path(vm), body);
      if (argv.json) printJson(r);
    } finally {
      await c.close();
    }
  },
};

export const getVmSnapshotCommand: CommandModule<object, Args> = {
  command: 'get-vmsnapshot [vm-name]',
  describe: "Get-VMSnapshot: a VM's checkpoints",
  builder: (y) =>
    y
      .positional('vm-name', vmPositional)
      .option('name', { type: 'string', describe: 'only this checkpoint' }),
  handler: async (argv) => {
    const vm = oneName(argv.vmName, 'get-vmsnapshot');
    const c = await connectHost();
    try {
      const all = await c.call<Record<string, unknown>[]>('GET', path(vm));
      print(argv.name ? all.filter((s) => s.Name === argv.name) : all, argv.json === true);
    } finally {
      await c.close();
    }
  },
};

function snapshotAction(action: 'restore' | 'remove', describe: string): CommandModule<object, Args> {
  return {
    command: `${action}-vmsnapshot [vm-name]`,
    describe,
    builder: (y) =>
      y
        .positional('vm-name', vmPositional)
        .option('name', { type: 'string', demandOption: true, describe: 'checkpoint name' }),
    handler: async (argv) => {
      const vm = oneName(argv.vmName, `${action}-vmsnapshot`);
      const c = await connectHost();
      try {
        const r = await c.call<unknown>('POST', path(vm, `/${action}`), { name: argv.name });
        if (argv.json) printJson(r);
      } finally {
        await c.close();
      }
    },
  };
}

export const restoreVmSnapshotCommand = snapshotAction(
  'restore',
  'Restore-VMSnapshot: return a stopped VM to a checkpoint (its current state is discarded)',
);
export const removeVmSnapshotCommand = snapshotAction(
  'remove',
  "Remove-VMSnapshot: delete a checkpoint, merging its disk data into the VM's current disks; a checkpoint that later checkpoints build on is refused (hvis cannot re-parent differencing disks yet: remove the later ones first)",
);
