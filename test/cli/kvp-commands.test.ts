/**
 * The KVP commands against a running `hvis up` (our guest daemon): add/set/remove/get-vmkvp,
 * get-vmnetworkadapter, and set-vmnetworkadapter refusing shell metacharacters with a clear message.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { hvis, spawnUp, until } from './run-cli.ts';

test('hvis *-vmkvp and *-vmnetworkadapter through the management API', async () => {
  const h = await mkdtemp(join(tmpdir(), 'hvis-kvp-cli-'));
  const up = spawnUp(h, ['--exit-after', '120', '--json', '--api-port', '0']);
  try {
    await until(async () => {
      if (!existsSync(join(h, 'hvis.sock'))) return false;
      const r = await hvis(h, ['get-vmkvp', 'vm1', '--source', 'intrinsic', '--json']);
      return r.code === 0 && (JSON.parse(r.stdout) as { Name: string }[]).some((i) => i.Name === 'OSName');
    }, 'intrinsic KVP items of vm1');

    assert.equal((await hvis(h, ['add-vmkvp', 'vm1', 'Owner', 'team-a'])).code, 0);
    const dup = await hvis(h, ['add-vmkvp', 'vm1', 'Owner', 'team-b']);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /exists; use set-vmkvp/);
    assert.equal((await hvis(h, ['set-vmkvp', 'vm1', 'Owner', 'team-b'])).code, 0);
    const host = await hvis(h, ['get-vmkvp', 'vm1', '--source', 'host', '--json']);
    assert.deepEqual(JSON.parse(host.stdout), [{ Name: 'Owner', Data: 'team-b', Source: 'host' }]);
    const long = await hvis(h, ['add-vmkvp', 'vm1', 'k'.repeat(300), 'v']);
    assert.equal(long.code, 2); // a usage error
    assert.match(long.stderr, /300 characters; at most 255/);
    assert.equal((await hvis(h, ['remove-vmkvp', 'vm1', 'Owner'])).code, 0);
    const gone = await hvis(h, ['remove-vmkvp', 'vm1', 'Owner']);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /no host KVP item 'Owner'/);

    const nics = await hvis(h, ['get-vmnetworkadapter', 'vm1', '--json']);
    assert.equal(nics.code, 0, nics.stderr);
    const nic = (JSON.parse(nics.stdout) as { IPAddresses: string[]; MacAddress: string }[])[0]!;
    assert.match(nic.MacAddress, /^00155D[0-9A-F]{6}$/);
    assert.ok(Array.isArray(nic.IPAddresses));

    const evil = await hvis(h, [
      'set-vmnetworkadapter',
      'vm1',
      '--static-ip',
      '192.0.2.5;reboot',
      '--subnet',
      '24',
    ]);
    assert.equal(evil.code, 2);
    assert.match(evil.stderr, /IP address '192.0.2.5;reboot' is not an IPv4 or IPv6 address/);
  } finally {
    up.child.kill('SIGINT');
  }
  assert.equal(await up.exit, 0, up.stderr.join(''));
});
