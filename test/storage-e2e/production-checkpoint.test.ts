/**
 * Production checkpoints of a running VM through the whole stack: Host → Vm → session (storvsp, VSS IC)
 * → VMBus → guest worker (storvsc, hv_vss driver) → our hv_vss_daemon attached through the uapi bridge, in
 * this process, freezing a fake mount point (its FIFREEZE is a callback: no real filesystem is frozen).
 * Writers push 4 KiB writes through the guest's NBD export while the checkpoint is taken; the callback
 * holds them while "frozen", as a frozen filesystem takes no new writes.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { connectUapi } from '../../src/bridges/uapi/client.ts';
import type { UapiFile } from '../../src/bridges/uapi/file.ts';
import { createDisk, openDisk } from '../../src/disk/open.ts';
import { serveVss, VssDaemon } from '../../src/guest/daemons/vss/daemon.ts';
import { checkpointVm, getVmSnapshots, restoreVmSnapshot } from '../../src/host/checkpoints.ts';
import { Host } from '../../src/host/host.ts';
import type { Vm } from '../../src/host/vm.ts';
import { addHardDiskDrive, exportHardDiskDrive, hardDiskDriveViews } from '../../src/host/vm-drives.ts';
import { createVmSessionFactory } from '../../src/host/vm-session.ts';
import { hostProfile } from '../../src/vmbus/host-profiles.ts';
import { NbdWriter } from './nbd-writer.ts';

const home = mkdtempSync(join(tmpdir(), 'hvis-pcp-'));
process.env.HVIS_HOME = home;
const mnt = mkdtempSync(join(home, 'mnt-'));
after(() => rmSync(home, { recursive: true, force: true }));

const host = await Host.open({
  home,
  createSession: createVmSessionFactory({
    profile: hostProfile('WS2025'),
    log: () => {},
    connectTimeoutMs: 15_000,
    daemonSockets: (vm) => ({ vss: join(home, `${vm}-vss.sock`) }),
  }),
  log: () => {},
});

const until = async (what: string, ok: () => boolean, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

/**
 * Our daemon on the VM's /dev/vmbus/hv_vss; `seen` is what it did, in order. Resolves once the guest's
 * hv_vss driver has answered the daemon's REGISTER1: until then the driver fails HOT_BACKUP/FREEZE with
 * HV_E_FAIL at once (no daemon registered, as Linux), and the host's VSS channel being connected says
 * nothing about it (the registration crosses the uapi socket and the guest worker on its own time).
 */
async function attachVssDaemon(vm: Vm, onFreeze: (frozen: boolean) => void): Promise<string[]> {
  const seen: string[] = [];
  const daemon = new VssDaemon({
    mountPoints: [mnt],
    ioctl: (_fd, op, m) => {
      seen.push(`${op === 'freeze' ? 'FIFREEZE' : 'FITHAW'} ${m}`);
      onFreeze(op === 'freeze');
    },
    log: (l) => seen.push(l),
  });
  const sock = join(home, `${vm.name}-vss.sock`);
  await until('the VSS bridge socket', () => existsSync(sock));
  const file = await connectUapi(sock, '/dev/vmbus/hv_vss');
  let registered!: () => void;
  const answered = new Promise<void>((r) => {
    registered = r;
  });
  // The daemon's first read is the driver's answer to its REGISTER1.
  const watched: UapiFile = {
    read: () => file.read().finally(registered),
    write: (m) => file.write(m),
    close: () => file.close(),
    get closed() {
      return file.closed;
    },
  };
  void serveVss(watched, daemon);
  await answered;
  await until('VSS to connect', () => vm.session?.vssDevice?.() != null);
  return seen;
}

async function startWithDisks(name: string, extra: number): Promise<{ vm: Vm; paths: string[] }> {
  const base = join(home, `${name}.vhdx`);
  const vm = await host.newVm({ name, newVhd: { path: base, sizeBytes: 32 * 2 ** 20 } });
  const paths = [base];
  for (let i = 1; i <= extra; i++) {
    const p = join(home, `${name}-data${i}.vhdx`);
    await (await createDisk(p, { type: 'dynamic', size: 16 * 2 ** 20 })).close();
    await addHardDiskDrive(vm, { path: p, controllerLocation: i });
    paths.push(p);
  }
  await vm.start();
  await until('the guest to see its disks', () => hardDiskDriveViews(vm).every((d) => d.GuestDisk !== null));
  return { vm, paths };
}

async function nbdOf(vm: Vm, lun: number): Promise<NbdWriter> {
  const uri = (await exportHardDiskDrive(vm, home, 0, lun)).Uri!;
  const socket = uri.slice(uri.indexOf('socket=') + 7);
  return (await NbdWriter.open(socket, `lun${lun}`)).client;
}

const BLOCK = 4096;
const WRITERS = 4;
const MAX_SEQ = 250;
const offsetOf = (w: number, seq: number) => (w * 1024 + seq) * BLOCK;

test('a production checkpoint taken during I/O restores to a consistent image', {
  timeout: 90_000,
}, async () => {
  const { vm, paths } = await startWithDisks('prod1', 0);
  let frozen = false;
  const acked: number[] = Array(WRITERS).fill(0);
  const inFlight: boolean[] = Array(WRITERS).fill(false);
  let atFreeze: { acked: number[]; inFlight: boolean[] } | null = null;
  const seen = await attachVssDaemon(vm, (f) => {
    frozen = f;
    if (f) atFreeze = { acked: [...acked], inFlight: [...inFlight] };
  });
  const clients = await Promise.all(Array.from({ length: WRITERS }, () => nbdOf(vm, 0)));
  let stop = false;
  const writers = clients.map(async (c, w) => {
    for (let seq = 0; !stop && seq < MAX_SEQ; seq++) {
      while (frozen) await new Promise((r) => setImmediate(r));
      inFlight[w] = true;
      await c.write(offsetOf(w, seq), new Uint8Array(BLOCK).fill(seq + 1));
      inFlight[w] = false;
      acked[w] = seq + 1;
    }
  });
  await until('writes before the checkpoint', () => acked.every((n) => n >= 5));
  const cp = await checkpointVm(home, vm, { name: 'during-io', type: 'Production' });
  assert.equal(cp.SnapshotType, 'Production');
  const frozenAt = atFreeze as { acked: number[]; inFlight: boolean[] } | null;
  assert.ok(frozenAt, 'the guest froze');
  await until('writes after the thaw', () =>
    acked.every((n, w) => n >= frozenAt.acked[w]! + 5 || n === MAX_SEQ),
  );
  stop = true;
  await Promise.all(writers);
  for (const c of clients) c.close();
  assert.deepEqual(seen, [
    'CHECK HOT BACKUP',
    `FIFREEZE ${mnt}`,
    'FREEZE succeeded (1 filesystems)',
    `FITHAW ${mnt}`,
  ]);
  await vm.stop({ mode: 'turnOff' });

  const b = new Uint8Array(BLOCK);
  const current = await openDisk(vm.config.hardDrives[0]!.path, { readOnly: true });
  try {
    for (let w = 0; w < WRITERS; w++)
      for (let seq = 0; seq < acked[w]!; seq++) {
        await current.read(b, offsetOf(w, seq));
        assert.equal(b[0], seq + 1, `writer ${w}: acknowledged write ${seq} is in the running image`);
      }
  } finally {
    await current.close();
  }

  await restoreVmSnapshot(home, vm, 'during-io');
  const restored = await openDisk(vm.config.hardDrives[0]!.path, { readOnly: true });
  try {
    assert.equal((await restored.info()).ParentPath, paths[0]);
    for (let w = 0; w < WRITERS; w++) {
      // Frozen with N writes acknowledged and maybe write N in flight: the checkpoint holds exactly the
      // first N (or N+1) writes and nothing written after the freeze.
      const n = frozenAt.acked[w]!;
      let prefix = 0;
      for (let seq = 0; seq < MAX_SEQ; seq++) {
        await restored.read(b, offsetOf(w, seq));
        if (b.some((x) => x !== 0)) {
          assert.equal(b[0], seq + 1);
          assert.equal(prefix, seq, `writer ${w}: write ${seq} present after a missing one`);
          prefix++;
        }
      }
      assert.ok(prefix >= n, `writer ${w}: every write acknowledged before the freeze (${n}) is there`);
      assert.ok(
        prefix <= n + (frozenAt.inFlight[w] ? 1 : 0),
        `writer ${w}: no write issued after the freeze (${prefix} > ${n})`,
      );
    }
  } finally {
    await restored.close();
  }
});

test('a drive failing mid-checkpoint: the drives already moved go back onto their parents', {
  timeout: 90_000,
}, async () => {
  const { vm, paths } = await startWithDisks('prod2', 1);
  const seen = await attachVssDaemon(vm, () => {});
  const nbd0 = await nbdOf(vm, 0);
  const storage = vm.session!.storage!;
  const original = storage.continueInChild.bind(storage);
  // Fails the second drive after the first one moved; a write to the first lands in its child meanwhile.
  storage.continueInChild = async (n, loc, child) => {
    if (loc === 0) return original(n, loc, child);
    await nbd0.write(0, new Uint8Array(BLOCK).fill(0x5a));
    throw new Error('injected: no space for the second child');
  };
  await assert.rejects(checkpointVm(home, vm, { name: 'broken' }), /injected/);
  assert.deepEqual(
    vm.config.hardDrives.map((d) => d.path),
    paths,
    'the configuration still names the parents',
  );
  assert.ok(storage.diskForPath(paths[0]!), 'drive 0 runs on its parent again');
  assert.deepEqual(getVmSnapshots(home, vm), [], 'no checkpoint recorded');
  assert.deepEqual(
    readdirSync(home).filter((f) => f.startsWith('prod2') && f.endsWith('.avhdx')),
    [],
    'no child image left behind',
  );
  assert.equal(seen.at(-1), `FITHAW ${mnt}`, 'the guest was thawed');
  const back = await nbd0.read(0, BLOCK);
  assert.equal(back[0], 0x5a, 'the guest still reads what it wrote during the checkpoint');
  nbd0.close();
  await vm.stop({ mode: 'turnOff' });
  const parent = await openDisk(paths[0]!, { readOnly: true });
  const b = new Uint8Array(BLOCK);
  await parent.read(b, 0);
  await parent.close();
  assert.equal(b[0], 0x5a, 'the write made during the failed checkpoint was merged into the parent');
});

test('without a VSS daemon: ProductionOnly fails, Production refuses the Standard fallback, the VM runs on', {
  timeout: 60_000,
}, async () => {
  const { vm, paths } = await startWithDisks('prod3', 0);
  await assert.rejects(checkpointVm(home, vm, { type: 'ProductionOnly' }), (e: Error) =>
    /ProductionOnly checkpoint .* could not freeze/.test(e.message),
  );
  await assert.rejects(checkpointVm(home, vm, { type: 'Production' }), (e: Error) =>
    /falls back to Standard.*saved memory state/.test(e.message),
  );
  await assert.rejects(checkpointVm(home, vm, { type: 'Standard' }), /saved memory state/);
  assert.deepEqual(
    vm.config.hardDrives.map((d) => d.path),
    paths,
  );
  assert.equal(vm.state, 'Running');
  await vm.stop({ mode: 'turnOff' });
  await host.close(1000);
});
