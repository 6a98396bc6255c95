import assert from 'node:assert/strict';
import { test } from 'node:test';
import { INTEGRATION_SERVICES, type IntegrationServiceName } from '../../src/host/integration-services.ts';
import { NORMAL_STATUS, Vm, type VmHost } from '../../src/host/vm.ts';
import { newVmConfig, type VmConfig } from '../../src/host/vm-config.ts';
import type { GuestExit, IcStatus, VmSession } from '../../src/host/vm-session-types.ts';
import { HvError } from '../../src/protocol/errors.ts';

/** A scriptable stand-in for the running machine. */
class FakeSession implements VmSession {
  readonly ready: Promise<void>;
  readonly exited: Promise<GuestExit>;
  exit!: (e: GuestExit) => void;
  connect!: () => void;
  offered = new Map<IntegrationServiceName, boolean>();
  /** What shutdown() does: 'poweroff' (guest complies), 'refuse', 'hang'. */
  guest: 'poweroff' | 'refuse' | 'hang' = 'poweroff';
  turnedOff = false;

  constructor() {
    this.ready = new Promise((r) => {
      this.connect = r;
    });
    this.exited = new Promise((r) => {
      this.exit = r;
    });
  }
  async shutdown(timeoutMs: number): Promise<void> {
    if (this.guest === 'refuse') throw new HvError('HV_ERR_INVALID_STATE', 'guest refused');
    if (this.guest === 'hang') {
      await new Promise((r) => setTimeout(r, timeoutMs));
      throw new HvError('HV_ERR_TIMEOUT', 'no power off');
    }
    this.exit({ clean: true, reason: 'poweroff' });
  }
  async turnOff(): Promise<void> {
    this.turnedOff = true;
    this.exit({ clean: false, reason: 'terminated' });
  }
  setOffered(name: IntegrationServiceName, on: boolean): void {
    this.offered.set(name, on);
  }
  icStatus(): IcStatus {
    return { primary: 'OK', secondary: null, version: '3.0' };
  }
  heartbeat() {
    return 'OkApplicationsUnknown' as const;
  }
  lsvmbus() {
    return [];
  }
  ipAddresses() {
    return [];
  }
}

function setup(): { vm: Vm; sessions: FakeSession[]; saved: VmConfig[]; logs: string[] } {
  const sessions: FakeSession[] = [];
  const saved: VmConfig[] = [];
  const logs: string[] = [];
  const host: VmHost = {
    save: async (c) => {
      saved.push(c);
    },
    createSession: async () => {
      const s = new FakeSession();
      sessions.push(s);
      queueMicrotask(() => s.connect());
      return s;
    },
    configVersion: '12.0',
    log: (_vm, m) => logs.push(m),
  };
  return { vm: new Vm(newVmConfig({ name: 'vm1' }), host), sessions, saved, logs };
}

test('start → Running with uptime counting; graceful stop asks the guest and ends Off', async () => {
  const { vm, sessions } = setup();
  assert.equal(vm.state, 'Off');
  await vm.start();
  assert.equal(vm.state, 'Running');
  assert.equal(vm.view().MemoryAssigned, 1024 ** 3);
  assert.equal(vm.view().Heartbeat, 'OkApplicationsUnknown');
  await vm.stop({ mode: 'shutdown' });
  assert.equal(vm.state, 'Off');
  assert.equal(sessions[0]!.turnedOff, false);
  assert.equal(vm.view().Heartbeat, null);
  assert.equal(vm.view().MemoryAssigned, 0);
});

test('a refused graceful stop keeps the VM running; --force turns it off instead', async () => {
  const { vm, sessions } = setup();
  await vm.start();
  sessions[0]!.guest = 'refuse';
  await assert.rejects(vm.stop({ mode: 'shutdown' }), /guest refused/);
  assert.equal(vm.state, 'Running');
  await vm.stop({ mode: 'force', timeoutMs: 10 });
  assert.equal(vm.state, 'Off');
  assert.equal(sessions[0]!.turnedOff, true);
  assert.equal(vm.status, NORMAL_STATUS);
});

test('--force also powers off a guest that accepted but never stops (after the timeout)', async () => {
  const { vm, sessions } = setup();
  await vm.start();
  sessions[0]!.guest = 'hang';
  await vm.stop({ mode: 'force', timeoutMs: 20 });
  assert.equal(vm.state, 'Off');
  assert.equal(sessions[0]!.turnedOff, true);
});

test('a guest that dies on its own marks only this VM: Off with a Status saying why', async () => {
  const { vm, sessions, logs } = setup();
  await vm.start();
  sessions[0]!.exit({ clean: false, reason: 'Error: boom' });
  await sessions[0]!.exited;
  await new Promise((r) => setImmediate(r));
  assert.equal(vm.state, 'Off');
  assert.equal(vm.status, 'Guest stopped unexpectedly: Error: boom');
  assert.ok(logs.some((l) => l.includes('boom')));
  // It can be started again, and the Status clears.
  await vm.start();
  assert.equal(vm.state, 'Running');
  assert.equal(vm.status, NORMAL_STATUS);
});

test('graceful stop with Shutdown disabled fails saying so; --turn-off still works', async () => {
  const { vm } = setup();
  await vm.setIntegrationService('shutdown', false);
  await vm.start();
  await assert.rejects(vm.stop({ mode: 'shutdown' }), /Shutdown integration service is disabled/);
  await vm.stop({ mode: 'turnOff' });
  assert.equal(vm.state, 'Off');
});

test('enable/disable persists the flag and offers/rescinds the channel on a running VM only for built services', async () => {
  const { vm, sessions, saved } = setup();
  await vm.start();
  const v = await vm.setIntegrationService('Time Synchronization', false);
  assert.equal(v.Enabled, false);
  assert.equal(v.PrimaryStatusDescription, null);
  assert.equal(saved.at(-1)!.integrationServices['Time Synchronization'], false);
  assert.equal(sessions[0]!.offered.get('Time Synchronization'), false);
  await assert.rejects(
    vm.setIntegrationService('Bogus', true),
    /no integration service named 'Bogus'.*'Heartbeat'/,
  );
  // Services whose device is not built yet are listed honestly and never offered.
  for (const spec of INTEGRATION_SERVICES.filter((x) => !x.implemented)) {
    const st = vm.integrationServices().find((x) => x.Name === spec.name)!;
    assert.equal(st.PrimaryStatusDescription, 'No Contact');
    assert.match(st.SecondaryStatusDescription!, new RegExp(`does not implement ${spec.name}`));
    await vm.setIntegrationService(spec.name, false);
    await vm.setIntegrationService(spec.name, true);
    assert.equal(sessions[0]!.offered.has(spec.name), false);
  }
});

test('Restart-VM is a hard restart: the old guest is powered off without being asked, a new one starts', async () => {
  const { vm, sessions } = setup();
  await assert.rejects(vm.restart(), /is Off: only a running VM can be restarted/);
  await vm.start();
  sessions[0]!.guest = 'refuse'; // would fail a graceful stop; a restart never asks
  await vm.restart();
  assert.equal(sessions[0]!.turnedOff, true);
  assert.equal(sessions.length, 2);
  assert.equal(vm.state, 'Running');
});

test('a guest that reboots itself (shutdown IC restart) comes back Running in a new session', async () => {
  const { vm, sessions } = setup();
  await vm.start();
  sessions[0]!.exit({ clean: true, reason: 'reboot' });
  for (let i = 0; i < 20 && sessions.length < 2; i++) await new Promise((r) => setImmediate(r));
  await sessions[1]!.ready;
  for (let i = 0; i < 20 && vm.state !== 'Running'; i++) await new Promise((r) => setImmediate(r));
  assert.equal(vm.state, 'Running');
  assert.equal(vm.status, NORMAL_STATUS);
});
