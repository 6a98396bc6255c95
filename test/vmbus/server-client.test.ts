import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hostProfile } from '../../src/vmbus/host-profiles.ts';
import { createDeterministicVm } from '../../src/vmbus/vm-link.ts';
import {
  ECHO_CLASS,
  ECHO_INSTANCE,
  echoDevice,
  RecordingDriver,
  VM_PKT_DATA_INBAND,
} from './vmbus-fixtures.ts';

test('guest opens an offered channel and exchanges packets with the host device', async () => {
  const vm = createDeterministicVm({ profile: hostProfile('WS2022') });
  const log = { opened: [] as never[], closed: [] as never[] };
  vm.server.offer({ interfaceType: ECHO_CLASS, instance: ECHO_INSTANCE }, echoDevice(log as never));
  const drv = new RecordingDriver();
  vm.client.registerDriver(ECHO_CLASS, drv);
  const p = vm.client.connect();
  vm.run();
  assert.equal(await p, 0x00050003);
  assert.equal(drv.attached.length, 1);
  const relid = drv.attached[0]!.relid;
  const io = drv.io.get(relid)!;
  assert.equal(io.send(VM_PKT_DATA_INBAND, 0, 7, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])), true);
  vm.run();
  assert.deepEqual(
    drv.received.map((r) => r.transId),
    [7],
  );
  assert.deepEqual([...drv.received[0]!.payload], [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(vm.server.stats.protocolErrors, 0);
  assert.equal(vm.client.stats.protocolErrors, 0);
});
