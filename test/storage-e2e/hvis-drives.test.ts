/**
 * Through the real `hvis` CLI: `hvis up` boots the default VM with its VHDX on the synthetic SCSI
 * controller (Get-VM shows the guest's view: Msft Virtual Disk and its size), then a second disk is hot
 * added and hot removed with add-/remove-vmharddiskdrive while the VM runs, an attached image is resized
 * online with `hvis resize-vhd` (the guest reports the new size without reattach), and a production
 * checkpoint of the running VM moves every drive onto a differencing child.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { createDisk } from '../../src/disk/open.ts';
import { hvis, spawnUp, until } from '../cli/run-cli.ts';
import { requirePeer } from '../peers.ts';

const run = promisify(execFile);

interface Drive {
  ControllerLocation: number;
  Path: string;
  GuestDisk: { Lun: number; Size: number; Vendor: string; Product: string } | null;
}

test('hvis up attaches the system VHDX through storvsc; hot add, hot remove, online resize', {
  timeout: 90_000,
}, async () => {
  const home = mkdtempSync(join(tmpdir(), 'hvis-drives-'));
  const up = spawnUp(home, ['--exit-after', '60', '--json', '--api-port', '0']);
  try {
    const drives = async () => {
      const r = await hvis(home, ['get-vmharddiskdrive', 'vm1', '--json']);
      return r.code === 0 ? (JSON.parse(r.stdout) as Drive[]) : [];
    };
    await until(
      async () => (await drives())[0]?.GuestDisk != null,
      'the guest to see the system disk',
      30_000,
    );
    const vm = JSON.parse((await hvis(home, ['get-vm', 'vm1', '--json'])).stdout) as
      | { HardDrives: Drive[] }[]
      | { HardDrives: Drive[] };
    const sys = (Array.isArray(vm) ? vm[0]! : vm).HardDrives[0]!;
    assert.deepEqual(
      { vendor: sys.GuestDisk?.Vendor, product: sys.GuestDisk?.Product, size: sys.GuestDisk?.Size },
      { vendor: 'Msft', product: 'Virtual Disk', size: 127 * 1024 ** 3 },
    );

    const extra = join(home, 'extra.vhdx');
    await (await createDisk(extra, { size: 64 * 2 ** 20, type: 'dynamic' })).close();
    const add = await hvis(home, ['add-vmharddiskdrive', 'vm1', '-Path', extra, '--json']);
    assert.equal(add.code, 0, add.stderr);
    await until(
      async () => (await drives()).find((d) => d.ControllerLocation === 1)?.GuestDisk?.Size === 64 * 2 ** 20,
      'hot-added disk seen by the guest',
    );

    const again = await hvis(home, ['add-vmharddiskdrive', 'vm1', '-Path', extra]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /already attached/);

    // Online resize of the attached image: hvis resize-vhd goes through the running host.
    const rs = await hvis(home, ['resize-vhd', extra, '--size-bytes', '128MB', '--json']);
    assert.equal(rs.code, 0, rs.stderr);
    assert.equal((JSON.parse(rs.stdout) as { Size: number }).Size, 128 * 2 ** 20);
    const minimum = await hvis(home, ['resize-vhd', extra, '--to-minimum-size']);
    assert.notEqual(minimum.code, 0);
    assert.match(minimum.stderr, /attached to a running VM: --to-minimum-size works on a detached image/);
    // The guest learns the new capacity on its next command to that LUN; a rescan (hot add of another
    // disk → ENUMERATE_BUS) sends TEST UNIT READY, which gets the unit attention.
    const third = join(home, 'third.vhdx');
    await (await createDisk(third, { size: 32 * 2 ** 20, type: 'dynamic' })).close();
    // A file no running VM has open is resized directly, also while a host runs.
    const rs3 = await hvis(home, ['resize-vhd', third, '--size-bytes', '48MB', '--json']);
    assert.equal(rs3.code, 0, rs3.stderr);
    assert.equal((JSON.parse(rs3.stdout) as { Size: number }).Size, 48 * 2 ** 20);
    assert.equal((await hvis(home, ['add-vmharddiskdrive', 'vm1', '-Path', third])).code, 0);
    await until(
      async () => (await drives()).find((d) => d.ControllerLocation === 1)?.GuestDisk?.Size === 128 * 2 ** 20,
      'guest sees the resized disk',
    );
    await until(
      async () => (await drives()).find((d) => d.ControllerLocation === 2)?.GuestDisk?.Size === 48 * 2 ** 20,
      'guest sees the third disk at its resized size',
    );

    // export-vmharddiskdrive (ours): the guest serves LUN 1 over NBD; real clients read and write it.
    const ex = await hvis(home, ['export-vmharddiskdrive', 'vm1', '-ControllerLocation', '1']);
    assert.equal(ex.code, 0, ex.stderr);
    const uri = ex.stdout.trim();
    assert.match(uri, /^nbd\+unix:\/\/\/lun1\?socket=/);
    const size = await run(requirePeer('nbdinfo', 'libnbd-bin'), ['--size', uri]);
    assert.equal(size.stdout.trim(), String(128 * 2 ** 20));
    const qemuIo = requirePeer('qemu-io', 'qemu-utils');
    await run(qemuIo, ['-f', 'raw', uri, '-c', 'write -P 0x42 1M 256k', '-c', 'flush']);
    const rd = await run(qemuIo, ['-f', 'raw', uri, '-c', 'read -P 0x42 1M 256k']);
    assert.doesNotMatch(rd.stdout, /Pattern verification failed/);
    assert.equal(
      (await hvis(home, ['export-vmharddiskdrive', 'vm1', '-ControllerLocation', '1', '-Stop'])).code,
      0,
    );

    // add-vmfibrechannelhba: a synthetic FC HBA is hot added and bound by the guest's storvsc.
    const fcAdd = await hvis(home, [
      'add-vmfibrechannelhba',
      'vm1',
      '-SanName',
      'san1',
      '-WorldWidePortNameSetA',
      'C003FF0000000001',
      '--json',
    ]);
    assert.equal(fcAdd.code, 0, fcAdd.stderr);
    assert.equal(
      (JSON.parse(fcAdd.stdout) as { WorldWideNodeNameSetA: string }[])[0]?.WorldWideNodeNameSetA,
      'C003FF0000FFFF00',
    );
    const lsvmbus = async () =>
      JSON.parse((await hvis(home, ['lsvmbus', 'vm1', '--json'])).stdout) as {
        Description: string;
        Driver: string | null;
      }[];
    await until(
      async () =>
        (await lsvmbus()).some(
          (d) => d.Description === 'Synthetic fiber channel adapter' && d.Driver === 'hv_storvsc',
        ),
      'the guest to bind the FC HBA',
    );
    const fcList = JSON.parse((await hvis(home, ['get-vmfibrechannelhba', 'vm1', '--json'])).stdout) as {
      WorldWidePortNameSetA: string;
    }[];
    assert.deepEqual(
      fcList.map((h) => h.WorldWidePortNameSetA),
      ['C003FF0000000001'],
    );
    const badFc = await hvis(home, [
      'add-vmfibrechannelhba',
      'vm1',
      '-SanName',
      'x',
      '-WorldWidePortNameSetA',
      'XYZ',
    ]);
    assert.match(badFc.stderr, /16 hexadecimal digits/);

    // A production checkpoint of the running VM (our in-guest VSS daemon freezes nothing by default).
    const cp = await hvis(home, ['checkpoint-vm', 'vm1', '-SnapshotName', 'live', '--json']);
    assert.equal(cp.code, 0, cp.stderr);
    assert.equal((JSON.parse(cp.stdout) as { SnapshotType: string }).SnapshotType, 'Production');
    assert.ok(
      (await drives()).every((d) => /_[0-9a-f-]{36}\.avhdx$/.test(d.Path)),
      'every drive continues in a differencing child',
    );
    const std = await hvis(home, ['checkpoint-vm', 'vm1', '-SnapshotType', 'Standard']);
    assert.notEqual(std.code, 0);
    assert.match(std.stderr, /saved memory state/);

    const rm = await hvis(home, ['remove-vmharddiskdrive', 'vm1', '-ControllerLocation', '1']);
    assert.equal(rm.code, 0, rm.stderr);
    await until(
      async () => !(await drives()).some((d) => d.ControllerLocation === 1),
      'drive removed from the VM',
    );
    const bad = await hvis(home, ['remove-vmharddiskdrive', 'vm1', '-ControllerLocation', '9']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /no drive at SCSI 0:9/);
  } finally {
    up.child.kill('SIGINT');
    await up.exit;
    rmSync(home, { recursive: true, force: true });
  }
});
