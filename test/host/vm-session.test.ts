import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Host } from '../../src/host/host.ts';
import { createVmSessionFactory } from '../../src/host/vm-session.ts';
import { hostProfile } from '../../src/vmbus/host-profiles.ts';
import { until } from '../fixtures/until.ts';

const crashing = new URL('./fixtures/crashing-guest.js', import.meta.url);

async function openHost(workerUrl?: URL) {
  const logs: string[] = [];
  const host = await Host.open({
    home: await mkdtemp(join(tmpdir(), 'hvis-sess-')),
    createSession: createVmSessionFactory({
      profile: hostProfile('WS2025'),
      log: (vm, m) => logs.push(`${vm}: ${m}`),
      connectTimeoutMs: 10_000,
      ...(workerUrl && { workerUrl }),
    }),
    log: (vm, m) => logs.push(`${vm}: ${m}`),
  });
  return { host, logs };
}

test('a guest worker that crashes after connecting marks its VM Off; the host and its other VM keep running', async () => {
  const { host: good } = await openHost();
  const { host: bad, logs } = await openHost(crashing);
  const healthy = await good.newVm({ name: 'healthy' });
  const victim = await bad.newVm({ name: 'victim' });
  await healthy.start();
  await victim.start();
  assert.equal(victim.state, 'Running');
  await until(() => victim.state === 'Off', 'the crashed VM to be Off');
  assert.match(victim.status, /Guest stopped unexpectedly: .*guest kernel panic/);
  assert.ok(logs.some((l) => l.includes('ignoring a malformed report')));
  // The other VM, in the same process, is untouched and still answers its services.
  assert.equal(healthy.state, 'Running');
  await until(
    () => healthy.integrationServices().find((s) => s.Name === 'Shutdown')!.PrimaryStatusDescription === 'OK',
    'shutdown OK',
  );
  await healthy.stop({ mode: 'shutdown', timeoutMs: 10_000 });
  assert.equal(healthy.state, 'Off');
});

test('a guest that dies before connecting fails Start-VM with the reason; the VM stays Off and can be retried', async () => {
  process.env.HVIS_TEST_GUEST_MODE = 'early';
  try {
    const { host } = await openHost(crashing);
    const vm = await host.newVm({ name: 'early' });
    await assert.rejects(vm.start(), /stopped before connecting: .*guest kernel panic before VMBus/);
    assert.equal(vm.state, 'Off');
    assert.match(vm.status, /Start failed/);
  } finally {
    delete process.env.HVIS_TEST_GUEST_MODE;
  }
});
