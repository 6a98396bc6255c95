/**
 * `hvis` entry point: normalizes PowerShell-style arguments and dispatches to the command modules.
 * Exit codes: 0 success, 1 operation failed, 2 usage error.
 */
import yargs from 'yargs';
import { HvError } from '../protocol/errors.ts';
import { normalizeArgv } from './argv.ts';
import { commands } from './commands/index.ts';
import { reportError } from './output.ts';

export async function main(argv: readonly string[]): Promise<number> {
  const args = normalizeArgv(argv);
  const json = args.includes('--json');
  const parser = yargs(args)
    .scriptName('hvis')
    .parserConfiguration({ 'short-option-groups': false, 'camel-case-expansion': true })
    .option('json', {
      type: 'boolean',
      describe: "print objects as JSON with the Hyper-V cmdlets' property names",
    })
    .command(commands)
    .demandCommand(1, 'name a command: hvis --help lists them')
    .strict()
    .recommendCommands()
    .help()
    .alias('help', ['?'])
    .version(false)
    .wrap(Math.min(110, process.stdout.columns ?? 110))
    .fail((msg, err) => {
      if (err) throw err;
      // Throwing stops yargs from running the command after a usage error.
      throw new HvError('HV_ERR_INVALID_ARGUMENT', `${msg}\nRun 'hvis --help' for usage.`);
    });
  try {
    await parser.parseAsync();
  } catch (err) {
    return reportError(err, json);
  }
  return (process.exitCode as number | undefined) || 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.exitCode = reportError(err, false);
  },
);
