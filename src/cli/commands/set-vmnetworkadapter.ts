/**
 * `hvis set-vmnetworkadapter <vm> --static-ip <ip>... --subnet <mask|prefix>... [--gateway ...] [--dns ...]
 * [--adapter <name>]` — injects a static IP configuration into the guest through KVP SET_IP_INFO (what
 * Hyper-V does through WMI Msvm_GuestNetworkAdapterConfiguration / SetGuestNetworkAdapterConfiguration).
 * Every entry must be a plain address; anything else is refused before it reaches the guest.
 */
import type { CommandModule } from 'yargs';
import { connectHost } from '../client.ts';
import { printJson } from '../output.ts';
import { namesOf, oneName, requireOnline } from '../vm-args.ts';

interface Args {
  name?: string | undefined;
  adapter?: string | undefined;
  staticIp?: string[] | undefined;
  subnet?: string[] | undefined;
  gateway?: string[] | undefined;
  dns?: string[] | undefined;
  json?: boolean | undefined;
}

export const setVmNetworkAdapterCommand: CommandModule<object, Args> = {
  command: 'set-vmnetworkadapter [name]',
  describe:
    'injects static IP settings into the guest NIC through KVP SET_IP_INFO (WMI SetGuestNetworkAdapterConfiguration)',
  builder: (y) =>
    y
      .positional('name', { type: 'string', describe: 'VM name', alias: ['vm-name'] })
      .option('adapter', { type: 'string', describe: 'NIC name (default: the first)' })
      .option('static-ip', { type: 'string', array: true, describe: 'IPv4/IPv6 address(es)' })
      .option('subnet', { type: 'string', array: true, describe: 'IPv4 mask(s) or IPv6 prefix length(s)' })
      .option('gateway', { type: 'string', array: true, describe: 'default gateway(s)' })
      .option('dns', { type: 'string', array: true, describe: 'DNS server(s)' }),
  handler: async (argv) => {
    const vm = oneName(argv.name, 'set-vmnetworkadapter');
    const c = await connectHost();
    try {
      requireOnline(c);
      const out = await c.call('POST', `/vms/${encodeURIComponent(vm)}/network-adapters/static-ip`, {
        ...(argv.adapter === undefined ? {} : { adapter: argv.adapter }),
        ipAddresses: namesOf(argv.staticIp),
        subnets: namesOf(argv.subnet),
        gateways: namesOf(argv.gateway),
        dnsServers: namesOf(argv.dns),
      });
      if (argv.json) printJson(out);
    } finally {
      await c.close();
    }
  },
};
