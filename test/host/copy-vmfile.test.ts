/**
 * Copy-VMFile through the whole stack: Host → Vm → VM session (VmbusServer, FcopyHost) → shared-memory
 * VMBus → guest worker (FcopyGuest + our in-process hv_fcopy_daemon) → the guest's files (the test
 * machine's filesystem, since the guest worker runs here). The test copies 192 MiB (sparse source, with
 * random data at both ends); the 1 GiB case lives in `npm run bench -- fcopy`.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isHvError } from '../../src/protocol/errors.ts';
import { openTestHost } from '../fixtures/test-host.ts';
import { until } from '../fixtures/until.ts';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function running() {
  const { home, host } = await openTestHost('hvis-copy-');
  dirs.push(home);
  const vm = await host.newVm({ name: 'copy1' });
  await vm.start();
  return { home, host, vm };
}

function sha(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

test('Copy-VMFile: disabled by default, then a 192 MiB non-ASCII-named file arrives intact; overwrite rules; cancel', async (t) => {
  const { home, vm } = await running();
  t.after(() => vm.stop({ mode: 'turnOff' }));
  const src = join(home, 'source ünïcødé.bin');
  const size = 192 * 1024 * 1024 + 12345;
  const fd = openSync(src, 'w');
  writeSync(fd, randomBytes(1 << 20), 0, 1 << 20, 0);
  writeSync(fd, randomBytes(4096), 0, 4096, size - 4096);
  closeSync(fd);
  const guestDir = join(home, 'guest', 'déjà vu', 'sub');
  const dest = join(guestDir, 'ファイル – copy.bin');

  await assert.rejects(
    vm.copyFile({ sourcePath: src, destinationPath: dest, createFullPath: true, force: false }),
    (e) => isHvError(e, 'HV_ERR_INVALID_STATE') && /Guest Service Interface/.test(e.message),
  );
  await vm.setIntegrationService('Guest Service Interface', true);
  await until(
    () =>
      vm.integrationServices().find((s) => s.Name === 'Guest Service Interface')?.PrimaryStatusDescription ===
      'OK',
    'the Guest Service Interface to connect',
  );

  // Without --create-full-path the missing folder is an error and nothing is created.
  await assert.rejects(
    vm.copyFile({ sourcePath: src, destinationPath: dest, createFullPath: false, force: false }),
    (e) => isHvError(e, 'HV_ERR_IO') && /0x80004005/.test(e.message),
  );
  assert.equal(existsSync(join(home, 'guest')), false);

  let progress = 0;
  const bytes = await vm.copyFile(
    { sourcePath: src, destinationPath: dest, createFullPath: true, force: false },
    { onProgress: (d) => (progress = d) },
  );
  assert.equal(bytes, size);
  assert.equal(progress, size);
  assert.equal(sha(dest), sha(src));

  await assert.rejects(
    vm.copyFile({ sourcePath: src, destinationPath: dest, createFullPath: true, force: false }),
    (e) => isHvError(e, 'HV_ERR_ALREADY_EXISTS') && /The file exists\. \(0x80070050\)/.test(e.message),
  );

  // Cancel a forced overwrite half way: the old file stays, no partial or temporary file appears.
  const ac = new AbortController();
  await assert.rejects(
    vm.copyFile(
      { sourcePath: src, destinationPath: dest, createFullPath: true, force: true },
      { signal: ac.signal, onProgress: (d) => d > 8 << 20 && ac.abort() },
    ),
    (e) => isHvError(e, 'HV_ERR_INVALID_STATE') && /cancelled/.test(e.message),
  );
  assert.deepEqual(readdirSync(guestDir), ['ファイル – copy.bin']);
  assert.equal(sha(dest), sha(src));

  await assert.rejects(
    vm.copyFile({ sourcePath: src, destinationPath: 'relative/x', createFullPath: true, force: true }),
    (e) => isHvError(e, 'HV_ERR_INVALID_ARGUMENT'),
  );
});
