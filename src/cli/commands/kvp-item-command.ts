/**
 * Shared body of `hvis add-vmkvp`, `set-vmkvp` and `remove-vmkvp`: host-to-guest KVP items (pool 0). Hyper-V
 * has no cmdlet: WMI Msvm_VirtualSystemManagementService AddKvpItems / ModifyKvpItems / RemoveKvpItems.
 */
import type { CommandModule } from 'yargs';
import { connectHost } from '../client.ts';
import { printJson } from '../output.ts';
import { oneName, requireOnline } from '../vm-args.ts';

export interface KvpItemArgs {
  name?: string | undefined;
  key?: string | undefined;
  value?: string | undefined;
  json?: boolean | undefined;
}

export function kvpItemCommand(verb: 'add' | 'set' | 'remove'): CommandModule<object, KvpItemArgs> {
  const wmi = verb === 'add' ? 'AddKvpItems' : verb === 'set' ? 'ModifyKvpItems' : 'RemoveKvpItems';
  const what =
    verb === 'add'
      ? 'adds a host KVP item (fails if it exists)'
      : verb === 'set'
        ? 'changes a host KVP item (creates it with --force)'
        : 'removes a host KVP item';
  return {
    command: `${verb}-vmkvp [name] [key]${verb === 'remove' ? '' : ' [value]'}`,
    describe: `${what} in the guest's pool 0 (no Hyper-V cmdlet: WMI ${wmi}); keys up to 255 characters, values up to 1023`,
    builder: (y) => {
      const b = y
        .positional('name', { type: 'string', describe: 'VM name', alias: ['vm-name'] })
        .positional('key', { type: 'string', describe: 'item name' });
      return verb === 'remove'
        ? b
        : b
            .positional('value', { type: 'string', describe: 'item data' })
            .option('force', { type: 'boolean', describe: 'set: create when missing' });
    },
    handler: async (argv) => {
      const vm = oneName(argv.name, `${verb}-vmkvp`);
      const { HvError } = await import('../../protocol/errors.ts');
      if (argv.key === undefined)
        throw new HvError('HV_ERR_INVALID_ARGUMENT', `${verb}-vmkvp: give the item name after the VM name`);
      if (verb !== 'remove' && argv.value === undefined) {
        throw new HvError('HV_ERR_INVALID_ARGUMENT', `${verb}-vmkvp: give the item data after its name`);
      }
      const c = await connectHost();
      try {
        requireOnline(c);
        const path = `/vms/${encodeURIComponent(vm)}/kvp`;
        const force = (argv as { force?: boolean }).force === true;
        const out =
          verb === 'remove'
            ? await c.call('POST', `${path}/remove`, { key: String(argv.key) })
            : await c.call('POST', path, {
                key: String(argv.key),
                value: String(argv.value),
                mode: verb === 'add' ? 'add' : force ? 'set' : 'modify',
              });
        if (argv.json) printJson(out);
      } finally {
        await c.close();
      }
    },
  };
}
