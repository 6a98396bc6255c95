/**
 * `hvis lsvmbus [<vm-name>] [-v | -vv]` — the guest's view of its VMBus, as Linux's `lsvmbus`
 * (tools/hv/lsvmbus) prints it inside a guest: one `VMBUS ID nn: <description>` line per channel; `-v` adds
 * the class id, `-vv` the device (instance) id. Not a Hyper-V cmdlet. Needs a running host.
 */
import type { CommandModule } from 'yargs';
import type { LsvmbusEntry, VmView } from '../../host/vm-view.ts';
import { HvError } from '../../protocol/errors.ts';
import { connectHost } from '../client.ts';
import { printJson } from '../output.ts';
import { oneName, requireOnline } from '../vm-args.ts';
import { formatLsvmbus } from '../vm-output.ts';

interface Args {
  name?: string[] | undefined;
  verbose?: number | undefined;
  vv?: boolean | undefined;
  json?: boolean | undefined;
}

export const lsvmbusCommand: CommandModule<object, Args> = {
  command: 'lsvmbus [name..]',
  describe: "lsvmbus (Linux tools/hv): the VMBus devices a running VM's guest sees (not a Hyper-V cmdlet)",
  builder: (y) =>
    y
      .positional('name', {
        type: 'string',
        array: true,
        alias: ['vm-name'],
        describe: 'VM (default: the only running VM)',
      })
      .option('verbose', { alias: 'v', type: 'count', describe: 'add class ids (-v) and device ids (-vv)' })
      .option('vv', { type: 'boolean', hidden: true }),
  handler: async (argv) => {
    const c = await connectHost();
    try {
      requireOnline(c);
      let name: string;
      if (argv.name !== undefined && argv.name.length > 0) name = oneName(argv.name, 'lsvmbus');
      else {
        const running = (await c.call<VmView[]>('GET', '/vms')).filter((v) => v.State === 'Running');
        if (running.length !== 1) {
          throw new HvError(
            'HV_ERR_INVALID_ARGUMENT',
            `lsvmbus: name the VM (${running.length === 0 ? 'no VM is running' : `running: ${running.map((v) => v.Name).join(', ')}`})`,
          );
        }
        name = running[0]!.Name;
      }
      const entries = await c.call<LsvmbusEntry[]>('GET', `/vms/${encodeURIComponent(name)}/lsvmbus`);
      if (argv.json) printJson(entries);
      else process.stdout.write(formatLsvmbus(entries, argv.vv ? 2 : (argv.verbose ?? 0)));
    } finally {
      await c.close();
    }
  },
};
