import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalizeArgv } from '../src/cli/argv.ts';

test('PowerShell-style cmdlet and parameter names become GNU long options', () => {
  assert.deepEqual(normalizeArgv(['Get-VM', '-Name', 'vm1', '-VHDType', 'Fixed', '-SizeBytes', '1']), [
    'get-vm',
    '--name',
    'vm1',
    '--vhd-type',
    'Fixed',
    '--size-bytes',
    '1',
  ]);
  assert.deepEqual(normalizeArgv(['stop-vm', '-Force:$false', '-n']), ['stop-vm', '--no-force', '-n']);
});
