import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigStore } from '../../src/host/config-store.ts';
import { newVmConfig } from '../../src/host/vm-config.ts';
import { HvError } from '../../src/protocol/errors.ts';

async function store(): Promise<ConfigStore> {
  return new ConfigStore(join(await mkdtemp(join(tmpdir(), 'hvis-cfg-')), 'vms'));
}

test('a saved configuration loads back equal, as vms/<name>.json, with no temp files left', async () => {
  const s = await store();
  const cfg = newVmConfig({ name: 'web1', switchName: 'Default Switch', memoryStartupBytes: 2 * 1024 ** 3 });
  await s.save(cfg);
  assert.deepEqual(await s.load('web1'), cfg);
  assert.deepEqual(await readdir(s.dir), ['web1.json']);
  assert.deepEqual(await s.names(), ['web1']);
});

test('saving again replaces the file whole; a leftover temp file from a crash is ignored', async () => {
  const s = await store();
  const cfg = newVmConfig({ name: 'a' });
  await s.save(cfg);
  await s.save({ ...cfg, processorCount: 4 });
  // What a crash between write and rename leaves behind: a half-written temp file.
  await writeFile(join(s.dir, '.a.json.999.0.tmp'), '{"schema":1,"na');
  assert.equal((await s.load('a')).processorCount, 4);
  assert.deepEqual(await s.names(), ['a']);
  assert.equal(JSON.parse(await readFile(join(s.dir, 'a.json'), 'utf8')).processorCount, 4);
});

test('bad JSON is HV_ERR_CORRUPT naming the file and saying to fix or remove it', async () => {
  const s = await store();
  await s.save(newVmConfig({ name: 'ok' }));
  await writeFile(join(s.dir, 'broken.json'), '{"schema": 1,');
  await assert.rejects(s.load('broken'), (e: unknown) => {
    assert.ok(e instanceof HvError);
    assert.equal(e.code, 'HV_ERR_CORRUPT');
    assert.match(e.message, /broken\.json: not valid JSON .*fix or remove the file/);
    return true;
  });
  // One broken file does not hide the others.
  const { configs, problems } = await s.list();
  assert.deepEqual(
    configs.map((c) => c.name),
    ['ok'],
  );
  assert.equal(problems.length, 1);
});

test('a well-formed document with a wrong field names that field', async () => {
  const s = await store();
  const cfg = newVmConfig({ name: 'x' });
  await s.save(cfg);
  const doc = { ...cfg, networkAdapters: [{ name: 'n', switchName: 's', macAddress: 'zz' }] };
  await writeFile(join(s.dir, 'x.json'), JSON.stringify(doc));
  await assert.rejects(
    s.load('x'),
    /field 'networkAdapters\[0\]\.macAddress' must be 12 upper-case hex digits/,
  );
  await writeFile(join(s.dir, 'x.json'), JSON.stringify({ ...cfg, name: 'y' }));
  await assert.rejects(s.load('x'), /field 'name' is 'y', expected 'x'/);
  await writeFile(join(s.dir, 'x.json'), JSON.stringify([1, 2]));
  await assert.rejects(s.load('x'), { code: 'HV_ERR_CORRUPT' });
});

test('a missing VM is HV_ERR_NOT_FOUND; a name that is not a file name is HV_ERR_INVALID_ARGUMENT', async () => {
  const s = await store();
  await assert.rejects(s.load('nope'), { code: 'HV_ERR_NOT_FOUND' });
  await assert.rejects(s.remove('nope'), { code: 'HV_ERR_NOT_FOUND' });
  await assert.rejects(s.load('../etc/passwd'), { code: 'HV_ERR_INVALID_ARGUMENT' });
  assert.throws(() => newVmConfig({ name: '.hidden' }), { code: 'HV_ERR_INVALID_ARGUMENT' });
  assert.throws(() => newVmConfig({ name: 'a', memoryStartupBytes: 1000 }), /multiple of 2 MiB/);
});
