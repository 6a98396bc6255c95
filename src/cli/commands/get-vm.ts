/**
 * `hvis get-vm [[-Name] <String[]>]` — Get-VM: lists VMs with their state. Works without a running host
 * (configurations are read from `$HVIS_HOME/vms/`, every VM shows Off).
 */
import type { CommandModule } from 'yargs';
import type { VmView } from '../../host/vm-view.ts';
import { connectHost, query } from '../client.ts';
import { printJson } from '../output.ts';
import { namesOf, withVmNames } from '../vm-args.ts';
import { formatVmTable } from '../vm-output.ts';

export const getVmCommand: CommandModule<
  object,
  { name?: string[] | undefined; json?: boolean | undefined }
> = {
  command: 'get-vm [name..]',
  describe: 'Get-VM: list virtual machines (Name State CPUUsage(%) MemoryAssigned(M) Uptime Status Version)',
  builder: (y) => withVmNames(y),
  handler: async (argv) => {
    const c = await connectHost();
    try {
      const vms = await c.call<VmView[]>('GET', `/vms${query({ name: namesOf(argv.name) })}`);
      const host = await c.call<{ ConfigurationProblems: string[] }>('GET', '/host');
      for (const p of host.ConfigurationProblems) process.stderr.write(`hvis: warning: ${p}\n`);
      if (argv.json) printJson(vms);
      else process.stdout.write(vms.length > 0 ? formatVmTable(vms) : '');
    } finally {
      await c.close();
    }
  },
};
