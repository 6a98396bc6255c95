/**
 * `hvis copy-vmfile` as a user runs it: a separate CLI process against a running `hvis up` (temporary
 * HVIS_HOME), our guest daemon writing into a temporary folder. Exit codes, Copy-VMFile's error texts,
 * `--json`, and Ctrl-C (SIGINT to the CLI mid-copy) → CANCEL_FCOPY → nothing partial in the guest.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  ftruncateSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
} from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { VmView } from '../../src/host/vm-view.ts';
import { HVIS_MAIN, hvis, spawnUp, until } from './run-cli.ts';

const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;
const GSI = 'Guest Service Interface';

/** Open files of `pid` that are unnamed O_TMPFILEs in `dir` (the copy our daemon is writing). */
function tmpfilesIn(pid: number, dir: string): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const l = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (l.startsWith(`${dir}/#`) && l.endsWith('(deleted)')) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

test('hvis copy-vmfile against hvis up: disabled service, missing folder, overwrite, --json, Ctrl-C cancels', async () => {
  const h = await mkdtemp(join(tmpdir(), 'hvis-copy-cli-'));
  const guest = join(h, 'guest');
  await mkdir(guest);
  const small = join(h, 'small ünï.txt');
  writeFileSync(small, 'hello from the host\n');
  const up = spawnUp(h, ['--exit-after', '120', '--json', '--api-port', '0']);
  try {
    const view = async (): Promise<VmView | undefined> => {
      const r = await hvis(h, ['get-vm', 'vm1', '--json']);
      return r.code === 0 ? (JSON.parse(r.stdout) as VmView[])[0] : undefined;
    };
    await until(
      async () => existsSync(join(h, 'hvis.sock')) && (await view())?.State === 'Running',
      'vm1 Running',
    );
    const copy = (dst: string, ...more: string[]) =>
      hvis(h, [
        'copy-vmfile',
        'vm1',
        '--source-path',
        small,
        '--destination-path',
        dst,
        '--file-source',
        'Host',
        ...more,
      ]);

    // Disabled by default, as on Hyper-V.
    const off = await copy(join(guest, 'a.txt'));
    assert.equal(off.code, EXIT_FAILURE, off.stderr);
    assert.match(
      off.stderr,
      /Failed to initiate copying files to the guest: the 'Guest Service Interface' integration service of VM 'vm1' is disabled; enable it with: hvis enable-vmintegrationservice/,
    );
    assert.ok(!existsSync(join(guest, 'a.txt')));

    // Bad input is a usage error with the right form named.
    const fromGuest = await hvis(h, [
      'copy-vmfile',
      'vm1',
      '--source-path',
      small,
      '--destination-path',
      '/tmp/a',
      '--file-source',
      'Guest',
    ]);
    assert.equal(fromGuest.code, EXIT_USAGE);
    assert.match(fromGuest.stderr, /needs -FileSource Host \(got 'Guest'\)/);
    const twice = await copy(join(guest, 'a.txt'), '--file-source', 'Guest');
    assert.equal(twice.code, EXIT_USAGE);
    assert.match(twice.stderr, /--file-source was given 2 times; give it once/);

    const on = await hvis(h, ['enable-vmintegrationservice', GSI, '--vm-name', 'vm1']);
    assert.equal(on.code, 0, on.stderr);
    await until(
      async () =>
        (await view())?.IntegrationServices.find((s) => s.Name === GSI)?.PrimaryStatusDescription === 'OK',
      'Guest Service Interface OK',
    );

    // A copy with --json reports what was copied; the file arrives intact with its non-ASCII name.
    const ok = await copy(join(guest, 'small ünï.txt'), '--json');
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(JSON.parse(ok.stdout), {
      VMName: 'vm1',
      SourcePath: small,
      DestinationPath: join(guest, 'small ünï.txt'),
      Bytes: 20,
    });
    assert.equal(readFileSync(join(guest, 'small ünï.txt'), 'utf8'), 'hello from the host\n');

    // Overwrite without --force: Copy-VMFile's error with the Windows text of ERROR_FILE_EXISTS.
    writeFileSync(join(guest, 'old.txt'), 'old contents');
    const exists = await copy(join(guest, 'old.txt'));
    assert.equal(exists.code, EXIT_FAILURE);
    assert.match(
      exists.stderr,
      /Failed to copy the source file '.*small ünï\.txt' to the destination '.*old\.txt' in the guest of 'vm1': The file exists\. \(0x80070050\)/,
    );
    assert.equal(readFileSync(join(guest, 'old.txt'), 'utf8'), 'old contents');

    // A missing folder fails without --create-full-path, and is created with it.
    const deep = join(guest, 'x', 'y', 'z.txt');
    const missing = await copy(deep);
    assert.equal(missing.code, EXIT_FAILURE);
    assert.match(
      missing.stderr,
      /Failed to copy the source file .* in the guest of 'vm1': Unspecified error \(0x80004005\)/,
    );
    assert.ok(!existsSync(join(guest, 'x')));
    const made = await copy(deep, '--create-full-path');
    assert.equal(made.code, 0, made.stderr);
    assert.equal(readFileSync(deep, 'utf8'), 'hello from the host\n');

    // Ctrl-C mid-copy of a large file: the guest gets CANCEL and the old file stays as it was.
    const big = join(h, 'big.bin');
    const fd = openSync(big, 'w');
    ftruncateSync(fd, 1024 ** 3);
    closeSync(fd);
    const cli = spawn(
      process.execPath,
      [
        HVIS_MAIN,
        'copy-vmfile',
        'vm1',
        '--source-path',
        big,
        '--destination-path',
        join(guest, 'old.txt'),
        '--file-source',
        'Host',
        '--force',
      ],
      { env: { ...process.env, HVIS_HOME: h, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let err = '';
    cli.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
    });
    const exit = new Promise<number | null>((r) => cli.once('exit', (c) => r(c)));
    // The copy is under way once our daemon holds an unnamed O_TMPFILE in the folder.
    await until(() => tmpfilesIn(up.child.pid!, guest) === 1, 'the guest daemon to open its temporary file');
    cli.kill('SIGINT');
    assert.equal(await exit, EXIT_FAILURE, err);
    assert.match(err, /Copy-VMFile cancelled; the guest discards the partial file/);
    await until(() => tmpfilesIn(up.child.pid!, guest) === 0, 'the guest daemon to drop its temporary file');
    assert.equal(readFileSync(join(guest, 'old.txt'), 'utf8'), 'old contents');
    assert.deepEqual(readdirSync(guest).sort(), ['old.txt', 'small ünï.txt', 'x']);
    // The channel is usable again after the cancel.
    const after = await copy(join(guest, 'after.txt'));
    assert.equal(after.code, 0, after.stderr);
  } finally {
    up.child.kill('SIGINT');
    await up.exit;
    await rm(h, { recursive: true, force: true });
  }
});
