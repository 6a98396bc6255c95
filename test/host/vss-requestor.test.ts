/**
 * VSS on a whole VM: Host → Vm → session (VssHost) → shared-memory VMBus → guest worker (VssGuest driver +
 * our in-process hv_vss_daemon, default policy: no filesystems named, so nothing is frozen). `backup(fn)`
 * freezes, runs fn, and always thaws, also when fn fails.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Host } from '../../src/host/host.ts';
import { createVmSessionFactory } from '../../src/host/vm-session.ts';
import { isHvError } from '../../src/protocol/errors.ts';
import { hostProfile } from '../../src/vmbus/host-profiles.ts';

test('Vm.backup: VSS connects by default; fn runs frozen; the thaw comes even when fn throws', async (t) => {
  const home = await mkdtemp(join(tmpdir(), 'hvis-vss-'));
  t.after(() => rm(home, { recursive: true, force: true }));
  const host = await Host.open({
    home,
    createSession: createVmSessionFactory({
      profile: hostProfile('WS2025'),
      log: () => {},
      connectTimeoutMs: 10_000,
    }),
    log: () => {},
  });
  const vm = await host.newVm({ name: 'vss1' });
  await assert.rejects(
    vm.backup(async () => 1),
    (e) => isHvError(e, 'HV_ERR_INVALID_STATE'),
  );
  await vm.start();
  t.after(() => vm.stop({ mode: 'turnOff' }));
  const end = Date.now() + 10_000;
  while (vm.integrationServices().find((s) => s.Name === 'VSS')?.PrimaryStatusDescription !== 'OK') {
    if (Date.now() > end) throw new Error('VSS did not connect');
    await new Promise((r) => setTimeout(r, 20));
  }
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
