/**
 * `hvis` entry point: normalizes PowerShell-style arguments and dispatches to the command modules.
 * Exit codes: 0 success, 1 operation failed, 2 usage error.
 */
import yargs from 'yargs';
import { normalizeArgv } from './argv.ts';
import { commands } from './commands/index.ts';
import { EXIT_USAGE, reportError } from './output.ts';

export async function main(argv: readonly string[]): Promise<number> {
  const args = normalizeArgv(argv);
  const json = args.includes('--json');
  let code = 0;
  const parser = yargs(args)
    .scriptName('hvis')
    .parserConfiguration({ 'short-option-groups': false, 'camel-case-expansion': true })
    .option('json', { type: 'boolean', describe: 'print objects as JSON with the Hyper-V cmdlets\' property names' })
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
      process.stderr.write(`hvis: ${msg}\nRun 'hvis --help' for usage.\n`);
      code = EXIT_USAGE;
    });
  try {
    await parser.parseAsync();
  } catch (err) {
    return reportError(err, json);
  }
  return code || (process.exitCode as number | undefined) || 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.exitCode = reportError(err, false);
  },
);
