/** The disk cmdlets through the real `hvis` entry point: exit codes, --json property names, bad arguments. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';

const main = path.resolve(import.meta.dirname, '../../src/cli/main.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hvis-cli-vhd-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const hvis = (...args: string[]) => spawnSync(process.execPath, [main, ...args], { encoding: 'utf8' });

test('new-vhd / get-vhd --json carry Get-VHD property names; convert-vhd --azure pads to a whole MiB', () => {
  const file = path.join(dir, 'a.vhd');
  const r = hvis('New-VHD', '-Path', file, '-SizeBytes', '3MB', '-Dynamic', '--json');
  assert.equal(r.status, 0, r.stderr);
  const info = JSON.parse(r.stdout) as Record<string, unknown>;
  for (const k of [
    'VhdFormat',
    'VhdType',
    'FileSize',
    'Size',
    'MinimumSize',
    'LogicalSectorSize',
    'PhysicalSectorSize',
    'BlockSize',
    'ParentPath',
    'DiskIdentifier',
    'FragmentationPercentage',
  ]) {
    assert.ok(k in info, k);
  }
  assert.equal(info.VhdFormat, 'VHD');
  assert.equal(info.VhdType, 'Dynamic');
  assert.equal(info.Size, 3 * 1024 * 1024);
  const raw = path.join(dir, 'odd.img');
  fs.writeFileSync(raw, Buffer.alloc(1024 * 1024 + 4096, 1));
  const az = path.join(dir, 'az.vhd');
  const c = hvis('convert-vhd', raw, az, '--azure', '--json');
  assert.equal(c.status, 0, c.stderr);
  assert.equal(c.stderr, '');
  assert.equal(fs.statSync(az).size, 2 * 1024 * 1024 + 512);
});

test('bad arguments exit 2 with a message; a missing file exits 1', () => {
  const r = hvis('new-vhd', '--path', path.join(dir, 'b.vhd'), '--size-bytes', 'lots');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--size-bytes 'lots' is not a byte count/);
  const e = hvis('new-vhd', '--path', path.join(dir, 'b.qcow2'), '--size-bytes', '1MB');
  assert.equal(e.status, 2);
  assert.match(e.stderr, /name it .vhd, .vhdx, .img or .raw/);
  const g = hvis('get-vhd', path.join(dir, 'nope.vhd'));
  assert.equal(g.status, 1);
  assert.match(g.stderr, /no such file/);
});
