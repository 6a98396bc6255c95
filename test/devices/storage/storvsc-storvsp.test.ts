/**
 * storvsc ↔ storvsp over real VMBus rings (one process): initialization, bus scan (INQUIRY vendor/product,
 * READ CAPACITY), READ/WRITE through GPA-direct ranges landing in the image file, online resize seen through
 * UNIT ATTENTION, hot add/remove via ENUMERATE_BUS, UNMAP.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createStorageLoopback } from '../../../bench/storage/loopback.ts';
import { createDisk } from '../../../src/disk/open.ts';
import {
  VMSTOR_PROTO_VERSION_WIN7,
  VMSTOR_PROTO_VERSION_WIN8_1,
  VMSTOR_PROTO_VERSION_WIN10,
} from '../../../src/protocol/vstor/constants.ts';

const dir = mkdtempSync(join(tmpdir(), 'hvis-storvsc-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 2));
  assert.ok(cond(), `timed out waiting for ${what}`);
}

test('guest sees the disk as a Msft Virtual Disk; writes through VMBus land in the raw image', async () => {
  const path = join(dir, 'a.raw');
  const disk = await createDisk(path, { size: 8 * 2 ** 20, type: 'fixed', format: 'Raw' });
  const lb = await createStorageLoopback({ disks: [{ lun: 0, disk }], subChannels: 1 });
  try {
    assert.equal(lb.guest.version, VMSTOR_PROTO_VERSION_WIN10);
    assert.equal(lb.guest.channelCount, 2, 'primary + one sub-channel');
    const [d] = lb.guest.disks();
    assert.ok(d);
    assert.equal(d.vendor, 'Msft');
    assert.equal(d.product, 'Virtual Disk');
    assert.equal(d.size, 8 * 2 ** 20);
    assert.equal(d.blockSize, 512);
    const data = pattern(700 * 1024, 7); // > max transfer: split into several SRBs over both channels
    await d.write(data, 4096 * 3);
    await d.flush();
    const file = readFileSync(path);
    assert.deepEqual(new Uint8Array(file.subarray(4096 * 3, 4096 * 3 + data.length)), data);
    const back = new Uint8Array(data.length);
    await d.read(back, 4096 * 3);
    assert.deepEqual(back, data);
    await assert.rejects(d.read(new Uint8Array(512), 8 * 2 ** 20), /aligned inside/);
  } finally {
    lb.close();
    await disk.close();
  }
});

test('WS2012R2 host negotiates WIN8_1; a pre-WIN8 guest list gets 48-byte packets and still works', async () => {
  const disk = await createDisk(join(dir, 'b.raw'), { size: 2 ** 20, type: 'fixed', format: 'Raw' });
  const lb = await createStorageLoopback({ disks: [{ lun: 3, disk }], profile: 'WS2012R2' });
  assert.equal(lb.guest.version, VMSTOR_PROTO_VERSION_WIN8_1);
  lb.close();
  // A FreeBSD-style guest offering only WIN7 to a WS2012 host (which would accept up to WIN8).
  const lb7 = await createStorageLoopback({
    disks: [{ lun: 3, disk }],
    profile: 'WS2012',
    versions: [VMSTOR_PROTO_VERSION_WIN7],
  });
  try {
    assert.equal(lb7.guest.version, VMSTOR_PROTO_VERSION_WIN7);
    assert.equal(lb7.guest.channelCount, 1, 'no sub-channels before WIN8');
    const [d] = lb7.guest.disks();
    assert.equal(d?.lun, 3);
    const data = pattern(4096, 1);
    await d!.write(data, 0);
    const back = new Uint8Array(4096);
    await d!.read(back, 0);
    assert.deepEqual(back, data);
  } finally {
    lb7.close();
    await disk.close();
  }
});

test('online resize: the guest sees the new size after a capacity-changed unit attention', async () => {
  const disk = await createDisk(join(dir, 'c.vhdx'), { size: 4 * 2 ** 20, type: 'dynamic' });
  const lb = await createStorageLoopback({ disks: [{ lun: 0, disk }] });
  try {
    const d = lb.guest.disks()[0]!;
    assert.equal(d.size, 4 * 2 ** 20);
    await disk.resize(8 * 2 ** 20);
    const buf = pattern(4096, 9);
    await d.write(buf, 0); // first command gets UNIT ATTENTION 2A/09, the guest re-reads capacity and retries
    assert.equal(d.size, 8 * 2 ** 20);
    await d.write(buf, 8 * 2 ** 20 - 4096);
    const back = new Uint8Array(4096);
    await d.read(back, 8 * 2 ** 20 - 4096);
    assert.deepEqual(back, buf);
  } finally {
    lb.close();
    await disk.close();
  }
});

test('hot add and hot remove through ENUMERATE_BUS', async () => {
  const d0 = await createDisk(join(dir, 'd0.raw'), { size: 2 ** 20, type: 'fixed', format: 'Raw' });
  const d1 = await createDisk(join(dir, 'd1.raw'), { size: 2 * 2 ** 20, type: 'fixed', format: 'Raw' });
  const lb = await createStorageLoopback({ disks: [{ lun: 0, disk: d0 }] });
  try {
    assert.deepEqual(
      lb.guest.disks().map((d) => d.lun),
      [0],
    );
    lb.host.attach(5, d1, new Uint8Array(16));
    await until(() => lb.guest.disks().length === 2, 'hot-added LUN 5');
    assert.equal(lb.guest.disks()[1]!.size, 2 * 2 ** 20);
    const g5 = lb.guest.disks()[1]!;
    await lb.host.detach(5);
    await until(() => lb.guest.disks().length === 1, 'LUN 5 removal');
    assert.equal(g5.removed, true);
    await assert.rejects(g5.read(new Uint8Array(512), 0), /removed/);
  } finally {
    lb.close();
    await d0.close();
    await d1.close();
  }
});

test('UNMAP through storvsc deallocates VHDX blocks (reads as zeros)', async () => {
  const disk = await createDisk(join(dir, 'e.vhdx'), { size: 16 * 2 ** 20, type: 'dynamic' });
  const lb = await createStorageLoopback({ disks: [{ lun: 0, disk }] });
  try {
    const d = lb.guest.disks()[0]!;
    assert.equal(d.thin, true, 'READ CAPACITY(16) LBPME');
    await d.write(pattern(2 ** 20, 3), 0);
    assert.equal((await disk.blockStatus(0, 2 ** 20)).state, 'data');
    await d.trim(0, 16 * 2 ** 20);
    const back = new Uint8Array(2 ** 20);
    await d.read(back, 0);
    assert.ok(back.every((b) => b === 0));
    assert.equal((await disk.blockStatus(0, 2 ** 20)).state, 'zero');
  } finally {
    lb.close();
    await disk.close();
  }
});

test('virtual Fibre Channel HBA: offered as SYNTHFC, FCHBA_DATA gives the WWNs, disks work', async () => {
  const disk = await createDisk(join(dir, 'fc.raw'), { size: 2 ** 20, type: 'fixed', format: 'Raw' });
  const portWwn = Uint8Array.of(0xc0, 0x03, 0xff, 0, 0, 0, 0, 1);
  const nodeWwn = Uint8Array.of(0xc0, 0x03, 0xff, 0, 0, 0, 0, 2);
  const lb = await createStorageLoopback({ disks: [{ lun: 0, disk }], fc: { portWwn, nodeWwn } });
  try {
    assert.deepEqual(lb.guest.wwns, { port: portWwn, node: nodeWwn });
    assert.equal(lb.server.channels()[0]?.interfaceType, '2f9bcc4a-0069-4af3-b76b-6fd0be528cda');
    assert.equal(lb.guest.maxTransferBytes, 256 * 1024);
    const d = lb.guest.disks()[0]!;
    await d.write(pattern(8192, 5), 0);
    const back = new Uint8Array(8192);
    await d.read(back, 0);
    assert.deepEqual(back, pattern(8192, 5));
  } finally {
    lb.close();
    await disk.close();
  }
});
