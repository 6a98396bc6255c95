/**
 * Every `hvis` command, one yargs CommandModule per file (or group of related cmdlets).
 * Add a command by importing its module here; keep one import line per module.
 */
import type { CommandModule } from 'yargs';

export const commands: CommandModule[] = [];
