import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { INTEGRATION_SERVICES } from '../../src/host/integration-services.ts';
import type { VmView } from '../../src/host/vm-view.ts';
import { hvis, spawnUp, until } from './run-cli.ts';

const home = () => mkdtemp(join(tmpdir(), 'hvis-up-'));

/**
 * Versions a Linux guest settles on against a WS2025 host (vmbus-core-ics.md §6.2): heartbeat 3.0 (Linux
 * knows 3.0, 1.0), shutdown 3.2 (Linux's highest; the host offers up to 3.2), time sync 4.0.
 */
const EXPECTED = { Heartbeat: '3.0', Shutdown: '3.2', 'Time Synchronization': '4.0' } as const;

function allOk(v: VmView | undefined): boolean {
  if (v?.State !== 'Running') return false;
  return Object.entries(EXPECTED).every(([name, ver]) => {
    const s = v.IntegrationServices.find((x) => x.Name === name);
    return s?.PrimaryStatusDescription === 'OK' && s.ProtocolVersion === ver;
  });
}

test('hvis up --exit-after --json: default vm1 Running with its services OK, then Off after a graceful shutdown', async () => {
  const h = await home();
  const up = spawnUp(h, ['--exit-after', '7', '--json', '--api-port', '0']);
  const code = await up.exit;
  assert.equal(code, 0, up.stderr.join(''));
  const frames = up.lines.map((l) => JSON.parse(l) as VmView[]);
  assert.ok(frames.length >= 3, `one line per refresh, got ${frames.length}`);
  const running = frames.map((f) => f.find((v) => v.Name === 'vm1')).find(allOk);
  assert.ok(
    running,
    `no refresh showed vm1 Running with Heartbeat/Shutdown/Time Synchronization OK:\n${up.lines.at(-2)}`,
  );
  assert.equal(running.Heartbeat, 'OkApplicationsUnknown');
  assert.equal(running.MemoryAssigned, 1024 ** 3);
  assert.deepEqual(
    running.NetworkAdapters.map((n) => n.SwitchName),
    ['Default Switch'],
  );
  // Every integration service is listed; enabled ones not built yet say so instead of pretending.
  assert.equal(running.IntegrationServices.length, INTEGRATION_SERVICES.length);
  for (const s of running.IntegrationServices) {
    if (s.Enabled && !INTEGRATION_SERVICES.find((x) => x.name === s.Name)!.implemented) {
      assert.match(s.SecondaryStatusDescription ?? '', /not implement/);
    }
  }
  const last = frames.at(-1)!.find((v) => v.Name === 'vm1')!;
  assert.equal(last.State, 'Off');
  assert.equal(last.Status, 'Operating normally');
  assert.match(up.stderr.join(''), /guest unloaded VMBus/);
  // The default VM was created with its dynamic VHDX system disk, and the host cleaned up its socket.
  assert.ok(existsSync(join(h, 'vms', 'vm1.json')));
  assert.ok(existsSync(join(h, 'disks', 'vm1.vhdx')));
  assert.ok(!existsSync(join(h, 'hvis.sock')));
});

test('while hvis up runs, a second hvis process manages the VM through the API', async () => {
  const h = await home();
  const up = spawnUp(h, ['--exit-after', '120', '--json', '--api-port', '0']);
  try {
    const getVm = async (): Promise<VmView> => {
      const r = await hvis(h, ['get-vm', 'vm1', '--json']);
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as VmView[])[0]!;
    };
    await until(
      async () => existsSync(join(h, 'hvis.sock')) && allOk(await getVm()),
      'vm1 Running with its services OK',
    );

    const ls = await hvis(h, ['lsvmbus', '--json']);
    assert.equal(ls.code, 0, ls.stderr);
    const classes = (JSON.parse(ls.stdout) as { ClassId: string; Description: string }[]).map(
      (e) => e.Description,
    );
    for (const c of ['[Heartbeat]', '[Operating system shutdown]', '[Time Synchronization]']) {
      assert.ok(classes.includes(c), `${c} in ${classes.join(', ')}`);
    }
    const text = await hvis(h, ['lsvmbus', 'vm1']);
    assert.match(text.stdout, /^VMBUS ID {2}\d: \[Heartbeat\]$/m);

    const off = await hvis(h, [
      'Disable-VMIntegrationService',
      '-Name',
      'Time Synchronization',
      '-VMName',
      'vm1',
    ]);
    assert.equal(off.code, 0, off.stderr);
    await until(
      async () => !(await hvis(h, ['lsvmbus'])).stdout.includes('[Time Synchronization]'),
      'rescind seen by guest',
    );
    const on = await hvis(h, ['enable-vmintegrationservice', 'Time Synchronization', '--vm-name', 'vm1']);
    assert.equal(on.code, 0, on.stderr);
    await until(async () => allOk(await getVm()), 'Time Synchronization OK again after re-offer');

    const stop = await hvis(h, ['stop-vm', 'vm1']);
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal((await getVm()).State, 'Off');
    const start = await hvis(h, ['Start-VM', 'vm1', '-Passthru', '--json']);
    assert.equal(start.code, 0, start.stderr);
    assert.equal((JSON.parse(start.stdout) as VmView[])[0]!.State, 'Running');
    const restart = await hvis(h, [
      'restart-vm',
      'vm1',
      '--wait',
      '--for',
      'Heartbeat',
      '--passthru',
      '--json',
    ]);
    assert.equal(restart.code, 0, restart.stderr);
    assert.match((JSON.parse(restart.stdout) as VmView[])[0]!.Heartbeat ?? '', /^Ok/);
    const busy = await hvis(h, ['remove-vm', 'vm1']);
    assert.equal(busy.code, 1);
    assert.match(busy.stderr, /VM 'vm1' is Running: stop it first/);
  } finally {
    up.child.kill('SIGINT');
  }
  assert.equal(await up.exit, 0, up.stderr.join(''));
  assert.equal((JSON.parse(up.lines.at(-1)!) as VmView[])[0]!.State, 'Off');
});
