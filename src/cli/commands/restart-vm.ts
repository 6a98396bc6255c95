/**
 * `hvis restart-vm [-Name] <String[]> [-Force] [-Passthru] [-Wait [-For Heartbeat|IPAddress] [-Timeout <s>]]`
 * — Restart-VM: a hard restart, like powering the computer down and up again (the cmdlet's documented
 * behaviour; the guest is not asked). `--force` only skips Hyper-V's confirmation prompt, which hvis never
 * shows. `--wait` returns once the guest answers heartbeats again.
 */
import type { CommandModule } from 'yargs';
import type { VmView } from '../../host/vm-view.ts';
import { HvError } from '../../protocol/errors.ts';
import { type ApiClient, connectHost, query } from '../client.ts';
import { printJson } from '../output.ts';
import { requireNames, requireOnline, withVmNames } from '../vm-args.ts';
import { formatVmTable } from '../vm-output.ts';

interface Args {
  name?: string[] | undefined;
  json?: boolean | undefined;
  force?: boolean | undefined;
  passthru?: boolean | undefined;
  wait?: boolean | undefined;
  for?: string | undefined;
  timeout?: number | undefined;
}

/** Polls until the VM's Heartbeat is one of the Ok* values (Restart-VM -Wait -For Heartbeat). */
async function waitForHeartbeat(c: ApiClient, name: string, timeoutMs: number): Promise<VmView> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const [vm] = await c.call<VmView[]>('GET', `/vms${query({ name: [name] })}`);
    if (vm?.Heartbeat?.startsWith('Ok')) return vm;
    if (Date.now() > end) {
      throw new HvError(
        'HV_ERR_TIMEOUT',
        `VM '${name}' did not answer heartbeats within ${timeoutMs / 1000} s`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

export const restartVmCommand: CommandModule<object, Args> = {
  command: 'restart-vm [name..]',
  describe: 'Restart-VM: hard restart (power off and start); --wait for the heartbeat to return',
  builder: (y) =>
    withVmNames(y)
      .option('force', {
        type: 'boolean',
        describe: 'accepted for Restart-VM compatibility (no prompt is shown)',
      })
      .option('passthru', { type: 'boolean', describe: 'print the restarted VMs' })
      .option('wait', { type: 'boolean', describe: 'wait until the guest is back (see --for)' })
      .option('for', {
        type: 'string',
        choices: ['Heartbeat', 'IPAddress'],
        describe: 'what --wait waits for',
      })
      .option('timeout', { type: 'number', describe: 'seconds --wait may take (default 300)' })
      .check((a) => {
        if (a.for === 'IPAddress') {
          throw new HvError(
            'HV_ERR_INVALID_ARGUMENT',
            '--for IPAddress needs the Key-Value Pair Exchange service, which hvis does not implement yet; use --for Heartbeat',
          );
        }
        if (a.timeout !== undefined && !(typeof a.timeout === 'number' && a.timeout > 0)) {
          throw new HvError(
            'HV_ERR_INVALID_ARGUMENT',
            `--timeout must be a positive number of seconds, got ${a.timeout}`,
          );
        }
        return true;
      }),
  handler: async (argv) => {
    const names = requireNames(argv.name, 'restart-vm');
    const c = await connectHost();
    try {
      requireOnline(c);
      const targets = await c.call<VmView[]>('GET', `/vms${query({ name: names })}`);
      let out: VmView[] = [];
      for (const vm of targets) {
        out.push(await c.call<VmView>('POST', `/vms/${encodeURIComponent(vm.Name)}/restart`, {}));
      }
      if (argv.wait) {
        const ms = (argv.timeout ?? 300) * 1000;
        out = await Promise.all(out.map((v) => waitForHeartbeat(c, v.Name, ms)));
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
