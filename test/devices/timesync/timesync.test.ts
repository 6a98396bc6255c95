import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IcGuestFlavor } from '../../../src/devices/ic/guest.ts';
import { hostIcOffer, type IcHostProfile } from '../../../src/devices/ic/host.ts';
import { TimesyncGuest } from '../../../src/devices/timesync/guest.ts';
import { TimesyncHost } from '../../../src/devices/timesync/host.ts';
import type { Clock } from '../../../src/vmbus/channel-io.ts';
import { loopback, ManualClock } from '../ic/loopback.ts';

/** Host clock = the manual clock; the guest's wall clock = host clock + an offset the guest may set. */
function setup(flavor: IcGuestFlavor, profile: IcHostProfile, guestAheadMs: number) {
  const clock = new ManualClock();
  const boot = clock.now();
  const ref = () => BigInt(clock.now() - boot) * 10_000n; // partition reference counter, 100-ns ticks
  let offset = guestAheadMs;
  const guestClock: Clock = { now: () => clock.now() + offset, setTimer: (ms, cb) => clock.setTimer(ms, cb) };
  const syncs: number[] = [];
  const lb = loopback(
    (ch) => new TimesyncHost(ch, { clock, referenceTime: ref, offer: hostIcOffer(profile, 'timesync') }),
    (ch) =>
      new TimesyncGuest(ch, {
        flavor,
        clock: guestClock,
        referenceTime: ref,
        setClock: (t) => {
          syncs.push(t);
          offset = t - clock.now();
        },
      }),
  );
  const skew = (ms: number) => {
    offset += ms;
  };
  return { clock, lb, syncs, skew, run: (ms: number) => clock.advance(ms, () => lb.pump()) };
}

test('v4: SYNC right after negotiation sets the guest clock; then one SAMPLE every 5 s', () => {
  const { lb, run, syncs, clock } = setup('linux', 'WS2025', 60_000);
  lb.host.start();
  lb.pump();
  assert.equal(lb.host.status.messageVersion, '4.0');
  assert.deepEqual(lb.host.sent, { sync: 1, sample: 0 });
  assert.deepEqual(syncs, [clock.now()]);
  assert.equal(lb.guest.offsetMs, 0);
  const sync = lb.hostCh.sent[1]!.payload;
  assert.equal(sync.length, 28 + 24); // ictimesync_ref_data as OpenVMM/FreeBSD size it
  assert.equal(sync[44], 1); // flags = ICTIMESYNCFLAG_SYNC at body offset 16
  run(20_000);
  assert.deepEqual(lb.host.sent, { sync: 1, sample: 4 });
  assert.equal(lb.hostCh.sent.at(-1)!.payload[44], 2);
  assert.equal(syncs.length, 1); // Linux only stores SAMPLEs
  assert.equal(lb.guest.lastSample?.flags, 2);
});

test('v4 corrects for delivery delay with vmreferencetime; v3 cannot', () => {
  for (const [profile, expected] of [
    ['WS2016', 0],
    ['WS2012', 300],
  ] as const) {
    const { lb, clock } = setup('linux', profile, 0);
    lb.host.start();
    lb.pump();
    clock.advance(5000); // SAMPLE queued, not delivered
    clock.advance(300);
    lb.pump();
    assert.equal(lb.guest.lastSample?.flags, 2);
    assert.equal(lb.guest.offsetMs, expected, profile);
  }
});

test('v3 path: 28-byte ictimesync_data with parenttime as FILETIME, flags at body offset 24', () => {
  const { lb, clock } = setup('linux', 'WS2012R2', 0);
  lb.host.start();
  lb.pump();
  assert.equal(lb.host.status.messageVersion, '3.0');
  const sync = lb.hostCh.sent[1]!.payload;
  assert.equal(sync.length, 28 + 28);
  assert.equal(
    new DataView(sync.buffer).getBigUint64(28, true),
    BigInt(clock.now()) * 10_000n + 116444736000000000n,
  );
  assert.equal(sync[52], 1);
});

test('resume() sends a SYNC again; a guest that drifted is set back', () => {
  const { lb, run, syncs } = setup('linux', 'WS2025', 0);
  lb.host.start();
  lb.pump();
  lb.host.resume();
  lb.pump();
  assert.deepEqual(lb.host.sent, { sync: 2, sample: 0 });
  assert.equal(syncs.length, 2);
  run(5000);
  assert.deepEqual(lb.host.sent, { sync: 2, sample: 1 });
});

test('FreeBSD applies a SAMPLE whose drift exceeds 100 ms; Linux only reports the offset', () => {
  for (const [flavor, syncCount, offset] of [
    ['freebsd', 2, 0],
    ['linux', 1, 2000],
  ] as const) {
    const { lb, run, syncs, skew } = setup(flavor, 'WS2025', 0);
    lb.host.start();
    lb.pump();
    assert.equal(lb.host.status.messageVersion, '4.0', flavor);
    skew(2000);
    run(5000);
    assert.equal(syncs.length, syncCount, flavor);
    assert.equal(lb.guest.offsetMs, offset, flavor);
  }
});

test('FreeBSD leaves a SAMPLE within 100 ms alone', () => {
  const { lb, run, syncs, skew } = setup('freebsd', 'WS2025', 0);
  lb.host.start();
  lb.pump();
  skew(80);
  run(5000);
  assert.equal(syncs.length, 1);
  assert.equal(lb.guest.offsetMs, 80);
});

test('the host reads the offset the guest model forwards', () => {
  const { lb, run, skew } = setup('linux', 'WS2025', 1500);
  assert.equal(lb.host.guestOffsetMs, null);
  lb.host.start();
  lb.pump();
  skew(-250);
  run(5000);
  lb.host.noteGuestOffset(lb.guest.offsetMs!);
  assert.equal(lb.host.guestOffsetMs, -250);
});
