/** `hvis add-vmkvp <vm> <key> <value>` — see kvp-item-command.ts (no Hyper-V cmdlet: WMI only). */
import { kvpItemCommand } from './kvp-item-command.ts';

export const addVmKvpCommand = kvpItemCommand('add');
