/**
 * `npm run bench -- fcopy --json`: MB/s of a 1 GiB host→guest copy through the whole stack (Host → VM
 * session → VMBus → guest worker → our in-process hv_fcopy_daemon) and of `cp` of the same file in the same
 * run, on the same filesystem. `real` (Debian's hv_fcopy_daemon through the socket bridge) is null until
 * that harness exists. Result: `{ ours, real, cp, bytes }` (MB = 10^6 bytes).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Host } from '../../src/host/host.ts';
import { createVmSessionFactory } from '../../src/host/vm-session.ts';
import { hostProfile } from '../../src/vmbus/host-profiles.ts';

const SIZE = 1024 ** 3;

export async function run(_opts: { json: boolean }): Promise<unknown> {
  const home = await mkdtemp(join(tmpdir(), 'hvis-bench-fcopy-'));
  try {
    const src = join(home, 'src-ünï.bin');
    const fd = openSync(src, 'w');
    const chunk = randomBytes(8 << 20);
    for (let off = 0; off < SIZE; off += chunk.length) writeSync(fd, chunk, 0, chunk.length, off);
    closeSync(fd);

    let t = process.hrtime.bigint();
    execFileSync('cp', [src, join(home, 'cp-copy.bin')]);
    const cpS = Number(process.hrtime.bigint() - t) / 1e9;
    await rm(join(home, 'cp-copy.bin'));

    const host = await Host.open({
      home,
      createSession: createVmSessionFactory({ profile: hostProfile('WS2025'), log: () => {} }),
      log: () => {},
    });
    const vm = await host.newVm({ name: 'bench' });
    await vm.start();
    await vm.setIntegrationService('Guest Service Interface', true);
    const end = Date.now() + 10_000;
    while (
      vm.integrationServices().find((s) => s.Name === 'Guest Service Interface')?.PrimaryStatusDescription !==
      'OK'
    ) {
      if (Date.now() > end) throw new Error('Guest Service Interface did not connect');
      await new Promise((r) => setTimeout(r, 20));
    }
    t = process.hrtime.bigint();
    await vm.copyFile({
      sourcePath: src,
      destinationPath: join(home, 'guest', 'ours.bin'),
      createFullPath: true,
      force: true,
    });
    const oursS = Number(process.hrtime.bigint() - t) / 1e9;
    await vm.stop({ mode: 'turnOff' });
    const mbps = (s: number) => Math.round((SIZE / 1e6 / s) * 10) / 10;
    return { ours: mbps(oursS), real: null, cp: mbps(cpS), bytes: SIZE };
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}
