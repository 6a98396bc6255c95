/**
 * `hvis get-vmintegrationservice [-VMName] <String[]> [[-Name] <String[]>]` — Get-VMIntegrationService:
 * each service's Enabled flag, PrimaryStatusDescription ("OK", "No Contact", "Lost Communication"),
 * SecondaryStatusDescription and (ours) the negotiated ProtocolVersion. Works without a running host.
 */
import type { CommandModule } from 'yargs';
import type { IntegrationServiceView, VmView } from '../../host/vm-view.ts';
import { connectHost, query } from '../client.ts';
import { printJson } from '../output.ts';
import { namesOf, requireNames } from '../vm-args.ts';
import { formatIcTable } from '../vm-output.ts';

interface Args {
  vmName?: string[] | undefined;
  name?: string[] | undefined;
  json?: boolean | undefined;
}

export const getVmIntegrationServiceCommand: CommandModule<object, Args> = {
  command: 'get-vmintegrationservice [vm-name] [name..]',
  describe: 'Get-VMIntegrationService: integration services of VMs with their status and negotiated version',
  builder: (y) =>
    y
      .positional('vm-name', { type: 'string', array: true, describe: 'VM name(s); wildcards allowed' })
      .positional('name', {
        type: 'string',
        array: true,
        describe: "service name(s), e.g. 'Heartbeat' 'Time Synchronization'",
      }),
  handler: async (argv) => {
    const vmNames = requireNames(argv.vmName, 'get-vmintegrationservice', 'VM', '--vm-name');
    const c = await connectHost();
    try {
      const vms = await c.call<VmView[]>('GET', `/vms${query({ name: vmNames })}`);
      const out: IntegrationServiceView[] = [];
      for (const vm of vms) {
        out.push(
          ...(await c.call<IntegrationServiceView[]>(
            'GET',
            `/vms/${encodeURIComponent(vm.Name)}/integration-services${query({ name: namesOf(argv.name) })}`,
          )),
        );
      }
      if (argv.json) printJson(out);
      else process.stdout.write(out.length > 0 ? formatIcTable(out) : '');
    } finally {
      await c.close();
    }
  },
};
