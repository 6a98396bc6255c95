/**
 * Benchmark runner: `npm run bench -- <name> [--json]` runs dist/bench/<name>/index.js, whose
 * `run({ json })` returns the result. With `--json` the last stdout line is exactly that result as one JSON
 * value (the bench may log progress on stderr or on earlier lines); without it the result is pretty-printed.
 * Each bench lives in bench/<name>/index.ts and exports `async function run(opts: { json: boolean }): Promise<unknown>`.
 */
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { HvError, isHvError } from '../src/protocol/errors.ts';

/** The benches present next to this file (directories with an index.js once compiled). */
export function availableBenches(): string[] {
  const here = fileURLToPath(new URL('.', import.meta.url));
  return readdirSync(here, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(`${here}${d.name}/index.js`))
    .map((d) => d.name)
    .sort();
}

async function main(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  const names = argv.filter((a) => !a.startsWith('-'));
  const known = availableBenches();
  const name = names[0];
  if (names.length !== 1 || name === undefined || !known.includes(name)) {
    const what = name === undefined ? 'no benchmark given' : `unknown benchmark '${names.join(' ')}'`;
    throw new HvError(
      'HV_ERR_INVALID_ARGUMENT',
      `${what}; usage: npm run bench -- <name> [--json]; available: ${known.join(', ')}`,
    );
  }
  const mod = (await import(`./${name}/index.js`)) as { run?: (opts: { json: boolean }) => Promise<unknown> };
  if (typeof mod.run !== 'function')
    throw new HvError('HV_ERR_INTERNAL', `bench/${name}/index.ts does not export run()`);
  const result = await mod.run({ json });
  process.stdout.write(json ? `${JSON.stringify(result)}\n` : `${JSON.stringify(result, null, 2)}\n`);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(
    isHvError(e) ? `hvis bench: ${e.message}\n` : `hvis bench: ${String((e as Error)?.stack ?? e)}\n`,
  );
  process.exitCode = isHvError(e, 'HV_ERR_INVALID_ARGUMENT') ? 2 : 1;
});
