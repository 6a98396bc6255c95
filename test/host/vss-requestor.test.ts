/**
 * VSS on a whole VM: Host → Vm → session (VssHost) → shared-memory VMBus → guest worker (VssGuest driver +
 * our in-process hv_vss_daemon, default policy: no filesystems named, so nothing is frozen). `backup(fn)`
 * freezes, runs fn, and always thaws, also when fn fails.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { test } from 'node:test';
import { isHvError } from '../../src/protocol/errors.ts';
import { openTestHost } from '../fixtures/test-host.ts';
import { until } from '../fixtures/until.ts';

test('Vm.backup: VSS connects by default; fn runs frozen; the thaw comes even when fn throws', async (t) => {
  const { home, host } = await openTestHost('hvis-vss-');
  t.after(() => rm(home, { recursive: true, force: true }));
  const vm = await host.newVm({ name: 'vss1' });
  await assert.rejects(
    vm.backup(async () => 1),
    (e) => isHvError(e, 'HV_ERR_INVALID_STATE'),
  );
  await vm.start();
  t.after(() => vm.stop({ mode: 'turnOff' }));
  await until(
    () => vm.integrationServices().find((s) => s.Name === 'VSS')?.PrimaryStatusDescription === 'OK',
    'VSS to connect',
  );
  assert.equal(await vm.backup(async () => 42), 42);
  await assert.rejects(
    vm.backup(async () => {
      throw new Error('snapshot failed');
    }),
    /snapshot failed/,
  );
  // Thawed: a new freeze/thaw pair is accepted.
  await vm.vssFreeze();
  await vm.vssThaw();
});
