/**
 * `hvis add-vmfibrechannelhba <vm> -SanName <san> [-WorldWideNodeNameSetA <16 hex>] [-WorldWidePortNameSetA
 * <16 hex>]` and `hvis get-vmfibrechannelhba <vm>`: Add-/Get-VMFibreChannelHba. The adapter is a synthetic
 * Fibre Channel HBA on VMBus (hot added to a running VM); hvis has no virtual SAN, so it carries no LUNs.
 */
import type { CommandModule } from 'yargs';
import { connectHost } from '../client.ts';
import { formatTable, printJson } from '../output.ts';
import { oneName } from '../vm-args.ts';

interface Args {
  name?: string | undefined;
  sanName?: string | undefined;
  worldWideNodeNameSetA?: string | undefined;
  worldWidePortNameSetA?: string | undefined;
  json?: boolean | undefined;
}

const columns = ['VMName', 'SanName', 'WorldWideNodeNameSetA', 'WorldWidePortNameSetA'];

function print(rows: Record<string, unknown>[], json: boolean): void {
  if (json) printJson(rows);
  else process.stdout.write(formatTable(rows, columns));
}

export const addVmFibreChannelHbaCommand: CommandModule<object, Args> = {
  command: 'add-vmfibrechannelhba [name]',
  describe: 'Add-VMFibreChannelHba: add a virtual Fibre Channel adapter (WWNs generated unless given)',
  builder: (y) =>
    y
      .positional('name', { type: 'string', describe: 'VM name', alias: ['vm-name'] })
      .option('san-name', { type: 'string', demandOption: true, describe: 'virtual SAN name' })
      .option('world-wide-node-name-set-a', { type: 'string', describe: 'WWNN, 16 hex digits' })
      .option('world-wide-port-name-set-a', { type: 'string', describe: 'WWPN, 16 hex digits' }),
  handler: async (argv) => {
    const vm = oneName(argv.name, 'add-vmfibrechannelhba');
    const c = await connectHost();
    try {
      const body: Record<string, unknown> = { sanName: argv.sanName };
      if (argv.worldWideNodeNameSetA) body.wwnn = argv.worldWideNodeNameSetA;
      if (argv.worldWidePortNameSetA) body.wwpn = argv.worldWidePortNameSetA;
      print(
        [await c.call<Record<string, unknown>>('POST', `/vms/${encodeURIComponent(vm)}/fibre-channel`, body)],
        argv.json === true,
      );
    } finally {
      await c.close();
    }
  },
};

export const getVmFibreChannelHbaCommand: CommandModule<object, Args> = {
  command: 'get-vmfibrechannelhba [name]',
  describe: "Get-VMFibreChannelHba: a VM's virtual Fibre Channel adapters",
  builder: (y) => y.positional('name', { type: 'string', describe: 'VM name', alias: ['vm-name'] }),
  handler: async (argv) => {
    const vm = oneName(argv.name, 'get-vmfibrechannelhba');
    const c = await connectHost();
    try {
      print(
        await c.call<Record<string, unknown>[]>('GET', `/vms/${encodeURIComponent(vm)}/fibre-channel`),
        argv.json === true,
      );
    } finally {
      await c.close();
    }
  },
};
