/**
 * Fibre Channel adapters live in the VM configuration: an old side file (`<home>/fibrechannel/<id>.json`)
 * is read, moved into the configuration on the next change, and removed; the configuration is validated.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { addVmFibreChannelHba, getVmFibreChannelHbas } from '../../src/host/fibre-channel.ts';
import { Host } from '../../src/host/host.ts';
import { parseVmConfig } from '../../src/host/vm-config.ts';
import { isHvError } from '../../src/protocol/errors.ts';

test('FC adapters: side file migrated into the VM configuration, validated there', async (t) => {
  const home = await mkdtemp(join(tmpdir(), 'hvis-fc-'));
  t.after(() => rm(home, { recursive: true, force: true }));
  const host = await Host.open({ home });
  const vm = await host.newVm({ name: 'fc1' });
  const old = {
    SanName: 'san0',
    WorldWideNodeNameSetA: 'C003FF0000FFFF00',
    WorldWidePortNameSetA: 'C003FF0000000001',
    WorldWideNodeNameSetB: 'C003FF0000FFFF00',
    WorldWidePortNameSetB: 'C003FF0000000002',
  };
  const side = join(home, 'fibrechannel', `${vm.config.id}.json`);
  mkdirSync(join(home, 'fibrechannel'));
  writeFileSync(side, JSON.stringify([old]));
  assert.deepEqual(getVmFibreChannelHbas(home, vm), [{ VMName: 'fc1', ...old }]);

  await addVmFibreChannelHba(home, vm, { sanName: 'san1', wwpn: 'c003ff0000000003' });
  assert.equal(existsSync(side), false, 'the side file is gone once the list is in the configuration');
  const file = join(home, 'vms', 'fc1.json');
  const stored = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const cfg = parseVmConfig(stored, file);
  assert.deepEqual(
    cfg.fibreChannelAdapters?.map((a) => [a.sanName, a.wwpnA]),
    [
      ['san0', 'C003FF0000000001'],
      ['san1', 'C003FF0000000003'],
    ],
  );
  const reopened = await Host.open({ home });
  assert.equal(getVmFibreChannelHbas(home, reopened.vm('fc1')).length, 2);

  const bad = { ...stored, fibreChannelAdapters: [{ ...cfg.fibreChannelAdapters![0], wwpnA: 'XYZ' }] };
  assert.throws(
    () => parseVmConfig(bad, file),
    (e) => isHvError(e, 'HV_ERR_CORRUPT') && /fibreChannelAdapters\[0\]\.wwpnA/.test(e.message),
  );
});
