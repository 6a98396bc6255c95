// Guest negotiation rules (reference/vmbus-core-ics.md §6.2) against the offers of every host profile, and
// what the host makes of each kind of answer. Expected selections are worked out by hand from the rules.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  guestIcVersions,
  IcGuest,
  type IcGuestFlavor,
  selectIcVersions,
} from '../../../src/devices/ic/guest.ts';
import { hostIcOffer, IcHost, type IcOffer } from '../../../src/devices/ic/host.ts';
import { ICMSGTYPE_HEARTBEAT } from '../../../src/protocol/ic/icmsg.ts';
import { loopback } from './loopback.ts';

const V = (s: string) => {
  const [major, minor] = s.split('.').map(Number);
  return { major: major!, minor: minor! };
};
const fmt = (sel: ReturnType<typeof selectIcVersions>) =>
  sel && `${sel.framework.major}.${sel.framework.minor}/${sel.message.major}.${sel.message.minor}`;

// profile → [heartbeat, shutdown, timesync] expected "framework/message" per flavor
const PROFILES = ['WS2008R2', 'WS2012', 'WS2012R2', 'WS2016', 'WS2019', 'WS2022', 'WS2025'] as const;
const EXPECTED: Record<IcGuestFlavor, Record<(typeof PROFILES)[number], [string, string, string]>> = {
  linux: {
    WS2008R2: ['3.0/3.0', '3.0/3.0', '3.0/3.0'],
    WS2012: ['3.0/3.0', '3.0/3.0', '3.0/3.0'],
    WS2012R2: ['3.0/3.0', '3.0/3.0', '3.0/3.0'],
    WS2016: ['3.0/3.0', '3.0/3.0', '3.0/4.0'],
    WS2019: ['3.0/3.0', '3.0/3.2', '3.0/4.0'],
    WS2022: ['3.0/3.0', '3.0/3.2', '3.0/4.0'],
    WS2025: ['3.0/3.0', '3.0/3.2', '3.0/4.0'],
  },
  // FreeBSD's shutdown maximum is 3.0, so it never takes 3.1/3.2
  freebsd: {
    WS2008R2: ['3.0/3.0', '3.0/3.0', '3.0/3.0'],
    WS2012: ['3.0/3.0', '3.0/3.0', '3.0/3.0'],
    WS2012R2: ['3.0/3.0', '3.0/3.0', '3.0/3.0'],
    WS2016: ['3.0/3.0', '3.0/3.0', '3.0/4.0'],
    WS2019: ['3.0/3.0', '3.0/3.0', '3.0/4.0'],
    WS2022: ['3.0/3.0', '3.0/3.0', '3.0/4.0'],
    WS2025: ['3.0/3.0', '3.0/3.0', '3.0/4.0'],
  },
  openvmm: {
    WS2008R2: ['3.0/3.0', '3.0/3.0', '3.0/3.0'],
    WS2012: ['3.0/3.0', '3.0/3.0', '3.0/3.0'],
    WS2012R2: ['3.0/3.0', '3.0/3.0', '3.0/3.0'],
    WS2016: ['3.0/3.0', '3.0/3.0', '3.0/4.0'],
    WS2019: ['3.0/3.0', '3.0/3.2', '3.0/4.0'],
    WS2022: ['3.0/3.0', '3.0/3.2', '3.0/4.0'],
    WS2025: ['3.0/3.0', '3.0/3.2', '3.0/4.0'],
  },
};
const ICS = ['heartbeat', 'shutdown', 'timesync'] as const;

test('every flavor × profile × IC selects the versions its rule gives', () => {
  for (const flavor of ['linux', 'freebsd', 'openvmm'] as const) {
    for (const profile of PROFILES) {
      ICS.forEach((ic, i) => {
        const offer = hostIcOffer(profile, ic);
        const sel = selectIcVersions(
          flavor,
          { framework: [...offer.framework], message: [...offer.message] },
          guestIcVersions(flavor, ic),
        );
        assert.equal(fmt(sel), EXPECTED[flavor][profile][i], `${flavor} ${profile} ${ic}`);
      });
    }
  }
});

test('edge offers: FreeBSD may pick an unlisted version; Linux needs exact matches; OpenVMM falls back to its own', () => {
  const hb = (flavor: IcGuestFlavor, fw: string[], msg: string[]) =>
    fmt(
      selectIcVersions(
        flavor,
        { framework: fw.map(V), message: msg.map(V) },
        guestIcVersions(flavor, 'heartbeat'),
      ),
    );
  assert.equal(hb('linux', ['1.0'], ['1.0', '2.0']), '1.0/1.0');
  assert.equal(hb('freebsd', ['1.0'], ['1.0', '2.0']), '1.0/2.0');
  assert.equal(hb('openvmm', ['1.0'], ['1.0', '2.0']), '1.0/1.0');
  assert.equal(hb('linux', ['3.0'], ['5.0']), null);
  assert.equal(hb('freebsd', ['3.0'], ['5.0']), null);
  assert.equal(hb('openvmm', ['3.0'], ['5.0']), '3.0/3.0');
  assert.equal(hb('linux', ['2.0'], ['3.0']), null);
  assert.equal(hb('freebsd', ['2.0'], ['3.0']), '2.0/3.0');
});

function pair(flavor: IcGuestFlavor, offer: IcOffer) {
  return loopback(
    (ch) => new IcHost(ch, { icmsgtype: ICMSGTYPE_HEARTBEAT, offer, onResponse: () => {} }),
    (ch) =>
      new IcGuest(ch, {
        flavor,
        icmsgtype: ICMSGTYPE_HEARTBEAT,
        versions: guestIcVersions(flavor, 'heartbeat'),
        onRequest: () => {},
      }),
  );
}

test('failed negotiation: Linux answers counts 0/0, FreeBSD stays silent, OpenVMM names a version not offered', () => {
  const offer = { framework: [V('3.0')], message: [V('5.0')] };
  const linux = pair('linux', offer);
  linux.host.start();
  linux.pump();
  const reply = linux.guestCh.sent[0]!.payload;
  assert.deepEqual(reply.subarray(28, 32), Uint8Array.of(0, 0, 0, 0));
  assert.equal(linux.host.state, 'mismatch');
  assert.equal(linux.host.status.PrimaryStatusDescription, 'No Contact');
  assert.equal(linux.host.status.SecondaryOperationalStatus, 'ProtocolMismatch');

  const bsd = pair('freebsd', offer);
  bsd.host.start();
  bsd.pump();
  assert.equal(bsd.guestCh.sent.length, 0);
  assert.equal(bsd.host.state, 'negotiating');
  assert.equal(bsd.host.status.SecondaryOperationalStatus, null);

  const ovmm = pair('openvmm', offer);
  ovmm.host.start();
  ovmm.pump();
  assert.equal(ovmm.guestCh.sent.length, 1);
  assert.equal(ovmm.host.state, 'mismatch');
});

test('a guest on an older version than the host offers is OK with ProtocolMismatch as secondary status', () => {
  const lb = pair('freebsd', { framework: [V('1.0'), V('3.0')], message: [V('3.0'), V('4.0')] });
  lb.host.start();
  lb.pump();
  assert.deepEqual(lb.host.status, {
    PrimaryOperationalStatus: 'Ok',
    PrimaryStatusDescription: 'OK',
    SecondaryOperationalStatus: 'ProtocolMismatch',
    SecondaryStatusDescription: 'Protocol mismatch',
    frameworkVersion: '3.0',
    messageVersion: '3.0',
  });
});

test('Linux guest echoes a malformed NEGOTIATE (count over 100) without choosing; the host records a mismatch', () => {
  const lb = pair('linux', { framework: [V('3.0')], message: [V('3.0')] });
  lb.host.start();
  // corrupt the queued NEGOTIATE: icframe_vercnt = 101
  const sent = lb.hostCh.sent[0]!;
  sent.payload[28] = 101;
  lb.guest.onPacket({ ...sent, extHeader: new Uint8Array(0) });
  const reply = lb.guestCh.sent.at(-1)!.payload;
  assert.equal(reply[28], 101);
  assert.equal(lb.guest.negotiated, null);
});
