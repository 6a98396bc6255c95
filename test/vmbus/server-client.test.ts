/**
 * Control-plane flows in deterministic mode (host and guest in one thread, driven by run()): open/close,
 * GPADLs, rescind + RELID_RELEASED, hot-add, sub-channels, MODIFYCHANNEL by version, UNLOAD and reconnect.
 * Expected behaviour: vmbus-core-ics.md §1.4–1.5, §4, §5 (Linux channel_mgmt.c, OpenVMM channels.rs).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHvError } from '../../src/protocol/errors.ts';
import { VM_PKT_DATA_INBAND } from '../../src/protocol/vmbus/packet.ts';
import { hostProfile } from '../../src/vmbus/host-profiles.ts';
import type { OpenInfo } from '../../src/vmbus/server.ts';
import { createDeterministicVm } from '../../src/vmbus/vm-link.ts';
import { ECHO_CLASS, ECHO_INSTANCE, echoDevice, RecordingDriver } from './vmbus-fixtures.ts';

async function connectedVm(profile = 'WS2022') {
  const vm = createDeterministicVm({ profile: hostProfile(profile) });
  const log = { opened: [] as OpenInfo[], closed: [] as (Error | undefined)[] };
  const handle = vm.server.offer({ interfaceType: ECHO_CLASS, instance: ECHO_INSTANCE }, echoDevice(log));
  const drv = new RecordingDriver();
  vm.client.registerDriver(ECHO_CLASS, drv);
  const p = vm.client.connect();
  vm.run();
  const version = await p;
  return { vm, log, handle, drv, version };
}

function echo(vm: { run(): number }, drv: RecordingDriver, relid: number, transId: number): number[] {
  const before = drv.received.length;
  assert.equal(
    drv.io
      .get(relid)!
      .send(VM_PKT_DATA_INBAND, 0, transId, new Uint8Array([transId & 0xff, 0, 0, 0, 0, 0, 0, 0])),
    true,
  );
  vm.run();
  return drv.received.slice(before).map((r) => r.transId);
}

test('open: ring GPADL of 2 × 16 KiB (8 pages, downstream offset 4), echo through the rings', async () => {
  const { vm, log, drv, version } = await connectedVm();
  assert.equal(version, 0x00050003);
  assert.equal(drv.attached.length, 1);
  const relid = drv.attached[0]!.relid;
  assert.equal(relid, 1, 'OpenVMM allocates relids from 1');
  assert.equal(log.opened.length, 1);
  assert.equal(log.opened[0]!.version, 0x00050003);
  assert.deepEqual(echo(vm, drv, relid, 7), [7]);
  assert.deepEqual(echo(vm, drv, relid, 8), [8]);
  const row = vm.client.list()[0]!;
  assert.equal(row.state, 'open');
  assert.equal(row.classId, ECHO_CLASS.toString());
  assert.equal(row.monitorId, 255);
  assert.equal(vm.server.stats.protocolErrors + vm.client.stats.protocolErrors, 0);
});

test('guest close: CLOSECHANNEL closes the host device, then the ring GPADL is torn down and its pages freed', async () => {
  const { vm, log, drv } = await connectedVm();
  const relid = drv.attached[0]!.relid;
  const freeBefore = vm.memory.allocPages(1);
  vm.memory.freePages(freeBefore, 1);
  vm.client.closeChannel(relid);
  vm.run();
  assert.equal(log.closed.length, 1);
  assert.equal(drv.detached.length, 1);
  assert.equal(vm.client.list()[0]!.state, 'closed');
  assert.equal(vm.server.channels()[0]!.state, 'offered');
  // The 8 ring pages came back: the allocator hands out the lowest free run again.
  const again = vm.memory.allocPages(8);
  assert.ok(again < freeBefore, `ring pages were freed (got ${again}, first free before was ${freeBefore})`);
  assert.equal(vm.server.stats.protocolErrors + vm.client.stats.protocolErrors, 0);
});

test('rescind of an open channel: driver detached, CLOSECHANNEL + teardown + RELID_RELEASED, relid reused by a hot-added offer', async () => {
  const { vm, log, handle, drv } = await connectedVm();
  handle.rescind();
  vm.run();
  assert.equal(log.closed.length, 1);
  assert.equal(drv.detached.length, 1);
  assert.equal(handle.state, 'removed', 'the host freed the relid after RELID_RELEASED');
  assert.deepEqual(vm.client.list(), []);
  const h2 = vm.server.offer({ interfaceType: ECHO_CLASS, instance: ECHO_INSTANCE }, echoDevice());
  vm.run();
  assert.equal(h2.relid, 1);
  assert.equal(drv.attached.length, 2);
  assert.deepEqual(echo(vm, drv, 1, 42), [42]);
  assert.equal(vm.server.stats.protocolErrors + vm.client.stats.protocolErrors, 0);
});

test('sub-channels: offers with the primary’s type and instance go to the primary’s driver and open independently', async () => {
  const { vm, drv } = await connectedVm();
  const primary = drv.attached[0]!.relid;
  for (const idx of [1, 2]) {
    vm.server.offer(
      { interfaceType: ECHO_CLASS, instance: ECHO_INSTANCE, subChannelIndex: idx },
      echoDevice(),
    );
  }
  vm.run();
  assert.deepEqual(
    drv.attached.map((o) => o.subChannelIndex),
    [0, 1, 2],
  );
  const subs = drv.attached.slice(1).map((o) => o.relid);
  assert.deepEqual(subs, [2, 3]);
  assert.deepEqual(echo(vm, drv, subs[1]!, 5), [5]);
  assert.deepEqual(echo(vm, drv, primary, 6), [6]);
  assert.deepEqual(
    vm.client.list().map((r) => [r.relid, r.subChannelIndex, r.state, r.driver]),
    [
      [1, 0, 'open', 'echo'],
      [2, 1, 'open', 'echo'],
      [3, 2, 'open', 'echo'],
    ],
  );
});

test('MODIFYCHANNEL: acknowledged from 5.3, fire-and-forget on 4.1–5.2, refused below 4.1', async () => {
  const a = await connectedVm('WS2022');
  const pending = a.vm.client.modifyChannel(1, 2);
  a.vm.run();
  assert.equal(await pending, 0);
  assert.equal(a.vm.server.channels()[0]!.targetVp, 2);
  const b = await connectedVm('WS2019');
  assert.equal(await b.vm.client.modifyChannel(1, 5), 0);
  b.vm.run();
  assert.equal(b.vm.server.channels()[0]!.targetVp, 5);
  assert.equal(b.vm.server.stats.protocolErrors + b.vm.client.stats.protocolErrors, 0);
  const c = await connectedVm('WS2016');
  await assert.rejects(c.vm.client.modifyChannel(1, 1), (e) => isHvError(e, 'HV_ERR_UNSUPPORTED'));
});

test('UNLOAD closes every channel; the guest reconnects and gets the offers again', async () => {
  const { vm, log, drv } = await connectedVm();
  const done = vm.client.unload();
  vm.run();
  await done;
  assert.equal(vm.client.version, null);
  assert.equal(vm.server.version, null);
  assert.equal(log.closed.length, 1);
  assert.equal(drv.detached.length, 1);
  const again = vm.client.connect();
  vm.run();
  assert.equal(await again, 0x00050003);
  assert.equal(drv.attached.length, 2);
  assert.deepEqual(echo(vm, drv, drv.attached[1]!.relid, 9), [9]);
  assert.equal(vm.server.stats.protocolErrors + vm.client.stats.protocolErrors, 0);
});

test('driver GPADLs: a 60-page GPADL (header + 2 bodies) reaches the device; teardown answers GPADL_TORNDOWN', async () => {
  const { vm, log } = await connectedVm();
  const first = vm.memory.allocPages(60);
  const pfns = Array.from({ length: 60 }, (_, i) => first + i);
  const created = vm.client.createGpadl(1, pfns);
  vm.run();
  const id = await created;
  assert.equal(id, 0xe1e10 + 1, 'handles count from 0xE1E10; the ring GPADL took the first');
  assert.deepEqual(log.opened[0]!.gpadl(id), [{ byteCount: 60 * 4096, byteOffset: 0, pfns }]);
  const torn = vm.client.teardownGpadl(1, id);
  vm.run();
  await torn;
  assert.equal(log.opened[0]!.gpadl(id), null);
  assert.equal(vm.server.stats.protocolErrors + vm.client.stats.protocolErrors, 0);
});

test('offers registered after connect (hot-add) and drivers registered after the offer both attach', async () => {
  const vm = createDeterministicVm({ profile: hostProfile('WS2012R2') });
  const p = vm.client.connect();
  vm.run();
  assert.equal(await p, 0x00030000);
  vm.server.offer({ interfaceType: ECHO_CLASS, instance: ECHO_INSTANCE }, echoDevice());
  vm.run();
  assert.equal(vm.client.list()[0]!.state, 'offered');
  const drv = new RecordingDriver();
  vm.client.registerDriver(ECHO_CLASS, drv);
  vm.run();
  assert.equal(drv.attached.length, 1);
  assert.deepEqual(echo(vm, drv, 1, 3), [3]);
});
