/**
 * The guest KVP driver's faults, host ⇄ driver over the in-memory loopback with a manual clock and a scripted
 * daemon: the host's NEGOTIATE waits for a first daemon (answered when it registers, or after
 * HV_UTIL_NEGO_TIMEOUT, 55 s); after that no daemon → HV_E_FAIL at once; the daemon dying mid-transaction → HV_E_FAIL, and a daemon that comes
 * back is served; no answer within HV_UTIL_TIMEOUT (30 s) → HV_E_FAIL; a late answer is refused (EINVAL);
 * a truncated request closes the channel.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HV_UTIL_NEGO_TIMEOUT_MS, KvpGuest } from '../../../src/devices/kvp/guest.ts';
import { hostKvpOffer, KvpHost, type KvpResult } from '../../../src/devices/kvp/host.ts';
import { UapiDevNode } from '../../../src/guest/devnode.ts';
import { isHvError } from '../../../src/protocol/errors.ts';
import { HV_E_FAIL, HV_S_OK } from '../../../src/protocol/ic/icmsg.ts';
import { getKvpValue, kvpMsgError, newKvpMsg, setKvpMsgError } from '../../../src/protocol/uapi/kvp.ts';
import { loopback, ManualClock } from '../ic/loopback.ts';

function setup() {
  const clock = new ManualClock();
  let guest: KvpGuest | null = null;
  const node = new UapiDevNode('/dev/vmbus/hv_kvp', {
    onWrite: (m) => guest!.onDaemonMessage(m),
    onRelease: () => guest!.onDaemonRelease(),
  });
  const lb = loopback(
    (ch) => new KvpHost(ch, { clock, offer: hostKvpOffer('WS2025') }),
    (ch) => {
      guest = new KvpGuest(ch, { clock, toDaemon: (m) => node.send(m) });
      return guest;
    },
  );
  lb.host.start();
  lb.pump();
  return { clock, node, lb };
}

const tick = () => new Promise((r) => setImmediate(r));

async function register(node: UapiDevNode, lb: { pump(): void; host: KvpHost }) {
  const f = node.open();
  f.write(newKvpMsg(100, 0));
  const reply = await f.read();
  assert.equal(reply[0], 100);
  lb.pump();
  assert.equal(lb.host.ready, true);
  return f;
}

test('the NEGOTIATE waits for the first daemon, so the first request reaches it instead of failing', async () => {
  const { clock, node, lb } = setup();
  clock.advance(HV_UTIL_NEGO_TIMEOUT_MS - 1, () => lb.pump());
  assert.equal(lb.host.ready, false);
  assert.equal(lb.guestCh.sent.length, 0);
  const f = await register(node, lb);
  const p = lb.host.request({
    operation: 1,
    pool: 3,
    key: 'VirtualMachineName',
    value: { type: 'string', value: 'vm' },
  });
  lb.pump();
  const m = await f.read();
  assert.deepEqual([getKvpValue(m).key, getKvpValue(m).value], ['VirtualMachineName', 'vm']);
  setKvpMsgError(m, HV_S_OK);
  f.write(m);
  lb.pump();
  assert.equal((await p).status, HV_S_OK);
  clock.advance(HV_UTIL_NEGO_TIMEOUT_MS, () => lb.pump()); // the cancelled nego timer answers nothing more
  assert.equal(lb.guestCh.sent.length, 2);
});

test('no daemon within 55 s: the NEGOTIATE is answered, requests get HV_E_FAIL at once; a daemon that registers is then served', async () => {
  const { clock, node, lb } = setup();
  clock.advance(HV_UTIL_NEGO_TIMEOUT_MS, () => lb.pump());
  assert.equal(lb.host.ready, true);
  let r: KvpResult | null = null;
  void lb.host.request({ operation: 3, pool: 0, index: 0 }).then((x) => {
    r = x;
  });
  lb.pump();
  await tick();
  assert.equal(r!.status, HV_E_FAIL);

  const f = await register(node, lb);
  const p = lb.host.request({ operation: 1, pool: 0, key: 'K', value: { type: 'string', value: 'V' } });
  lb.pump();
  const m = await f.read();
  assert.deepEqual([getKvpValue(m).key, getKvpValue(m).value], ['K', 'V']);
  setKvpMsgError(m, HV_S_OK);
  f.write(m);
  lb.pump();
  assert.equal((await p).status, HV_S_OK);
});

test('a daemon that dies mid-transaction fails it with HV_E_FAIL; its late answer is refused; a new daemon works', async () => {
  const { node, lb } = setup();
  const f = await register(node, lb);
  const p = lb.host.request({ operation: 1, pool: 1, key: 'K', value: { type: 'string', value: 'V' } });
  lb.pump();
  const m = await f.read();
  f.close(); // the daemon died holding the request
  lb.pump();
  assert.equal((await p).status, HV_E_FAIL);
  assert.throws(
    () => f.write(m),
    (e) => isHvError(e, 'HV_ERR_CHANNEL_CLOSED'),
  );

  const f2 = await register(node, lb);
  const p2 = lb.host.request({ operation: 2, pool: 1, key: 'K' });
  lb.pump();
  const m2 = await f2.read();
  setKvpMsgError(m2, HV_S_OK);
  f2.write(m2);
  lb.pump();
  assert.equal((await p2).status, HV_S_OK);
});

test('no answer within 30 s: HV_E_FAIL; the answer that comes later is refused (EINVAL)', async () => {
  const { clock, node, lb } = setup();
  const f = await register(node, lb);
  const p = lb.host.request({ operation: 3, pool: 0, index: 0 });
  lb.pump();
  const m = await f.read();
  clock.advance(29_999, () => lb.pump());
  let done = false;
  void p.then(() => {
    done = true;
  });
  await tick();
  assert.equal(done, false);
  clock.advance(1, () => lb.pump());
  assert.equal((await p).status, HV_E_FAIL);
  setKvpMsgError(m, HV_S_OK);
  assert.throws(
    () => f.write(m),
    (e) => isHvError(e, 'HV_ERR_INVALID_ARGUMENT'),
  );
  assert.equal(kvpMsgError(m), HV_S_OK);
});

test('a second opener of the node gets EBUSY; a short message from the daemon is EINVAL', async () => {
  const { node, lb } = setup();
  const f = await register(node, lb);
  assert.throws(
    () => node.open(),
    (e) => isHvError(e, 'HV_ERR_INVALID_STATE') && /EBUSY/.test((e as Error).message),
  );
  assert.throws(
    () => f.write(new Uint8Array(100)),
    (e) => isHvError(e, 'HV_ERR_PROTOCOL'),
  );
});

test('a KVP request too short for its operation closes the channel, not the process', () => {
  const { clock, lb } = setup();
  clock.advance(HV_UTIL_NEGO_TIMEOUT_MS, () => lb.pump());
  // A SET body of 10 bytes: header fine, record missing.
  lb.hostCh.send(
    6,
    0,
    0,
    (() => {
      const p = new Uint8Array(28 + 10);
      const v = new DataView(p.buffer);
      v.setUint32(0, 1, true);
      v.setUint32(4, 20 + 10, true);
      v.setUint16(8 + 4, 2, true); // KVPEXCHANGE
      v.setUint16(8 + 10, 10, true);
      p[8 + 17] = 3;
      p[28] = 1;
      return p;
    })(),
  );
  lb.pump();
  assert.ok(lb.guestCh.closed !== null);
});
