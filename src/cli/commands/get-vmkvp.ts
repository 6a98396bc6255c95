/**
 * `hvis get-vmkvp <vm> [--source guest|host|intrinsic|hostintrinsic]` — the VM's KVP items. Hyper-V has no
 * cmdlet for this: it is WMI's Msvm_KvpExchangeComponent (GuestIntrinsicExchangeItems,
 * GuestExchangeItems) and Msvm_KvpExchangeComponentSettingData (HostExchangeItems).
 */
import type { CommandModule } from 'yargs';
import type { KvpItem } from '../../host/kvp-exchange.ts';
import { connectHost, query } from '../client.ts';
import { formatTable, printJson } from '../output.ts';
import { oneName, requireOnline } from '../vm-args.ts';

interface Args {
  name?: string | undefined;
  source?: string | undefined;
  json?: boolean | undefined;
}

export const getVmKvpCommand: CommandModule<object, Args> = {
  command: 'get-vmkvp [name]',
  describe:
    'KVP items of a running VM (no Hyper-V cmdlet: WMI Msvm_KvpExchangeComponent); sources guest (pool 1), host (pool 0), intrinsic (pool 2), hostintrinsic (pool 3)',
  builder: (y) =>
    y.positional('name', { type: 'string', describe: 'VM name', alias: ['vm-name'] }).option('source', {
      type: 'string',
      choices: ['guest', 'host', 'intrinsic', 'hostintrinsic'],
      describe: 'only items of this source',
    }),
  handler: async (argv) => {
    const vm = oneName(argv.name, 'get-vmkvp');
    const c = await connectHost();
    try {
      requireOnline(c);
      const items = await c.call<KvpItem[]>(
        'GET',
        `/vms/${encodeURIComponent(vm)}/kvp${query({ source: argv.source })}`,
      );
      if (argv.json) printJson(items);
      else
        process.stdout.write(
          items.length
            ? formatTable(items as unknown as Record<string, unknown>[], ['Source', 'Name', 'Data'])
            : '',
        );
    } finally {
      await c.close();
    }
  },
};
