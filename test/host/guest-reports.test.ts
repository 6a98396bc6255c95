import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseGuestReport } from '../../src/host/guest-reports.ts';

const entry = {
  VMBusId: 1,
  ClassId: '0e0b6031-5213-4934-818b-38d90ced39db',
  DeviceId: 'b6650ff7-33bc-4840-8048-e0676786f393',
  Description: '[Operating system shutdown]',
  Driver: 'hv_utils',
};

test('well-formed guest reports are accepted as sent', () => {
  assert.deepEqual(parseGuestReport({ type: 'connected', version: 0x50003 }), {
    type: 'connected',
    version: 0x50003,
  });
  assert.deepEqual(parseGuestReport({ type: 'devices', devices: [entry] }), {
    type: 'devices',
    devices: [entry],
  });
  assert.deepEqual(parseGuestReport({ type: 'poweroff', reason: 'poweroff' }), {
    type: 'poweroff',
    reason: 'poweroff',
  });
});

test('malformed reports from an untrusted guest are rejected, not trusted', () => {
  assert.equal(parseGuestReport({ type: 'devices', devices: [{ ...entry, ClassId: 'not-a-guid' }] }), null);
  assert.equal(parseGuestReport({ type: 'devices', devices: [{ ...entry, VMBusId: -1 }] }), null);
  assert.equal(parseGuestReport({ type: 'devices', devices: new Array(5000).fill(entry) }), null);
  assert.equal(parseGuestReport({ type: 'poweroff', reason: 'x'.repeat(10_000) }), null);
  assert.equal(parseGuestReport({ type: 'connected', version: 1.5 }), null);
  assert.equal(parseGuestReport({ type: 'clock', offsetMs: Number.NaN }), null);
  assert.equal(parseGuestReport('connected'), null);
  assert.equal(parseGuestReport(null), null);
});

test('parseGuestReport is total: any value gives a report or null, never an exception', () => {
  fc.assert(
    fc.property(fc.anything(), (v) => {
      const r = parseGuestReport(v);
      assert.ok(r === null || typeof r.type === 'string');
    }),
    { numRuns: 2000 },
  );
});
