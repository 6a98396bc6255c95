/**
 * `hvis restart-vm [-Name] <String[]> [-Force] [-Passthru]` — Restart-VM: shut down through the Shutdown
 * integration service and start again; `--force` powers off instead of asking the guest (a reset).
 */
import type { CommandModule } from 'yargs';
import type { VmView } from '../../host/vm-view.ts';
import { connectHost, query } from '../client.ts';
import { printJson } from '../output.ts';
import { requireNames, requireOnline, withVmNames } from '../vm-args.ts';
import { formatVmTable } from '../vm-output.ts';

export const restartVmCommand: CommandModule<
  object,
  {
    name?: string[] | undefined;
    json?: boolean | undefined;
    force?: boolean | undefined;
    passthru?: boolean | undefined;
  }
> = {
  command: 'restart-vm [name..]',
  describe: 'Restart-VM: shut down through the guest and start again (--force: power off and start)',
  builder: (y) =>
    withVmNames(y)
      .option('force', { type: 'boolean', describe: 'reset: power off without asking the guest, then start' })
      .option('passthru', { type: 'boolean', describe: 'print the restarted VMs' }),
  handler: async (argv) => {
    const names = requireNames(argv.name, 'restart-vm');
    const c = await connectHost();
    try {
      requireOnline(c);
      const targets = await c.call<VmView[]>('GET', `/vms${query({ name: names })}`);
      const out: VmView[] = [];
      for (const vm of targets) {
        out.push(
          await c.call<VmView>(
            'POST',
            `/vms/${encodeURIComponent(vm.Name)}/restart`,
            argv.force ? { force: true } : {},
          ),
        );
      }
      if (argv.passthru) {
        if (argv.json) printJson(out);
        else process.stdout.write(formatVmTable(out));
      }
    } finally {
      await c.close();
    }
  },
};
