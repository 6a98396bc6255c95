/**
 * The parameters the VM cmdlets share: `-Name` (position 0, alias `-VMName`, comma-separated lists as
 * PowerShell binds `String[]`), and the host connection.
 */
import type { Argv } from 'yargs';
import { HvError } from '../protocol/errors.ts';
import type { ApiClient } from './client.ts';

/** Adds `[name..]` with `--name`/`--vm-name`. */
export function withVmNames<T>(
  y: Argv<T>,
  describe = 'VM name(s); wildcards * ? [] allowed; comma-separated lists too',
) {
  return y.positional('name', { type: 'string', array: true, describe, alias: ['vm-name'] });
}

/** Flattens yargs' values (repeated flags, positionals, `a,b`) into a list of non-empty names. */
export function namesOf(v: unknown): string[] {
  const raw = v === undefined ? [] : Array.isArray(v) ? v : [v];
  return raw
    .flatMap((x) => String(x).split(','))
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/**
 * At least one name (positional or `--name`).
 * @throws HvError `HV_ERR_INVALID_ARGUMENT` when none is given.
 */
export function requireNames(v: unknown, cmd: string, what = 'VM', flag = '--name'): string[] {
  const n = namesOf(v);
  if (n.length === 0) {
    throw new HvError('HV_ERR_INVALID_ARGUMENT', `${cmd}: name the ${what} (positionally or with ${flag})`);
  }
  return n;
}

/**
 * Exactly one VM name, for cmdlets that act on one VM.
 * @throws HvError `HV_ERR_INVALID_ARGUMENT` when none or several are given.
 */
export function oneName(v: unknown, what: string): string {
  const n = namesOf(v);
  if (n.length !== 1) {
    throw new HvError(
      'HV_ERR_INVALID_ARGUMENT',
      `${what}: give exactly one VM name (got ${n.length === 0 ? 'none' : n.join(', ')})`,
    );
  }
  return n[0]!;
}

/** @throws HvError `HV_ERR_INVALID_STATE` ("no hvis host is running...") when the client is offline. */
export function requireOnline(c: ApiClient): void {
  if (!c.online)
    throw new HvError('HV_ERR_INVALID_STATE', "no hvis host is running: start one with 'hvis up'");
}
