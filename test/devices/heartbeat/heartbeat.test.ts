import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HeartbeatGuest } from '../../../src/devices/heartbeat/guest.ts';
import { HeartbeatHost } from '../../../src/devices/heartbeat/host.ts';
import { loopback, ManualClock } from '../ic/loopback.ts';

const hex = (s: string) => Uint8Array.from(s.match(/[0-9a-f]{2}/g)!.map((b) => Number.parseInt(b, 16)));

function setup(flavor: 'linux' | 'freebsd' = 'linux') {
  const clock = new ManualClock();
  const lb = loopback(
    (ch) => new HeartbeatHost(ch, { clock, intervalMs: 1000, lostAfterMissed: 3 }),
    (ch) => new HeartbeatGuest(ch, { flavor }),
  );
  return { clock, lb, run: (ms: number) => clock.advance(ms, () => lb.pump()) };
}

test('NEGOTIATE from the host is INBAND, flags 0, trans_id 0, framework [1.0, 3.0], heartbeat [1.0, 3.0]', () => {
  const { lb } = setup();
  lb.host.start();
  const [neg] = lb.hostCh.sent;
  assert.ok(neg);
  assert.equal(neg.type, 6);
  assert.equal(neg.flags, 0);
  assert.equal(neg.transId, 0);
  // pipe DATA, len 20+24; versions 0.0, type 0, icmsgsize 24, flags 3; counts 2/2; 1.0 3.0 | 1.0 3.0
  assert.deepEqual(
    neg.payload,
    hex(
      '01000000 2c000000 00000000 0000 00000000 1800 00000000 00 03 0000 0200 0200 00000000 0100 0000 0300 0000 0100 0000 0300 0000',
    ),
  );
});

test('Linux guest answers NEGOTIATE with counts 1/1, 3.0/3.0, icmsgsize 16, same length and trans_id', () => {
  const { lb } = setup();
  lb.host.start();
  lb.pump();
  const [reply] = lb.guestCh.sent;
  assert.ok(reply);
  assert.equal(reply.payload.length, lb.hostCh.sent[0]!.payload.length);
  assert.equal(reply.transId, 0);
  assert.equal(reply.payload[25], 5); // TRANSACTION|RESPONSE
  assert.deepEqual(reply.payload.subarray(18, 20), hex('1000'));
  assert.deepEqual(reply.payload.subarray(28, 44), hex('0100 0100 00000000 0300 0000 0300 0000'));
  assert.equal(lb.host.status.messageVersion, '3.0');
  assert.equal(lb.host.status.SecondaryOperationalStatus, null);
});

test('heartbeat: NoContact before any beat, OkApplicationsUnknown while answered, LostCommunication after misses', () => {
  const { lb, run } = setup();
  assert.equal(lb.host.heartbeat, 'NoContact');
  lb.host.start();
  lb.pump();
  assert.equal(lb.host.heartbeat, 'NoContact'); // negotiated, but no beat yet
  assert.equal(lb.host.status.PrimaryStatusDescription, 'No Contact');
  run(1000);
  assert.equal(lb.host.heartbeat, 'OkApplicationsUnknown');
  assert.equal(lb.host.status.PrimaryStatusDescription, 'OK');
  const req = lb.hostCh.sent.at(-1)!;
  const rep = lb.guestCh.sent.at(-1)!;
  assert.deepEqual(req.payload.subarray(28, 36), hex('0100000000000000'));
  assert.deepEqual(rep.payload.subarray(28, 36), hex('0200000000000000')); // seq + 1
  run(5000);
  assert.equal(lb.guest.beats, 6);
  lb.guestAlive = false;
  run(3000);
  assert.equal(lb.host.heartbeat, 'OkApplicationsUnknown'); // 3 missed periods: not yet over the limit
  run(1000);
  assert.equal(lb.host.heartbeat, 'LostCommunication');
  assert.equal(lb.host.status.PrimaryStatusDescription, 'Lost Communication');
  lb.guestAlive = true;
  run(1000);
  assert.equal(lb.host.heartbeat, 'OkApplicationsUnknown');
});

test('a guest that answers with the wrong sequence number is not counted as alive', () => {
  const clock = new ManualClock();
  const lb = loopback(
    (ch) => new HeartbeatHost(ch, { clock, intervalMs: 1000 }),
    (ch) => ({
      // echoes the request as a response without incrementing seq_num
      onPacket(p) {
        const b = p.payload.slice();
        b[25] = 5;
        if (b[12] === 0) b.set(hex('0100 0100 00000000 0300 0000 0300 0000'), 28);
        ch.send(6, 0, p.transId, b);
      },
    }),
  );
  lb.host.start();
  clock.advance(5000, () => lb.pump());
  assert.equal(lb.host.status.messageVersion, '3.0');
  assert.equal(lb.host.heartbeat, 'NoContact');
});

test('FreeBSD guest negotiates against a host offering only 1.0 and beats', () => {
  const clock = new ManualClock();
  const lb = loopback(
    (ch) =>
      new HeartbeatHost(ch, {
        clock,
        intervalMs: 1000,
        offer: { framework: [{ major: 1, minor: 0 }], message: [{ major: 1, minor: 0 }] },
      }),
    (ch) => new HeartbeatGuest(ch, { flavor: 'freebsd' }),
  );
  lb.host.start();
  lb.pump();
  clock.advance(1000, () => lb.pump());
  assert.deepEqual(lb.guest.negotiated, {
    framework: { major: 1, minor: 0 },
    message: { major: 1, minor: 0 },
  });
  assert.equal(lb.host.heartbeat, 'OkApplicationsUnknown');
});

test('a malformed reply closes the channel with a ProtocolError', () => {
  const { lb } = setup();
  lb.host.start();
  lb.pump();
  lb.guestCh.send(6, 0, 0, new Uint8Array(12));
  lb.pump();
  assert.equal((lb.hostCh.closed as Error | undefined)?.name, 'ProtocolError');
});
