/** `hvis start-vm [-Name] <String[]> [-Passthru]` — Start-VM; needs a running host (`hvis up`). */
import type { CommandModule } from 'yargs';
import type { VmView } from '../../host/vm-view.ts';
import { connectHost, query } from '../client.ts';
import { printJson } from '../output.ts';
import { requireNames, requireOnline, withVmNames } from '../vm-args.ts';
import { formatVmTable } from '../vm-output.ts';

export const startVmCommand: CommandModule<
  object,
  { name?: string[] | undefined; json?: boolean | undefined; passthru?: boolean | undefined }
> = {
  command: 'start-vm [name..]',
  describe: 'Start-VM: start virtual machines (through the running hvis host)',
  builder: (y) => withVmNames(y).option('passthru', { type: 'boolean', describe: 'print the started VMs' }),
  handler: async (argv) => {
    const names = requireNames(argv.name, 'start-vm');
    const c = await connectHost();
    try {
      requireOnline(c);
      const targets = await c.call<VmView[]>('GET', `/vms${query({ name: names })}`);
      const out: VmView[] = [];
      for (const vm of targets)
        out.push(await c.call<VmView>('POST', `/vms/${encodeURIComponent(vm.Name)}/start`, {}));
      if (argv.passthru) {
        if (argv.json) printJson(out);
        else process.stdout.write(formatVmTable(out));
      }
    } finally {
      await c.close();
    }
  },
};
