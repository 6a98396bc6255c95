import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IcGuestFlavor } from '../../../src/devices/ic/guest.ts';
import { hostIcOffer, type IcHostProfile } from '../../../src/devices/ic/host.ts';
import { ShutdownGuest, type ShutdownKind } from '../../../src/devices/shutdown/guest.ts';
import { ShutdownHost } from '../../../src/devices/shutdown/host.ts';
import { isHvError } from '../../../src/protocol/errors.ts';
import { loopback, ManualClock } from '../ic/loopback.ts';

function setup(flavor: IcGuestFlavor, opts: { canHibernate?: boolean; profile?: IcHostProfile } = {}) {
  const clock = new ManualClock();
  const actions: ShutdownKind[] = [];
  let repliesWhenHookRan = -1;
  const lb = loopback(
    (ch) =>
      new ShutdownHost(ch, {
        clock,
        responseTimeoutMs: 10_000,
        offer: hostIcOffer(opts.profile ?? 'WS2025', 'shutdown'),
      }),
    (ch) =>
      new ShutdownGuest(ch, {
        flavor,
        canHibernate: opts.canHibernate ?? false,
        onShutdown: (kind) => {
          actions.push(kind);
          repliesWhenHookRan = lb.guestCh.sent.length;
        },
      }),
  );
  lb.host.start();
  lb.pump();
  return { clock, lb, actions, repliesBeforeHook: () => repliesWhenHookRan };
}

async function settle<T>(p: Promise<T>, lb: { pump(): void }): Promise<T> {
  lb.pump();
  return p;
}

const rejectsWith = (code: string) => (e: unknown) => isHvError(e) && e.code === code;

test('Linux guest: poweroff is answered HV_S_OK before the OS hook runs, with the request flags on the wire', async () => {
  const { lb, actions, repliesBeforeHook } = setup('linux');
  assert.equal(lb.host.status.messageVersion, '3.2');
  const r = await settle(lb.host.requestShutdown({ force: true, timeoutSeconds: 30, message: 'bye' }), lb);
  assert.equal(r.status, 0);
  assert.deepEqual(actions, ['poweroff']);
  assert.equal(repliesBeforeHook(), 2); // negotiate reply + shutdown reply were already sent
  const req = lb.hostCh.sent.at(-1)!.payload;
  assert.equal(req.length, 28 + 2060);
  const dv = new DataView(req.buffer);
  assert.equal(dv.getUint32(28, true), 0x80000000); // SHTDN_REASON_FLAG_PLANNED
  assert.equal(dv.getUint32(32, true), 30);
  assert.equal(dv.getUint32(36, true), 1); // force
  assert.deepEqual(req.subarray(40, 44), Uint8Array.of(0x62, 0x79, 0x65, 0));
  const rep = lb.guestCh.sent.at(-1)!.payload;
  assert.equal(rep.length, req.length);
  assert.equal(rep[25], 5);
});

test('Linux guest: restart → reboot; hibernate → HV_E_FAIL unless it can hibernate', async () => {
  const a = setup('linux');
  await settle(a.lb.host.requestShutdown({ restart: true }), a.lb);
  assert.deepEqual(a.actions, ['reboot']);

  const b = setup('linux');
  await assert.rejects(settle(b.lb.host.requestShutdown({ hibernate: true }), b.lb), (e: unknown) => {
    return isHvError(e, 'HV_ERR_INVALID_STATE') && e.details?.status === 0x80004005;
  });
  assert.deepEqual(b.actions, []);

  const c = setup('linux', { canHibernate: true });
  await settle(c.lb.host.requestShutdown({ hibernate: true, force: true }), c.lb);
  assert.deepEqual(c.actions, ['hibernate']);
});

test('FreeBSD guest negotiates 3.0: restart and hibernate are refused by the host before sending', async () => {
  const { lb, actions } = setup('freebsd');
  assert.equal(lb.host.status.messageVersion, '3.0');
  assert.equal(lb.host.status.SecondaryOperationalStatus, 'ProtocolMismatch'); // host offers up to 3.2
  const sentBefore = lb.hostCh.sent.length;
  await assert.rejects(lb.host.requestShutdown({ restart: true }), rejectsWith('HV_ERR_UNSUPPORTED'));
  await assert.rejects(lb.host.requestShutdown({ hibernate: true }), rejectsWith('HV_ERR_UNSUPPORTED'));
  assert.equal(lb.hostCh.sent.length, sentBefore);
  await settle(lb.host.requestShutdown({}), lb);
  assert.deepEqual(actions, ['poweroff']);
});

test('OpenVMM guest: restart bit wins, a second request while in progress gets HV_E_FAIL', async () => {
  const { lb, actions } = setup('openvmm');
  await settle(lb.host.requestShutdown({ restart: true }), lb);
  await assert.rejects(settle(lb.host.requestShutdown({}), lb), rejectsWith('HV_ERR_INVALID_STATE'));
  assert.deepEqual(actions, ['reboot']);
});

test('WS2012 profile offers 1.0 and 3.0 only', () => {
  const { lb } = setup('linux', { profile: 'WS2012' });
  assert.equal(lb.host.status.messageVersion, '3.0');
  assert.equal(lb.host.status.SecondaryOperationalStatus, null);
});

test('no reply in time → HV_ERR_TIMEOUT; channel close → HV_ERR_CHANNEL_CLOSED; not negotiated → INVALID_STATE', async () => {
  const a = setup('linux');
  a.lb.guestAlive = false;
  const p = a.lb.host.requestShutdown({});
  a.clock.advance(10_000, () => a.lb.pump());
  await assert.rejects(p, rejectsWith('HV_ERR_TIMEOUT'));

  const b = setup('linux');
  b.lb.guestAlive = false;
  const q = b.lb.host.requestShutdown({});
  b.lb.hostCh.close();
  await assert.rejects(q, rejectsWith('HV_ERR_CHANNEL_CLOSED'));

  const clock = new ManualClock();
  const c = loopback(
    (ch) => new ShutdownHost(ch, { clock }),
    (ch) => new ShutdownGuest(ch, { onShutdown: () => {} }),
  );
  await assert.rejects(c.host.requestShutdown({}), rejectsWith('HV_ERR_INVALID_STATE'));
  assert.equal(c.host.status.PrimaryStatusDescription, 'No Contact');
});

test('Linux guest drops a shutdown body shorter than 2060 bytes without replying', () => {
  const { lb, actions } = setup('linux');
  const before = lb.guestCh.sent.length;
  const neg = lb.guestCh.sent[0]!.payload;
  // a shutdown request with a 12-byte body, framed with the negotiated versions
  const req = new Uint8Array(40);
  req.set(neg.subarray(0, 28));
  new DataView(req.buffer).setUint32(4, 32, true);
  req.set([3, 0, 3, 0, 3, 0, 2, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0], 8);
  lb.hostCh.send(6, 0, 0, req);
  lb.pump();
  assert.equal(lb.guestCh.sent.length, before);
  assert.deepEqual(actions, []);
});
