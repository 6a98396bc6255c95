/**
 * `hvis get-vmnetworkadapter <vm>` — Get-VMNetworkAdapter: each NIC with the guest's IPAddresses (from KVP
 * GET_IP_INFO by MAC, or the guest's NetworkAddressIPv4/IPv6 intrinsic items), subnets, gateways, DNS.
 */
import type { CommandModule } from 'yargs';
import { connectHost } from '../client.ts';
import { formatTable, printJson } from '../output.ts';
import { oneName, requireOnline } from '../vm-args.ts';

interface Args {
  name?: string | undefined;
  json?: boolean | undefined;
}

export const getVmNetworkAdapterCommand: CommandModule<object, Args> = {
  command: 'get-vmnetworkadapter [name]',
  describe:
    "Get-VMNetworkAdapter: a VM's network adapters with the IP addresses its guest reports through KVP",
  builder: (y) => y.positional('name', { type: 'string', describe: 'VM name', alias: ['vm-name'] }),
  handler: async (argv) => {
    const vm = oneName(argv.name, 'get-vmnetworkadapter');
    const c = await connectHost();
    try {
      requireOnline(c);
      const nics = await c.call<Record<string, unknown>[]>(
        'GET',
        `/vms/${encodeURIComponent(vm)}/network-adapters`,
      );
      if (argv.json) printJson(nics);
      else {
        const rows = nics.map((n) => ({ ...n, IPAddresses: `{${(n.IPAddresses as string[]).join(', ')}}` }));
        process.stdout.write(
          formatTable(rows, ['Name', 'VMName', 'SwitchName', 'MacAddress', 'IPAddresses']),
        );
      }
    } finally {
      await c.close();
    }
  },
};
