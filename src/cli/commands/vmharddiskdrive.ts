/**
 * `hvis get-vmharddiskdrive <vm>`, `hvis add-vmharddiskdrive <vm> -Path <image> [-ControllerNumber n]
 * [-ControllerLocation n]`, `hvis remove-vmharddiskdrive <vm> -ControllerNumber n -ControllerLocation n`:
 * Get-/Add-/Remove-VMHardDiskDrive. On a running VM the drive is hot added / removed through the VM's
 * synthetic SCSI controller; `GuestDisk` (ours) shows what the guest's storvsc sees. Without a running host
 * the VM's configuration is edited directly.
 * `hvis export-vmharddiskdrive <vm> -ControllerLocation n [-Stop]` is ours (Hyper-V has no such cmdlet): the
 * running guest serves that disk over NBD on a Unix socket and the command prints the NBD URI.
 */
import { resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { connectHost } from '../client.ts';
import { formatTable, printJson } from '../output.ts';
import { oneName, requireOnline } from '../vm-args.ts';

interface DriveView {
  VMName: string;
  ControllerType: string;
  ControllerNumber: number;
  ControllerLocation: number;
  Path: string;
  GuestDisk: { Size: number; Vendor: string; Product: string } | null;
}

function print(drives: DriveView[], json: boolean): void {
  if (json) {
    printJson(drives);
    return;
  }
  const rows = drives.map((d) => ({
    ...d,
    GuestDisk: d.GuestDisk ? `${d.GuestDisk.Vendor} ${d.GuestDisk.Product} ${d.GuestDisk.Size} B` : '',
  }));
  process.stdout.write(
    formatTable(rows, [
      'VMName',
      'ControllerType',
      'ControllerNumber',
      'ControllerLocation',
      'Path',
      'GuestDisk',
    ]),
  );
}

interface Args {
  name?: string | undefined;
  path?: string | undefined;
  controllerNumber?: number | undefined;
  controllerLocation?: number | undefined;
  controllerType?: string | undefined;
  json?: boolean | undefined;
}

const vmName = { type: 'string', describe: 'VM name', alias: ['vm-name'] } as const;

export const getVmHardDiskDriveCommand: CommandModule<object, Args> = {
  command: 'get-vmharddiskdrive [name]',
  describe: "Get-VMHardDiskDrive: a VM's virtual hard disk drives (with the running guest's view of each)",
  builder: (y) => y.positional('name', vmName),
  handler: async (argv) => {
    const vm = oneName(argv.name, 'get-vmharddiskdrive');
    const c = await connectHost();
    try {
      print(
        await c.call<DriveView[]>('GET', `/vms/${encodeURIComponent(vm)}/hard-drives`),
        argv.json === true,
      );
    } finally {
      await c.close();
    }
  },
};

export const addVmHardDiskDriveCommand: CommandModule<object, Args> = {
  command: 'add-vmharddiskdrive [name]',
  describe: 'Add-VMHardDiskDrive: attach a virtual hard disk (hot add on a running VM, SCSI only)',
  builder: (y) =>
    y
      .positional('name', vmName)
      .option('path', { type: 'string', describe: 'image file (.vhdx, .vhd or raw)', demandOption: true })
      .option('controller-type', { type: 'string', choices: ['SCSI', 'IDE'], default: 'SCSI' })
      .option('controller-number', { type: 'number', describe: 'SCSI controller 0..3', default: 0 })
      .option('controller-location', { type: 'number', describe: 'LUN 0..63 (default: first free)' }),
  handler: async (argv) => {
    const vm = oneName(argv.name, 'add-vmharddiskdrive');
    const c = await connectHost();
    try {
      const body: Record<string, unknown> = {
        path: resolve(argv.path ?? ''),
        controllerType: argv.controllerType ?? 'SCSI',
        controllerNumber: argv.controllerNumber ?? 0,
      };
      if (argv.controllerLocation !== undefined) body.controllerLocation = argv.controllerLocation;
      print(
        [await c.call<DriveView>('POST', `/vms/${encodeURIComponent(vm)}/hard-drives`, body)],
        argv.json === true,
      );
    } finally {
      await c.close();
    }
  },
};

export const removeVmHardDiskDriveCommand: CommandModule<object, Args> = {
  command: 'remove-vmharddiskdrive [name]',
  describe: 'Remove-VMHardDiskDrive: detach a drive (hot remove on a running VM); the image file is kept',
  builder: (y) =>
    y
      .positional('name', vmName)
      .option('controller-number', { type: 'number', default: 0 })
      .option('controller-location', { type: 'number', demandOption: true }),
  handler: async (argv) => {
    const vm = oneName(argv.name, 'remove-vmharddiskdrive');
    const c = await connectHost();
    try {
      const d = await c.call<DriveView>('POST', `/vms/${encodeURIComponent(vm)}/hard-drives/remove`, {
        controllerNumber: argv.controllerNumber ?? 0,
        controllerLocation: argv.controllerLocation,
      });
      if (argv.json) printJson(d);
    } finally {
      await c.close();
    }
  },
};

interface ExportArgs extends Args {
  stop?: boolean | undefined;
}

export const exportVmHardDiskDriveCommand: CommandModule<object, ExportArgs> = {
  command: 'export-vmharddiskdrive [name]',
  describe:
    "hvis only (no cmdlet): serve a running VM's disk over NBD from inside the guest (storvsc → VMBus → storvsp → image); prints the nbd+unix URI",
  builder: (y) =>
    y
      .positional('name', vmName)
      .option('controller-number', { type: 'number', default: 0 })
      .option('controller-location', { type: 'number', default: 0 })
      .option('stop', { type: 'boolean', describe: 'end the export' }),
  handler: async (argv) => {
    const vm = oneName(argv.name, 'export-vmharddiskdrive');
    const c = await connectHost();
    try {
      requireOnline(c);
      const r = await c.call<{ Uri: string | null }>(
        'POST',
        `/vms/${encodeURIComponent(vm)}/hard-drives/export`,
        {
          controllerNumber: argv.controllerNumber ?? 0,
          controllerLocation: argv.controllerLocation ?? 0,
          stop: argv.stop === true,
        },
      );
      if (argv.json) printJson(r);
      else if (r.Uri) process.stdout.write(`${r.Uri}\n`);
    } finally {
      await c.close();
    }
  },
};
