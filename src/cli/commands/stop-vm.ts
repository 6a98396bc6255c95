/**
 * `hvis stop-vm [-Name] <String[]> [-TurnOff] [-Force] [-Passthru]` — Stop-VM. Default: shut the guest
 * down through the Shutdown integration service and wait for it to power off. `--turn-off`: power off at
 * once. `--force`: shut down, then power off if the guest has not stopped within `--timeout` seconds
 * (Hyper-V waits five minutes, the default here too).
 */
import type { CommandModule } from 'yargs';
import type { VmView } from '../../host/vm-view.ts';
import { HvError } from '../../protocol/errors.ts';
import { connectHost, query } from '../client.ts';
import { printJson } from '../output.ts';
import { requireNames, requireOnline, withVmNames } from '../vm-args.ts';
import { formatVmTable } from '../vm-output.ts';

interface Args {
  name?: string[] | undefined;
  json?: boolean | undefined;
  turnOff?: boolean | undefined;
  force?: boolean | undefined;
  timeout?: number | undefined;
  passthru?: boolean | undefined;
}

export const stopVmCommand: CommandModule<object, Args> = {
  command: 'stop-vm [name..]',
  describe:
    'Stop-VM: shut down (Shutdown IC), --turn-off, or --force (shut down, then power off after a timeout)',
  builder: (y) =>
    withVmNames(y)
      .option('turn-off', { type: 'boolean', describe: 'power off immediately, without asking the guest' })
      .option('force', {
        type: 'boolean',
        describe: 'power off if the guest has not shut down within --timeout',
      })
      .option('timeout', {
        type: 'number',
        describe: 'seconds the guest may take to shut down (default 300)',
      })
      .option('passthru', { type: 'boolean', describe: 'print the stopped VMs' })
      .check((a) => {
        if (
          a.timeout !== undefined &&
          (!Number.isInteger(a.timeout) || a.timeout < 0 || a.timeout > 86_400)
        ) {
          throw new HvError(
            'HV_ERR_INVALID_ARGUMENT',
            `--timeout must be whole seconds from 0 to 86400, got ${a.timeout}`,
          );
        }
        if (a.turnOff && a.force)
          throw new HvError('HV_ERR_INVALID_ARGUMENT', '--turn-off and --force exclude each other: pick one');
        return true;
      }),
  handler: async (argv) => {
    const names = requireNames(argv.name, 'stop-vm');
    const c = await connectHost();
    try {
      requireOnline(c);
      const targets = await c.call<VmView[]>('GET', `/vms${query({ name: names })}`);
      const body = {
        ...(argv.turnOff && { turnOff: true }),
        ...(argv.force && { force: true }),
        ...(argv.timeout !== undefined && { timeoutSeconds: argv.timeout }),
      };
      const out: VmView[] = [];
      for (const vm of targets)
        out.push(await c.call<VmView>('POST', `/vms/${encodeURIComponent(vm.Name)}/stop`, body));
      if (argv.passthru) {
        if (argv.json) printJson(out);
        else process.stdout.write(formatVmTable(out));
      }
    } finally {
      await c.close();
    }
  },
};
