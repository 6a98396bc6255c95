/**
 * Shared body of `enable-vmintegrationservice` and `disable-vmintegrationservice`
 * (`[-Name] <String[]> [-VMName] <String[]> [-Passthru]`, Name at position 0 as in the cmdlets). On a
 * running VM the service's channel is offered or rescinded at once; on a stopped VM the flag is stored.
 */
import type { CommandModule } from 'yargs';
import type { IntegrationServiceView, VmView } from '../../host/vm-view.ts';
import { connectHost, query } from '../client.ts';
import { printJson } from '../output.ts';
import { requireNames } from '../vm-args.ts';
import { formatIcTable } from '../vm-output.ts';

export interface ToggleArgs {
  vmName?: string[] | undefined;
  name?: string[] | undefined;
  json?: boolean | undefined;
  passthru?: boolean | undefined;
}

export function toggleCommand(action: 'enable' | 'disable'): CommandModule<object, ToggleArgs> {
  const cmdlet = action === 'enable' ? 'Enable-VMIntegrationService' : 'Disable-VMIntegrationService';
  return {
    command: `${action}-vmintegrationservice [name..]`,
    describe: `${cmdlet}: ${action} integration services of a VM (offered/rescinded live on a running VM)`,
    builder: (y) =>
      y
        .positional('name', {
          type: 'string',
          array: true,
          describe: "service name(s), e.g. Shutdown, 'Time Synchronization'",
        })
        .option('vm-name', {
          type: 'string',
          array: true,
          demandOption: 'give the VM with --vm-name',
          describe: 'VM name(s)',
        })
        .option('passthru', { type: 'boolean', describe: 'print the changed services' }),
    handler: async (argv) => {
      const services = requireNames(argv.name, `${action}-vmintegrationservice`, 'service');
      const c = await connectHost();
      try {
        const vms = await c.call<VmView[]>(
          'GET',
          `/vms${query({ name: requireNames(argv.vmName, `${action}-vmintegrationservice`, 'VM', '--vm-name') })}`,
        );
        const out: IntegrationServiceView[] = [];
        for (const vm of vms) {
          out.push(
            ...(await c.call<IntegrationServiceView[]>(
              'POST',
              `/vms/${encodeURIComponent(vm.Name)}/integration-services/${action}`,
              { name: services },
            )),
          );
        }
        if (argv.passthru) {
          if (argv.json) printJson(out);
          else process.stdout.write(formatIcTable(out));
        }
      } finally {
        await c.close();
      }
    },
  };
}
