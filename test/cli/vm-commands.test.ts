import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { hvis } from './run-cli.ts';

const home = () => mkdtemp(join(tmpdir(), 'hvis-cli-'));

test('bad arguments exit 2 with a message saying what is wrong, and no stack trace', async () => {
  const h = await home();
  const cases: [string[], RegExp][] = [
    [['stop-vm', 'vm1', '--turn-off', '--force'], /--turn-off and --force exclude each other/],
    [['up', '--exit-after', '-1'], /--exit-after must be a number of seconds >= 0, got -1/],
    [['new-vm', 'bad/name'], /invalid VM name 'bad\/name': use 1-100 letters/],
    [['new-vm', 'a', '-NewVHDPath', 'a.vhdx'], /--new-vhd-path and --new-vhd-size-bytes go together/],
    [['new-vm', 'a', '-MemoryStartupBytes', 'lots'], /--memory-startup-bytes: 'lots' is not a byte count/],
  ];
  for (const [args, message] of cases) {
    const r = await hvis(h, args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
});

test('without a running host: configs are managed offline, and commands that need the host say how to start it', async () => {
  const h = await home();
  const created = await hvis(h, [
    'New-VM',
    '-Name',
    'web1',
    '-MemoryStartupBytes',
    '2GB',
    '-SwitchName',
    'Default Switch',
  ]);
  assert.equal(created.code, 0, created.stderr);
  const get = await hvis(h, ['get-vm']);
  assert.match(get.stdout, /^Name +State +CPUUsage\(%\) +MemoryAssigned\(M\) +Uptime +Status +Version$/m);
  assert.match(get.stdout, /^web1 +Off +0 +0 +00:00:00 +Operating normally +12\.0$/m);
  const ic = await hvis(h, [
    'disable-vmintegrationservice',
    'VSS',
    '--vm-name',
    'web1',
    '--passthru',
    '--json',
  ]);
  assert.equal(ic.code, 0, ic.stderr);
  assert.deepEqual(JSON.parse(ic.stdout), [
    {
      VMName: 'web1',
      VMId: JSON.parse((await hvis(h, ['get-vm', 'web1', '--json'])).stdout)[0].Id,
      Name: 'VSS',
      Enabled: false,
      PrimaryStatusDescription: null,
      SecondaryStatusDescription: null,
      ProtocolVersion: null,
    },
  ]);
  for (const args of [
    ['start-vm', 'web1'],
    ['lsvmbus', 'web1'],
    ['stop-vm', 'web1'],
  ]) {
    const r = await hvis(h, args);
    assert.equal(r.code, 1, args.join(' '));
    assert.equal(r.stderr, "hvis: no hvis host is running: start one with 'hvis up'\n");
  }
  const missing = await hvis(h, ['get-vm', 'nope', '--json']);
  assert.equal(missing.code, 1);
  assert.equal(JSON.parse(missing.stderr).error.category, 'ObjectNotFound');
  assert.equal((await hvis(h, ['remove-vm', 'web1'])).code, 0);
  assert.equal((await hvis(h, ['get-vm'])).stdout, '');
});
