/**
 * `hvis remove-vm [-Name] <String[]> [-Force]` — Remove-VM: deletes VM configurations (virtual hard disks
 * are kept, as Hyper-V keeps them). A VM that is not Off needs `--force`, which turns it off first.
 */
import type { CommandModule } from 'yargs';
import type { VmView } from '../../host/vm-view.ts';
import { connectHost, query } from '../client.ts';
import { requireNames, withVmNames } from '../vm-args.ts';

export const removeVmCommand: CommandModule<
  object,
  { name?: string[] | undefined; force?: boolean | undefined }
> = {
  command: 'remove-vm [name..]',
  describe: 'Remove-VM: delete virtual machines (their disks stay); --force turns a running VM off first',
  builder: (y) =>
    withVmNames(y).option('force', { type: 'boolean', describe: 'turn the VM off if it is running' }),
  handler: async (argv) => {
    const names = requireNames(argv.name, 'remove-vm');
    const c = await connectHost();
    try {
      const vms = await c.call<VmView[]>('GET', `/vms${query({ name: names })}`);
      for (const vm of vms) {
        await c.call(
          'DELETE',
          `/vms/${encodeURIComponent(vm.Name)}${query({ force: argv.force === true ? true : undefined })}`,
        );
      }
    } finally {
      await c.close();
    }
  },
};
