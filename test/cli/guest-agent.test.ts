/**
 * `hvis up --guest-agent hyperv-daemons`: Debian's hv_kvp_daemon, hv_fcopy_daemon and hv_vss_daemon run
 * sandboxed in place of ours (src/host/guest-agent.ts), driven by a user's CLI commands in a second process
 * (temporary HVIS_HOME): the integration services they back are OK, a copy-vmfile lands in the fcopy
 * sandbox's guest root (and cannot reach the machine's own files), and a production checkpoint goes
 * through the real VSS daemon, whose (fake) FIFREEZE/FITHAW the shim logs.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { VSS_FAKE_MOUNTS } from '../../src/host/guest-agent.ts';
import { requirePeer } from '../peers.ts';
import { hvis, spawnUp, until } from './run-cli.ts';

const GSI = 'Guest Service Interface';

const readText = (file: string): string => (existsSync(file) ? readFileSync(file, 'utf8') : '');

interface IcRow {
  Name: string;
  Enabled: boolean;
  PrimaryStatusDescription: string | null;
}

test("hvis up --guest-agent hyperv-daemons: Debian's KVP, fcopy and VSS daemons serve the VM", async () => {
  requirePeer('hv_kvp_daemon', 'hyperv-daemons');
  requirePeer('hv_fcopy_daemon', 'hyperv-daemons');
  requirePeer('hv_vss_daemon', 'hyperv-daemons');
  requirePeer('unshare', 'util-linux');
  requirePeer('gcc', 'gcc');
  const h = await mkdtemp(join(tmpdir(), 'hvis-agent-'));
  const guestDir = join(h, 'guests', 'vm1');
  const up = spawnUp(h, [
    '--exit-after',
    '120',
    '--json',
    '--api-port',
    '0',
    '--guest-agent',
    'hyperv-daemons',
  ]);
  try {
    const services = async (): Promise<IcRow[]> => {
      const r = await hvis(h, ['get-vmintegrationservice', 'vm1', '--json']);
      return r.code === 0 ? (JSON.parse(r.stdout) as IcRow[]) : [];
    };
    const ok = (rows: IcRow[], name: string) =>
      rows.find((s) => s.Name === name)?.PrimaryStatusDescription === 'OK';
    await until(
      async () => existsSync(join(h, 'hvis.sock')) && ok(await services(), 'Key-Value Pair Exchange'),
      'Key-Value Pair Exchange OK (hv_kvp_daemon registered)',
      60_000,
    );
    const on = await hvis(h, ['enable-vmintegrationservice', GSI, '--vm-name', 'vm1']);
    assert.equal(on.code, 0, on.stderr);
    await until(
      async () => {
        const rows = await services();
        return ok(rows, GSI) && ok(rows, 'VSS') && ok(rows, 'Key-Value Pair Exchange');
      },
      'Guest Service Interface and VSS OK',
      30_000,
    );
    // OK for file copy and VSS means the guest driver negotiated (Linux's hv_fcopy and hv_vss answer
    // NEGOTIATE before any daemon registers); until the daemon's handshake is answered the driver fails
    // START_FILE_COPY and FREEZE with HV_E_FAIL, so wait for each daemon to log the kernel's answer.
    const handshaken = (service: string) =>
      /kernel module version/.test(readText(join(guestDir, `hv_${service}_daemon.log`)));
    await until(
      () => handshaken('fcopy') && handshaken('vss'),
      'hv_fcopy_daemon and hv_vss_daemon registered ("kernel module version" in their logs)',
      30_000,
    );

    // A copy lands in the fcopy sandbox's /var/lib, which is <HVIS_HOME>/guests/vm1/fcopy-root outside.
    // (No --create-full-path: Linux's daemon creates all folders but the last, see test/fcopy-parity.)
    const name = `hello wörld ${process.pid}-${Date.now()}.txt`;
    const src = join(h, name);
    writeFileSync(src, 'from the host through hv_fcopy_daemon\n');
    const copy = (dst: string) =>
      hvis(h, [
        'copy-vmfile',
        'vm1',
        '--source-path',
        src,
        '--destination-path',
        dst,
        '--file-source',
        'Host',
      ]);
    const c = await copy('/var/lib/');
    assert.equal(c.code, 0, c.stderr);
    assert.equal(
      readFileSync(join(guestDir, 'fcopy-root', name), 'utf8'),
      'from the host through hv_fcopy_daemon\n',
    );
    // Outside the guest root everything is read-only in the sandbox: the machine's /tmp stays untouched.
    const outside = await copy('/tmp/');
    assert.equal(outside.code, 1, outside.stderr);
    assert.match(outside.stderr, /Failed to copy the source file/);
    assert.ok(!existsSync(`/tmp/${name}`));

    // A production checkpoint freezes through the real hv_vss_daemon: the shim logs its ioctls, which
    // touch only the fake table's mount points (tmpfs inside the sandbox) and are not issued.
    const cp = await hvis(h, [
      'checkpoint-vm',
      'vm1',
      '-SnapshotName',
      'agent',
      '-SnapshotType',
      'Production',
      '--json',
    ]);
    assert.equal(cp.code, 0, cp.stderr);
    assert.equal((JSON.parse(cp.stdout) as { SnapshotType: string }).SnapshotType, 'Production');
    const ioctls = [
      ...readFileSync(join(guestDir, 'hv_vss_daemon.log'), 'utf8').matchAll(/FAKE (FIFREEZE|FITHAW) (\S+)/g),
    ].map((m) => `${m[1]} ${m[2]}`);
    // Linux's daemon walks the table in order for both (vmbus-core-ics.md §7.4, real-peers.md §3.2).
    assert.deepEqual(ioctls, [
      ...VSS_FAKE_MOUNTS.map((m) => `FIFREEZE ${m}`),
      ...VSS_FAKE_MOUNTS.map((m) => `FITHAW ${m}`),
    ]);
  } finally {
    up.child.kill('SIGINT');
    await up.exit;
    if (!process.env.KEEP) await rm(h, { recursive: true, force: true });
  }
  assert.match(up.stderr.join(''), /guest unloaded VMBus|shut/i);
});
