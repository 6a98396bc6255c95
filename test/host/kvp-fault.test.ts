/**
 * The KVP service status follows the guest daemon: "Lost Communication" with the reason while no daemon
 * answers, back to OK — with the host items pushed again — once a daemon attaches (here ours, as a separate
 * connection through the uapi bridge, like the real one after a restart).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, test } from 'node:test';
import { connectUapi } from '../../src/bridges/uapi/client.ts';
import { KvpDaemon } from '../../src/guest/daemons/kvp/daemon.ts';
import { parsePool } from '../../src/guest/daemons/kvp/pool-file.ts';
import { KvpExchange } from '../../src/host/kvp-exchange.ts';
import { systemClock } from '../../src/vmbus/channel-io.ts';
import { kvpStack } from '../devices/kvp/stack.ts';

const dir = mkdtempSync(`${tmpdir()}/kvp-fault-`);
after(() => rmSync(dir, { recursive: true, force: true }));

test('the exchange reports a missing or dead daemon and recovers when one returns', async () => {
  const stack = await kvpStack(`${dir}/kvp.sock`);
  const ex = new KvpExchange({
    clock: systemClock,
    vmName: 'vm9',
    vmId: '11111111-2222-3333-4444-555555555555',
    macs: [],
    refreshMs: 60_000,
  });
  ex.attach(stack.host);
  try {
    await ex.refresh();
    assert.match(ex.fault ?? '', /not running/);
    await assert.rejects(ex.setHostItem('A', '1', 'add'));

    const run = async () => {
      const d = new KvpDaemon({ root: `${dir}/pools` });
      const f = await connectUapi(`${dir}/kvp.sock`, '/dev/vmbus/hv_kvp');
      const done = d.serve(f).finally(() => d.stop());
      await stack.daemonRegistered();
      return { f, done };
    };
    let d = await run();
    await ex.refresh();
    assert.equal(ex.fault, null);
    assert.equal(
      parsePool(readFileSync(`${dir}/pools/.kvp_pool_3`)).find((r) => r.key === 'VirtualMachineName')?.value,
      'vm9',
    );
    await ex.setHostItem('A', '1', 'add');

    d.f.close(); // the daemon dies
    await d.done;
    await ex.refresh();
    assert.match(ex.fault ?? '', /not running/);

    d = await run(); // it comes back
    await ex.refresh();
    assert.equal(ex.fault, null);
    assert.equal(parsePool(readFileSync(`${dir}/pools/.kvp_pool_0`)).find((r) => r.key === 'A')?.value, '1');
    d.f.close();
    await d.done;
  } finally {
    ex.stop();
    await stack.close();
  }
});
