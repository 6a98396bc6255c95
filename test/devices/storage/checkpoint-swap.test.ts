/**
 * The checkpoint step on a running VM (VmStorage.continueInChild): while the guest writes, the drive moves
 * onto a differencing child. The frozen parent must be crash-consistent — for each sequential writer it
 * holds a prefix of its writes containing every write acknowledged before the switch began and nothing
 * else — and the child (reading through the parent) holds every acknowledged write.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import { StorvscController } from '../../../src/devices/storage/guest.ts';
import { createDisk, openDisk } from '../../../src/disk/open.ts';
import { VmStorage } from '../../../src/host/storage.ts';
import { HV_SCSI_GUID } from '../../../src/protocol/vmbus/device-guids.ts';
import { STORVSC_RING_BYTES } from '../../../src/protocol/vstor/constants.ts';
import { VmbusClient } from '../../../src/vmbus/client.ts';
import { hostProfile } from '../../../src/vmbus/host-profiles.ts';
import { GuestMemory } from '../../../src/vmbus/memory.ts';
import { VmbusServer } from '../../../src/vmbus/server.ts';
import { createSharedSynicBuffer, SharedSynicPort } from '../../../src/vmbus/synic-shared.ts';

const dir = mkdtempSync(join(tmpdir(), 'hvis-cpswap-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('continueInChild during writes: parent is a consistent prefix, child has every acknowledged write', async () => {
  const base = join(dir, 'sys.vhdx');
  await (await createDisk(base, { size: 16 * 2 ** 20, type: 'dynamic', blockSize: 2 ** 20 })).close();
  const memory = new GuestMemory(64 * 2 ** 20);
  const sab = createSharedSynicBuffer();
  const { port1, port2 } = new MessageChannel();
  const hostPort = new SharedSynicPort(sab, 'host', port1);
  const guestPort = new SharedSynicPort(sab, 'guest', port2);
  const server = new VmbusServer({ synic: hostPort, memory, profile: hostProfile('WS2022') });
  const storage = new VmStorage({ server, profile: 'WS2022', log: () => {} });
  await storage.add({
    path: base,
    controllerType: 'SCSI',
    controllerNumber: 0,
    controllerLocation: 0,
    sizeBytes: 0,
    vhdType: 'Dynamic',
  });
  const client = new VmbusClient({ synic: guestPort, memory });
  const guest = new StorvscController({ memory });
  client.registerDriver(HV_SCSI_GUID, {
    name: 'hv_storvsc',
    sendRingBytes: STORVSC_RING_BYTES,
    recvRingBytes: STORVSC_RING_BYTES,
    attach: (offer, ch) => guest.attachChannel(offer.subChannelIndex, ch),
  });
  const child = join(dir, 'sys_cp.avhdx');
  const WRITERS = 4;
  /** Acknowledged writes each writer must make before the switch and after it (events, not wall time). */
  const PROGRESS = 8;
  /** While the switch runs, a writer pauses after this many more writes, so none runs out of its 512 blocks. */
  const SWAP_BUDGET = 64;
  const acked: number[][] = Array.from({ length: WRITERS }, () => []);
  const ackedBeforeSwap: number[] = [];
  const ackedAfterSwap: number[] = [];
  // Each acknowledged write re-checks the waiters: the test moves on when every writer has signalled.
  const waiters: { ready(): boolean; resolve(): void }[] = [];
  const signal = () => {
    for (const x of waiters.splice(0)) {
      if (x.ready()) x.resolve();
      else waiters.push(x);
    }
  };
  const everyWriter = (minAcked: (w: number) => number) =>
    new Promise<void>((resolve) => {
      const ready = () => acked.every((a, w) => a.length >= minAcked(w));
      if (ready()) resolve();
      else waiters.push({ ready, resolve });
    });
  let swapDone: () => void = () => {};
  const swapped = new Promise<void>((r) => {
    swapDone = r;
  });
  let swapping = false;
  try {
    await client.connect();
    await guest.ready;
    const disk = guest.disks()[0]!;
    let stop = false;
    const writers = Promise.all(
      Array.from({ length: WRITERS }, async (_, w) => {
        for (let seq = 0; !stop && seq < 500; seq++) {
          if (swapping && seq >= ackedBeforeSwap[w]! + SWAP_BUDGET) await swapped;
          await disk.write(new Uint8Array(4096).fill(seq + 1), (w * 512 + seq) * 4096);
          acked[w]!.push(seq);
          signal();
        }
      }),
    );
    // A failing writer rejects `writers` and ends the wait instead of leaving it pending.
    const until = (p: Promise<void>) => Promise.race([p, writers.then(() => {})]);
    await until(everyWriter(() => PROGRESS));
    for (let w = 0; w < WRITERS; w++) ackedBeforeSwap.push(acked[w]!.length);
    swapping = true;
    await storage.continueInChild(0, 0, child);
    for (let w = 0; w < WRITERS; w++) ackedAfterSwap.push(acked[w]!.length);
    swapping = false;
    swapDone();
    await until(everyWriter((w) => ackedAfterSwap[w]! + PROGRESS));
    stop = true;
    await writers;
    assert.ok(storage.diskForPath(child), 'the drive now runs on the child');
  } finally {
    await storage.close();
    hostPort.close();
    guestPort.close();
    port1.close();
    port2.close();
  }
  const parent = await openDisk(base, { readOnly: true });
  const cur = await openDisk(child, { readOnly: true });
  const b = new Uint8Array(512);
  try {
    for (let w = 0; w < WRITERS; w++) {
      assert.ok(
        ackedBeforeSwap[w]! >= PROGRESS && acked[w]!.length >= ackedAfterSwap[w]! + PROGRESS,
        `writer ${w} wrote before and after`,
      );
      let prefix = 0;
      for (let seq = 0; seq < 500; seq++) {
        await parent.read(b, (w * 512 + seq) * 4096);
        if (b[0] === seq + 1) {
          assert.equal(prefix, seq, `writer ${w}: parent holds write ${seq} after a gap at ${prefix}`);
          prefix++;
        }
      }
      assert.ok(
        prefix >= ackedBeforeSwap[w]!,
        `writer ${w}: every write acknowledged before the switch is in the parent`,
      );
      for (const seq of acked[w]!) {
        await cur.read(b, (w * 512 + seq) * 4096);
        assert.equal(b[0], seq + 1, `writer ${w}: acknowledged write ${seq} readable through the child`);
      }
    }
  } finally {
    await parent.close();
    await cur.close();
  }
});
