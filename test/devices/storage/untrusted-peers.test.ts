/**
 * Both ends treat the other as untrusted. A guest that sends a malformed VSTOR packet loses that channel
 * (the VMBus server rescinds it) while another VM's storage goes on; a host that sends malformed or unknown
 * completions to storvsc is ignored (counted), never crashes the guest, and its disk keeps working.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { createStorageLoopback } from '../../../bench/storage/loopback.ts';
import { StorvscController } from '../../../src/devices/storage/guest.ts';
import { createDisk } from '../../../src/disk/open.ts';
import { VM_PKT_COMP, VM_PKT_DATA_INBAND } from '../../../src/protocol/vmbus/packet.ts';
import type { ChannelIo } from '../../../src/vmbus/channel-io.ts';
import { GuestMemory } from '../../../src/vmbus/memory.ts';

const dir = mkdtempSync(join(tmpdir(), 'hvis-untrusted-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a malformed VSTOR packet closes that VM channel; another VM keeps serving I/O', async () => {
  const d1 = await createDisk(join(dir, 'a.raw'), { size: 2 ** 20, type: 'fixed', format: 'Raw' });
  const d2 = await createDisk(join(dir, 'b.raw'), { size: 2 ** 20, type: 'fixed', format: 'Raw' });
  const vm1 = await createStorageLoopback({ disks: [{ lun: 0, disk: d1 }], subChannels: 0 });
  const vm2 = await createStorageLoopback({ disks: [{ lun: 0, disk: d2 }], subChannels: 0 });
  try {
    const relid = vm1.server.channels()[0]!.relid!;
    const io = vm1.client.channelIo(relid)!;
    io.send(VM_PKT_DATA_INBAND, 1, 99, new Uint8Array(8)); // shorter than the 12-byte vstor_packet header
    for (let i = 0; i < 500 && vm1.guest.channelCount > 0; i++) await new Promise((r) => setTimeout(r, 2));
    assert.equal(vm1.guest.channelCount, 0, 'the guest lost the faulty channel');
    assert.equal(vm1.guest.disks().length, 0);
    const g = vm2.guest.disks()[0]!;
    await g.write(new Uint8Array(4096).fill(7), 0);
    const back = new Uint8Array(4096);
    await g.read(back, 0);
    assert.ok(back.every((b) => b === 7));
  } finally {
    vm1.close();
    vm2.close();
    await d1.close();
    await d2.close();
  }
});

test('storvsc ignores malformed and unknown completions from a hostile host', async () => {
  const sent: { transId: number; payload: Uint8Array }[] = [];
  const io: ChannelIo = {
    relid: 1,
    send(_t, _f, transId, payload) {
      sent.push({ transId, payload: payload.slice() });
      return true;
    },
    close() {},
  };
  const c = new StorvscController({ memory: new GuestMemory(4 * 2 ** 20) });
  const h = c.attachChannel(0, io);
  await new Promise((r) => setTimeout(r, 1)); // BEGIN_INITIALIZATION goes out
  assert.equal(sent.length, 1);
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ maxLength: 80 }),
      fc.constantFrom(VM_PKT_COMP, VM_PKT_DATA_INBAND),
      fc.nat(5000),
      async (payload, type, transId) => {
        // Never the outstanding request's id: those must not be completed by garbage in this property.
        h.onPacket({
          type,
          flags: 0,
          transId: transId === sent[0]!.transId ? transId + 1 : transId,
          payload,
          extHeader: new Uint8Array(0),
        });
      },
    ),
    { numRuns: 500 },
  );
  assert.ok(c.badCompletions > 0);
  // A completion for the real request with a failing status: init fails cleanly (no throw out of the driver).
  const reply = new Uint8Array(64);
  new DataView(reply.buffer).setUint32(0, 1, true);
  new DataView(reply.buffer).setUint32(8, 0xc0000001, true);
  h.onPacket({
    type: VM_PKT_COMP,
    flags: 0,
    transId: sent[0]!.transId,
    payload: reply,
    extHeader: new Uint8Array(0),
  });
  await assert.rejects(c.ready, /BEGIN_INITIALIZATION failed/);
});
