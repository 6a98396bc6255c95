/**
 * Faults: an untrusted guest (garbage messages, unknown relids, tearing down a ring GPADL in use, a corrupt
 * ring, a guest that stops answering) is isolated — its host keeps running and another VM on the same host
 * process keeps exchanging packets; an untrusted host (rescind in the middle of an open, malformed offers
 * and responses) does not crash the guest. Expected reactions: vmbus-core-ics.md §1.4, §4.2 (OpenVMM
 * channels.rs refuses duplicate GPADLs with 0x8000FFFF and keeps a ring GPADL until the channel closes).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Guid } from '../../src/protocol/guid.ts';
import {
  CHANNELMSG_GPADL_CREATED,
  CHANNELMSG_GPADL_TORNDOWN,
  CHANNELMSG_OPENCHANNEL_RESULT,
  type ChannelMessage,
  decodeChannelMessage,
  encodeChannelMessage,
} from '../../src/protocol/vmbus/channel-messages.ts';
import { gpadlMessages } from '../../src/protocol/vmbus/gpadl-messages.ts';
import { VM_PKT_DATA_INBAND } from '../../src/protocol/vmbus/packet.ts';
import { hostProfile } from '../../src/vmbus/host-profiles.ts';
import type { OpenInfo } from '../../src/vmbus/server.ts';
import { createDeterministicVm, type DeterministicVm } from '../../src/vmbus/vm-link.ts';
import { ECHO_CLASS, ECHO_INSTANCE, echoDevice, RecordingDriver } from './vmbus-fixtures.ts';

interface TestVm {
  vm: DeterministicVm;
  drv: RecordingDriver;
  log: { opened: OpenInfo[]; closed: (Error | undefined)[] };
}

async function vmWithEcho(profile = 'WS2022'): Promise<TestVm> {
  const vm = createDeterministicVm({ profile: hostProfile(profile) });
  const log = { opened: [] as OpenInfo[], closed: [] as (Error | undefined)[] };
  vm.server.offer({ interfaceType: ECHO_CLASS, instance: ECHO_INSTANCE }, echoDevice(log));
  const drv = new RecordingDriver();
  vm.client.registerDriver(ECHO_CLASS, drv);
  const p = vm.client.connect();
  vm.run();
  await p;
  return { vm, drv, log };
}

/** Sends one packet from the guest on relid 1 and checks the host device echoed it. */
function assertEchoes(t: TestVm, transId: number): void {
  const n = t.drv.received.length;
  assert.equal(t.drv.io.get(1)!.send(VM_PKT_DATA_INBAND, 0, transId, new Uint8Array(8)), true);
  t.vm.run();
  assert.deepEqual(
    t.drv.received.slice(n).map((r) => r.transId),
    [transId],
  );
}

/** Posts a raw guest→host channel message on connection id 1 (what a hostile guest kernel can do). */
function guestSends(t: TestVm, m: ChannelMessage | Uint8Array): void {
  t.vm.synic.guest.postMessage(1, m instanceof Uint8Array ? m : encodeChannelMessage(m));
}

/** Records what the host sends to the guest from now on (a second listener would replace the client). */
function tapGuest(t: TestVm): ChannelMessage[] {
  const seen: ChannelMessage[] = [];
  const hostPort = t.vm.synic.host;
  const post = hostPort.postMessage.bind(hostPort);
  hostPort.postMessage = (conn, payload) => {
    seen.push(decodeChannelMessage(payload));
    return post(conn, payload);
  };
  return seen;
}

/** Random byte strings that do not decode as a channel message (random valid ones could be legitimate). */
function malformed(seed: number): Uint8Array[] {
  return fc.sample(fc.uint8Array({ maxLength: 240 }), { numRuns: 400, seed }).filter((b) => {
    try {
      decodeChannelMessage(b);
      return false;
    } catch {
      return true;
    }
  });
}

test('a hostile guest is isolated: its host counts and ignores it, another VM keeps exchanging packets', async () => {
  const bad = await vmWithEcho();
  const good = await vmWithEcho();
  const toGuest = tapGuest(bad);
  let trans = 1;
  assertEchoes(good, trans++);

  // 1. Garbage channel messages.
  const garbage = malformed(42);
  for (const g of garbage) guestSends(bad, g);
  bad.vm.run();
  assert.ok(bad.vm.server.stats.protocolErrors > 0);
  assertEchoes(good, trans++);
  assertEchoes(bad, trans++);

  // 2. OPENCHANNEL of a relid that was never offered: counted, no reply.
  const errors = bad.vm.server.stats.protocolErrors;
  const replies = toGuest.length;
  guestSends(bad, {
    msgtype: 5, childRelid: 999, openid: 999, ringbufferGpadlhandle: 0xe1e10, targetVp: 0,
    downstreamRingbufferPageoffset: 4, userdata: new Uint8Array(120),
  }); // biome-ignore format: literal
  bad.vm.run();
  assert.equal(bad.vm.server.stats.protocolErrors, errors + 1);
  assert.equal(toGuest.length, replies);

  // 3. A duplicate GPADL id on the open channel is refused with STATUS_UNSUCCESSFUL.
  for (const m of gpadlMessages(1, 0xe1e10, [5, 6])) guestSends(bad, m);
  bad.vm.run();
  assert.deepEqual(toGuest.at(-1), {
    msgtype: CHANNELMSG_GPADL_CREATED,
    childRelid: 1,
    gpadl: 0xe1e10,
    creationStatus: 0x8000ffff,
  });

  // 4. Tearing down the ring GPADL while the channel is open: deferred, the channel keeps working.
  const before = toGuest.length;
  guestSends(bad, { msgtype: 11, childRelid: 1, gpadl: 0xe1e10 });
  bad.vm.run();
  assert.equal(toGuest.length, before, 'no GPADL_TORNDOWN while the ring is mapped');
  assertEchoes(bad, trans++);
  assertEchoes(good, trans++);

  // 5. A corrupt ring (write_index not a multiple of 8) closes that channel only; the host rescinds it.
  const ringPfn = bad.log.opened[0]!.gpadl(0xe1e10)![0]!.pfns[0]!;
  const page = bad.vm.memory.pageView(ringPfn, 1)!;
  const ctl = new DataView(page.buffer, page.byteOffset, 4096);
  ctl.setUint32(0, 3, true);
  bad.vm.synic.guest.signalEvent(0x2001);
  bad.vm.run();
  assert.equal(bad.vm.server.stats.channelFaults, 1);
  assert.equal(bad.log.closed.length, 1);
  assert.ok(toGuest.some((m) => m.msgtype === CHANNELMSG_GPADL_TORNDOWN && m.gpadl === 0xe1e10));
  assert.ok(
    toGuest.some((m) => m.msgtype === 2 && m.childRelid === 1),
    'RESCIND_CHANNELOFFER sent',
  );
  assertEchoes(good, trans++);
  assert.equal(good.vm.server.stats.protocolErrors, 0);
  assert.equal(good.vm.client.stats.protocolErrors, 0);
});

test('a guest that stops answering: the host queues up to its cap without failing; the other VM goes on', async () => {
  const dead = await vmWithEcho();
  const good = await vmWithEcho();
  dead.vm.synic.freeze('guest');
  for (let i = 0; i < 200; i++) {
    const h = dead.vm.server.offer({ interfaceType: Guid.random(), instance: Guid.random() }, echoDevice());
    if (i % 2 === 0) h.rescind();
  }
  dead.vm.run();
  assert.ok(dead.vm.server.queuedMessages > 0, 'messages wait for SynIC slots');
  assertEchoes(good, 1);
  // When the guest wakes up it gets every queued message in order (the outbox drains on slot-free).
  dead.vm.synic.freeze('guest', false);
  dead.vm.run();
  assert.equal(dead.vm.server.queuedMessages, 0);
  assert.equal(dead.vm.client.list().length, 1 + 100);
  assert.equal(dead.vm.client.stats.protocolErrors, 0);
});

test('the host rescinds a channel in the middle of its open: the guest finishes the steps started and releases it', async () => {
  for (let stop = 1; stop < 12; stop++) {
    const t = await vmWithEcho();
    const h = t.vm.server.offer({ interfaceType: ECHO_CLASS, instance: Guid.random() }, echoDevice());
    for (let i = 0; i < stop; i++) t.vm.synic.step(); // somewhere inside offer → GPADL → OPENCHANNEL
    h.rescind();
    t.vm.run();
    assert.equal(h.state, 'removed', `stop ${stop}: RELID_RELEASED reached the host`);
    assert.deepEqual(
      t.vm.client.list().map((r) => r.relid),
      [1],
    );
    assert.equal(t.vm.server.stats.protocolErrors, 0, `stop ${stop}`);
    assertEchoes(t, 100 + stop);
  }
});

test('malformed offers and stray responses from the host are rejected without harming the guest', async () => {
  const t = await vmWithEcho();
  const hostSends = (m: ChannelMessage | Uint8Array) =>
    t.vm.synic.host.postMessage(2, m instanceof Uint8Array ? m : encodeChannelMessage(m));
  const offer = (relid: number, instance: Guid, sub: number): ChannelMessage => ({
    msgtype: 1, ifType: ECHO_CLASS, ifInstance: instance, reserved: new Uint8Array(16), chnFlags: 0,
    mmioMegabytes: 0, userDefined: new Uint8Array(120), subChannelIndex: sub, mmioMegabytesOptional: 0,
    childRelid: relid, monitorId: 255, monitorAllocated: false, isDedicatedInterrupt: true, connectionId: relid,
  }); // biome-ignore format: literal
  const cases: (ChannelMessage | Uint8Array)[] = [
    encodeChannelMessage(offer(9, ECHO_INSTANCE, 0)).subarray(0, 100), // truncated offer
    offer(0, Guid.random(), 0), // relid 0
    offer(4096, Guid.random(), 0), // relid beyond MAX_CHANNEL_RELIDS
    offer(1, Guid.random(), 0), // duplicate relid
    offer(20, Guid.random(), 3), // sub-channel without a primary
    { msgtype: CHANNELMSG_OPENCHANNEL_RESULT, childRelid: 77, openid: 77, status: 0 },
    { msgtype: CHANNELMSG_GPADL_CREATED, childRelid: 1, gpadl: 0x1234, creationStatus: 0 },
    { msgtype: CHANNELMSG_GPADL_TORNDOWN, gpadl: 0x999 },
    { msgtype: 2, childRelid: 55 }, // rescind of an unknown relid
    {
      msgtype: 14,
      vmbusVersionRequested: 1,
      targetVcpu: 0,
      interruptPage: 0,
      msgSint: 0,
      msgVtl: 0,
      featureFlags: 0,
      monitorPage1: 0,
      monitorPage2: 0,
    },
    { msgtype: 15, versionSupported: 1, connectionState: 0, msgConnId: 9 }, // VERSION_RESPONSE out of turn
    { msgtype: 24, childRelid: 1, status: 0 }, // MODIFYCHANNEL_RESPONSE nobody waits for
    { msgtype: 4 }, // second ALLOFFERS_DELIVERED
  ];
  for (const c of cases) hostSends(c);
  for (const g of malformed(7)) hostSends(g);
  t.vm.run();
  assert.ok(
    t.vm.client.stats.protocolErrors >= cases.length,
    `${t.vm.client.stats.protocolErrors} errors counted`,
  );
  assert.deepEqual(
    t.vm.client.list().map((r) => [r.relid, r.state]),
    [[1, 'open']],
  );
  assert.equal(t.vm.client.messageConnectionId, 1);
  assertEchoes(t, 5);
});
