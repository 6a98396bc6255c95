/**
 * KVP on a whole VM (guest worker, VMBus rings, our in-process daemon): the service is OK, the guest's
 * intrinsic items arrive, host items reach the guest's pool 0 file in the C daemon's record layout, survive a
 * daemon restart, and bad keys are refused at the API with clear errors.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parsePool } from '../../src/guest/daemons/kvp/pool-file.ts';
import { isHvError } from '../../src/protocol/errors.ts';
import { openTestHost } from '../fixtures/test-host.ts';
import { until } from '../fixtures/until.ts';

test('a running VM exchanges KVP items with our guest daemon', async () => {
  const { home, host } = await openTestHost('hvis-kvp-');
  process.env.HVIS_HOME = home;
  const vm = await host.newVm({ name: 'kvp1' });
  await vm.start();
  try {
    const svc = () => vm.integrationServices().find((s) => s.Name === 'Key-Value Pair Exchange')!;
    await until(() => svc().PrimaryStatusDescription === 'OK', 'KVP OK', 15_000);
    assert.equal(svc().ProtocolVersion, '4.0'); // Linux's highest, offered by WS2025
    const ex = vm.kvpExchange();
    await until(() => ex.intrinsic('OSBuildNumber') !== null, 'intrinsic items', 15_000);
    assert.equal(ex.intrinsic('OSBuildNumber'), release());
    assert.equal(ex.intrinsic('IntegrationServicesVersion'), '3.1');

    await ex.setHostItem('Color', 'blue', 'add');
    await assert.rejects(ex.setHostItem('Color', 'red', 'add'), (e) => isHvError(e, 'HV_ERR_ALREADY_EXISTS'));
    await ex.setHostItem('Color', 'green', 'modify');
    await assert.rejects(ex.setHostItem('x'.repeat(256), 'v', 'set'), (e) =>
      isHvError(e, 'HV_ERR_INVALID_ARGUMENT'),
    );
    await assert.rejects(ex.setHostItem('k', 'v'.repeat(1024), 'set'), (e) =>
      isHvError(e, 'HV_ERR_INVALID_ARGUMENT'),
    );
    await assert.rejects(ex.setHostItem('', 'v', 'set'), (e) => isHvError(e, 'HV_ERR_INVALID_ARGUMENT'));
    const pool0 = parsePool(readFileSync(join(home, 'guests/kvp1/hyperv/.kvp_pool_0')));
    assert.deepEqual(
      pool0.find((r) => r.key === 'Color'),
      { key: 'Color', value: 'green' },
    );
    const pool3 = parsePool(readFileSync(join(home, 'guests/kvp1/hyperv/.kvp_pool_3')));
    assert.equal(pool3.find((r) => r.key === 'VirtualMachineName')?.value, 'kvp1');
    await ex.removeHostItem('Color');
    assert.equal(
      parsePool(readFileSync(join(home, 'guests/kvp1/hyperv/.kvp_pool_0'))).some((r) => r.key === 'Color'),
      false,
    );
    await assert.rejects(ex.removeHostItem('Color'), (e) => isHvError(e, 'HV_ERR_NOT_FOUND'));
  } finally {
    await vm.stop({ mode: 'turnOff', timeoutMs: 5000 });
    await host.close?.();
  }
});
