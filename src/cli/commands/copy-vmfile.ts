/**
 * `hvis copy-vmfile [-Name] <vm> -SourcePath <host file> -DestinationPath <guest path> [-CreateFullPath]
 * [-Force] -FileSource Host` — Copy-VMFile: copies a host file into a running guest through the Guest
 * Service Interface (disabled by default, as on Hyper-V: `hvis enable-vmintegrationservice`). Needs a
 * running host (`hvis up`). Shows a progress bar on a TTY; Ctrl-C cancels and the guest keeps no partial file.
 */
import { request } from 'node:http';
import { resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { errorFromBody } from '../../host/api/errors.ts';
import { API_PREFIX } from '../../host/api/routes.ts';
import { homePaths } from '../../host/home.ts';
import { HvError } from '../../protocol/errors.ts';
import { connectHost } from '../client.ts';
import { printJson } from '../output.ts';
import { oneName, requireOnline } from '../vm-args.ts';

interface Args {
  name?: string[] | string | undefined;
  'source-path'?: string | undefined;
  'destination-path'?: string | undefined;
  'create-full-path'?: boolean | undefined;
  force?: boolean | undefined;
  'file-source'?: string | undefined;
  json?: boolean | undefined;
}

const bar = (done: number, total: number) => {
  const pct = total === 0 ? 100 : Math.floor((done / total) * 100);
  const w = 30;
  const fill = Math.round((pct / 100) * w);
  return `\rCopy-VMFile [${'#'.repeat(fill)}${' '.repeat(w - fill)}] ${pct}% (${done}/${total} bytes)`;
};

/** Streams the NDJSON answer of the copy route; resolves with the byte count, rejects with HvError. */
function streamCopy(socketPath: string, vm: string, body: unknown, tty: boolean): Promise<number> {
  return new Promise((resolveP, reject) => {
    const payload = JSON.stringify(body);
    const req = request(
      {
        socketPath,
        method: 'POST',
        path: `${API_PREFIX}/vms/${encodeURIComponent(vm)}/copy-file`,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        let buf = '';
        let settled = false;
        const handle = (line: string) => {
          if (!line) return;
          const o = JSON.parse(line) as {
            progress?: { done: number; total: number };
            result?: { bytes: number };
            error?: unknown;
          };
          if (o.progress && tty) process.stderr.write(bar(o.progress.done, o.progress.total));
          if (o.result) {
            settled = true;
            if (tty) process.stderr.write(`${bar(o.result.bytes, o.result.bytes)}\n`);
            resolveP(o.result.bytes);
          }
          if (o.error !== undefined) {
            settled = true;
            if (tty) process.stderr.write('\n');
            reject(errorFromBody(o, res.statusCode ?? 500));
          }
        };
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          buf += c;
          let i = buf.indexOf('\n');
          while (i >= 0) {
            handle(buf.slice(0, i));
            buf = buf.slice(i + 1);
            i = buf.indexOf('\n');
          }
        });
        res.on('end', () => {
          if (res.statusCode && res.statusCode >= 400 && !settled) {
            try {
              reject(errorFromBody(JSON.parse(buf), res.statusCode));
            } catch {
              reject(new HvError('HV_ERR_INTERNAL', `management API answered HTTP ${res.statusCode}`));
            }
          } else if (!settled)
            reject(new HvError('HV_ERR_IO', 'the hvis host ended the copy without a result'));
        });
      },
    );
    req.on('error', reject);
    // Ctrl-C: closing the connection makes the host send CANCEL_FCOPY; the guest discards the partial file.
    const onSigint = () => {
      req.destroy();
      reject(
        new HvError('HV_ERR_INVALID_STATE', 'Copy-VMFile cancelled; the guest discards the partial file'),
      );
    };
    process.once('SIGINT', onSigint);
    req.on('close', () => process.removeListener('SIGINT', onSigint));
    req.end(payload);
  });
}

/** yargs gives an array when a flag is repeated. @throws HvError `HV_ERR_INVALID_ARGUMENT` then. */
function single(v: unknown, flag: string): string | undefined {
  if (v === undefined || typeof v === 'string') return v;
  throw new HvError(
    'HV_ERR_INVALID_ARGUMENT',
    `--${flag} was given ${Array.isArray(v) ? `${v.length} times` : 'without a value'}; give it once`,
  );
}

export const copyVmFileCommand: CommandModule<object, Args> = {
  command: 'copy-vmfile [name..]',
  describe: 'Copy-VMFile: copy a host file into a running guest (Guest Service Interface)',
  builder: (y) =>
    y
      .positional('name', { type: 'string', array: true, describe: 'VM name (-Name, -VMName)' })
      .option('source-path', { type: 'string', describe: 'host file to copy (-SourcePath)' })
      .option('destination-path', { type: 'string', describe: 'absolute path of the file in the guest' })
      .option('create-full-path', { type: 'boolean', describe: 'create missing folders in the guest' })
      .option('force', { type: 'boolean', describe: 'overwrite an existing file in the guest' })
      .option('file-source', { type: 'string', describe: 'where the file comes from: Host (the only value)' })
      .option('json', { type: 'boolean', describe: 'print the result as JSON' }),
  handler: async (argv) => {
    const vm = oneName(argv.name, 'VM');
    const src = single(argv['source-path'], 'source-path');
    const dst = single(argv['destination-path'], 'destination-path');
    const from = single(argv['file-source'], 'file-source');
    if (!src || !dst) {
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        'copy-vmfile needs --source-path <host file> and --destination-path <absolute guest path>',
      );
    }
    if ((from ?? '').toLowerCase() !== 'host') {
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `Copy-VMFile needs -FileSource Host (got '${from ?? ''}'): only host-to-guest copies exist`,
      );
    }
    const c = await connectHost();
    try {
      requireOnline(c);
    } finally {
      await c.close();
    }
    const bytes = await streamCopy(
      homePaths().socket,
      vm,
      {
        sourcePath: resolve(src),
        destinationPath: dst,
        createFullPath: argv['create-full-path'] === true,
        force: argv.force === true,
        fileSource: 'Host',
      },
      process.stderr.isTTY === true && argv.json !== true,
    );
    if (argv.json) printJson({ VMName: vm, SourcePath: resolve(src), DestinationPath: dst, Bytes: bytes });
  },
};
