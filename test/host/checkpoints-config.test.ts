/**
 * The checkpoint tree lives in the VM configuration: a tree in the old side file
 * (`<home>/checkpoints/<id>.json`) is read, moved into the configuration on the next checkpoint change and
 * removed; the configuration field is validated like the others.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkpointVm, getVmSnapshots } from '../../src/host/checkpoints.ts';
import { Host } from '../../src/host/host.ts';
import { parseVmConfig } from '../../src/host/vm-config.ts';
import { isHvError } from '../../src/protocol/errors.ts';

const ID1 = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';
const ID2 = '3f2504e0-4f89-41d3-9a0c-0305e82c3302';

test('checkpoints: side file migrated into the VM configuration on the next change', async (t) => {
  const home = await mkdtemp(join(tmpdir(), 'hvis-cpcfg-'));
  t.after(() => rm(home, { recursive: true, force: true }));
  const host = await Host.open({ home });
  const base = join(home, 'c1.vhdx');
  const vm = await host.newVm({ name: 'c1', newVhd: { path: base, sizeBytes: 8 * 2 ** 20 } });
  // What an older hvis wrote: the tree beside the configuration, which has no `checkpoints` field.
  const side = join(home, 'checkpoints', `${vm.config.id}.json`);
  mkdirSync(join(home, 'checkpoints'));
  const old = {
    id: ID1,
    name: 'before',
    type: 'Production',
    creationTime: '2026-01-02T03:04:05.000Z',
    parentId: null,
    drives: [{ controllerNumber: 0, controllerLocation: 0, path: base }],
  };
  writeFileSync(side, JSON.stringify({ schema: 1, current: ID1, checkpoints: [old] }));
  assert.deepEqual(
    getVmSnapshots(home, vm).map((s) => [s.Name, s.Id, s.IsCurrent]),
    [['before', ID1, true]],
  );

  const cp = await checkpointVm(home, vm, { name: 'after' });
  assert.equal(cp.ParentSnapshotId, ID1, 'the new checkpoint builds on the migrated current one');
  assert.equal(existsSync(side), false, 'the side file is gone once the tree is in the configuration');
  const file = join(home, 'vms', 'c1.json');
  const stored = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const cfg = parseVmConfig(stored, file);
  assert.deepEqual(
    cfg.checkpoints?.list.map((c) => [c.name, c.parentId]),
    [
      ['before', null],
      ['after', ID1],
    ],
  );
  assert.equal(cfg.checkpoints?.current, cp.Id);
  assert.equal(cfg.checkpoints?.list[1]?.drives[0]?.path, base, 'the frozen image of the new checkpoint');
  assert.notEqual(cfg.hardDrives[0]?.path, base, 'written together: the drive continues in the child');

  const reopened = await Host.open({ home });
  assert.deepEqual(
    getVmSnapshots(home, reopened.vm('c1')).map((s) => [s.Name, s.IsCurrent]),
    [
      ['before', false],
      ['after', true],
    ],
  );
});

test('checkpoints: a damaged side file is HV_ERR_CORRUPT naming the file and field', async (t) => {
  const home = await mkdtemp(join(tmpdir(), 'hvis-cpcfg-'));
  t.after(() => rm(home, { recursive: true, force: true }));
  const host = await Host.open({ home });
  const vm = await host.newVm({ name: 'c2' });
  const side = join(home, 'checkpoints', `${vm.config.id}.json`);
  mkdirSync(join(home, 'checkpoints'));
  const bad = { id: 'x', name: 'n', type: 'Standard', creationTime: '', parentId: null, drives: [] };
  writeFileSync(side, JSON.stringify({ schema: 1, current: null, checkpoints: [bad] }));
  assert.throws(
    () => getVmSnapshots(home, vm),
    (e) =>
      isHvError(e, 'HV_ERR_CORRUPT') &&
      e.message.includes(side) &&
      /list\[0\]\.id' must be a GUID/.test(e.message),
  );
});

test('checkpoints: the configuration field is validated', async (t) => {
  const home = await mkdtemp(join(tmpdir(), 'hvis-cpcfg-'));
  t.after(() => rm(home, { recursive: true, force: true }));
  const host = await Host.open({ home });
  const vm = await host.newVm({ name: 'c3' });
  const cp = (id: string, parentId: string | null, name = id) => ({
    id,
    name,
    type: 'Production',
    creationTime: '2026-01-02T03:04:05.000Z',
    parentId,
    drives: [{ controllerNumber: 0, controllerLocation: 0, path: '/x.vhdx' }],
  });
  const good = { current: ID2, list: [cp(ID1, null), cp(ID2, ID1)] };
  assert.deepEqual(parseVmConfig({ ...vm.config, checkpoints: good }, 'f').checkpoints, good);
  const cases: [unknown, RegExp][] = [
    [{ current: null, list: {} }, /checkpoints\.list' must be an array/],
    [{ current: null, list: [{ ...cp(ID1, null), type: 'Full' }] }, /list\[0\]\.type/],
    [{ current: null, list: [cp(ID1, ID2)] }, /list\[0\]\.parentId' must be null or the id/],
    [
      { current: null, list: [cp(ID1, ID2), cp(ID2, ID1)] },
      /list\[0\]\.parentId' must be not part of a cycle/,
    ],
    [{ current: null, list: [cp(ID1, null, 'a'), cp(ID2, null, 'a')] }, /list\[1\]\.name' must be unique/],
    [{ current: ID2, list: [cp(ID1, null)] }, /checkpoints\.current' must be null or the id/],
    [
      {
        current: null,
        list: [{ ...cp(ID1, null), drives: [{ controllerNumber: 0, controllerLocation: 64 }] }],
      },
      /list\[0\]\.drives\[0\]\.controllerLocation/,
    ],
  ];
  for (const [checkpoints, want] of cases)
    assert.throws(
      () => parseVmConfig({ ...vm.config, checkpoints }, 'f'),
      (e) => isHvError(e, 'HV_ERR_CORRUPT') && want.test(e.message),
      `${JSON.stringify(checkpoints)} → ${want}`,
    );
});
