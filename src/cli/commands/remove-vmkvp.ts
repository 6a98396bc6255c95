/** `hvis remove-vmkvp <vm> <key>` — see kvp-item-command.ts (no Hyper-V cmdlet: WMI only). */
import { kvpItemCommand } from './kvp-item-command.ts';

export const removeVmKvpCommand = kvpItemCommand('remove');
