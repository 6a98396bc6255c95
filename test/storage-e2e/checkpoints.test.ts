/**
 * Checkpoint-VM / Get-, Restore-, Remove-VMSnapshot through the real `hvis` CLI on a stopped VM: the
 * checkpoint freezes the VHDX and continues in an .avhdx child; restoring brings back the bytes of the
 * checkpoint and deletes the discarded image; removing merges the current image back into the VHDX.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openDisk } from '../../src/disk/open.ts';
import { hvis } from '../cli/run-cli.ts';

async function writeAt0(path: string, byte: number): Promise<void> {
  const d = await openDisk(path);
  await d.write(new Uint8Array(4096).fill(byte), 0);
  await d.flush();
  await d.close();
}

async function byteAt0(path: string): Promise<number> {
  const d = await openDisk(path, { readOnly: true });
  const b = new Uint8Array(512);
  await d.read(b, 0);
  await d.close();
  return b[0]!;
}

test('checkpoint, restore and remove on a stopped VM', { timeout: 60_000 }, async () => {
  const home = mkdtempSync(join(tmpdir(), 'hvis-cp-'));
  try {
    const base = join(home, 'v1.vhdx');
    const nv = await hvis(home, ['new-vm', 'v1', '-NewVHDPath', base, '-NewVHDSizeBytes', '64MB']);
    assert.equal(nv.code, 0, nv.stderr);
    const drive = async () =>
      (
        JSON.parse((await hvis(home, ['get-vmharddiskdrive', 'v1', '--json'])).stdout) as { Path: string }[]
      )[0]!.Path;
    await writeAt0(base, 0xa1);

    const cp = await hvis(home, ['checkpoint-vm', 'v1', '-SnapshotName', 'cp1']);
    assert.equal(cp.code, 0, cp.stderr);
    const child = await drive();
    assert.match(child, /v1_[0-9a-f-]{36}\.avhdx$/);
    assert.equal(await byteAt0(child), 0xa1, 'the child reads through to the frozen VHDX');
    await writeAt0(child, 0xb2);
    assert.equal(await byteAt0(base), 0xa1, 'the frozen VHDX is unchanged');

    const list = JSON.parse((await hvis(home, ['get-vmsnapshot', 'v1', '--json'])).stdout) as {
      Name: string;
      SnapshotType: string;
      IsCurrent: boolean;
    }[];
    assert.deepEqual(
      list.map((s) => [s.Name, s.SnapshotType, s.IsCurrent]),
      [['cp1', 'Production', true]],
    );

    assert.equal((await hvis(home, ['restore-vmsnapshot', 'v1', '-Name', 'cp1'])).code, 0);
    const restored = await drive();
    assert.notEqual(restored, child);
    assert.equal(existsSync(child), false, 'the discarded state is deleted');
    assert.equal(await byteAt0(restored), 0xa1, 'restored to the checkpoint bytes');

    await writeAt0(restored, 0xc3);
    assert.equal((await hvis(home, ['remove-vmsnapshot', 'v1', '-Name', 'cp1'])).code, 0);
    assert.equal(await drive(), base, 'the VM uses the merged VHDX again');
    assert.equal(existsSync(restored), false);
    assert.equal(await byteAt0(base), 0xc3, 'no data of the current state is lost in the merge');
    assert.equal(JSON.parse((await hvis(home, ['get-vmsnapshot', 'v1', '--json'])).stdout).length, 0);

    const bad = await hvis(home, ['restore-vmsnapshot', 'v1', '-Name', 'nope']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /no checkpoint named 'nope'/);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('remove-vmsnapshot of a checkpoint later ones build on is refused, then works in order', {
  timeout: 60_000,
}, async () => {
  const home = mkdtempSync(join(tmpdir(), 'hvis-cp2-'));
  try {
    const base = join(home, 'v2.vhdx');
    assert.equal(
      (await hvis(home, ['new-vm', 'v2', '-NewVHDPath', base, '-NewVHDSizeBytes', '64MB'])).code,
      0,
    );
    const drive = async () =>
      (
        JSON.parse((await hvis(home, ['get-vmharddiskdrive', 'v2', '--json'])).stdout) as { Path: string }[]
      )[0]!.Path;
    const names = async () =>
      (JSON.parse((await hvis(home, ['get-vmsnapshot', 'v2', '--json'])).stdout) as { Name: string }[]).map(
        (s) => s.Name,
      );
    assert.equal((await hvis(home, ['checkpoint-vm', 'v2', '-SnapshotName', 'cp1'])).code, 0);
    await writeAt0(await drive(), 0x11);
    assert.equal((await hvis(home, ['checkpoint-vm', 'v2', '-SnapshotName', 'cp2'])).code, 0);
    await writeAt0(await drive(), 0x22);

    const refused = await hvis(home, ['remove-vmsnapshot', 'v2', '-Name', 'cp1']);
    assert.notEqual(refused.code, 0);
    assert.match(
      refused.stderr,
      /checkpoint\(s\) 'cp2' build on its disk .*remove the later checkpoints first/,
    );
    assert.deepEqual(await names(), ['cp1', 'cp2'], 'nothing forgotten when refused');

    assert.equal((await hvis(home, ['remove-vmsnapshot', 'v2', '-Name', 'cp2'])).code, 0);
    assert.equal((await hvis(home, ['remove-vmsnapshot', 'v2', '-Name', 'cp1'])).code, 0);
    assert.deepEqual(await names(), []);
    assert.equal(await drive(), base, 'both merges end on the base VHDX');
    assert.equal(await byteAt0(base), 0x22, 'the newest data survives both merges');
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
