/**
 * Output helpers: PowerShell-style tables and lists on stdout, `--json` objects with the cmdlets' property
 * names, and errors on stderr without stack traces for user errors.
 */
import { HvError } from '../protocol/errors.ts';

/** Formats rows like PowerShell's default Format-Table: header, dashed underline, left-aligned columns. */
export function formatTable(rows: readonly Record<string, unknown>[], columns: readonly string[]): string {
  const cell = (v: unknown): string =>
    v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => v.padEnd(widths[i]!))
      .join(' ')
      .trimEnd();
  const out = [line([...columns]), line(widths.map((w) => '-'.repeat(w)))];
  for (const r of rows) out.push(line(columns.map((c) => cell(r[c]))));
  return `\n${out.join('\n')}\n`;
}

/** Formats one object like Format-List: `Name : value` lines with aligned colons. */
export function formatList(obj: Record<string, unknown>, keys: readonly string[] = Object.keys(obj)): string {
  const w = Math.max(...keys.map((k) => k.length));
  const val = (v: unknown) =>
    v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return `\n${keys.map((k) => `${k.padEnd(w)} : ${val(obj[k])}`).join('\n')}\n`;
}

/** Prints `value` as JSON on stdout (one document). */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** PowerShell error categories used in `--json` error objects. */
const CATEGORY: Record<string, string> = {
  HV_ERR_INVALID_ARGUMENT: 'InvalidArgument',
  HV_ERR_NOT_FOUND: 'ObjectNotFound',
  HV_ERR_ALREADY_EXISTS: 'ResourceExists',
  HV_ERR_INVALID_STATE: 'InvalidOperation',
  HV_ERR_TIMEOUT: 'OperationTimeout',
  HV_ERR_UNSUPPORTED: 'NotImplemented',
  HV_ERR_CORRUPT: 'InvalidData',
  HV_ERR_IO: 'WriteError',
};

/** Exit codes (sysexits-flavoured): 1 operation failed, 2 usage error. */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/**
 * Reports an error on stderr and returns the exit code. HvErrors are user-facing (message only); anything
 * else is a bug and keeps its stack.
 */
export function reportError(err: unknown, json: boolean): number {
  if (err instanceof HvError) {
    if (json) {
      process.stderr.write(
        `${JSON.stringify({ error: { code: err.code, category: CATEGORY[err.code] ?? 'NotSpecified', message: err.message, target: err.details ?? {} } })}\n`,
      );
    } else {
      process.stderr.write(`hvis: ${err.message}\n`);
    }
    return err.code === 'HV_ERR_INVALID_ARGUMENT' ? EXIT_USAGE : EXIT_FAILURE;
  }
  process.stderr.write(
    `hvis: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  return EXIT_FAILURE;
}
