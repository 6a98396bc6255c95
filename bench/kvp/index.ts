/**
 * KVP round trips through the whole stack: host KvpHost → IC channel → guest KvpGuest driver →
 * /dev/vmbus/hv_kvp → uapi socket bridge → daemon, one host→guest SET then GET (pool 0, 40 distinct keys)
 * per round trip. Measured for our daemon and for Debian's real hv_kvp_daemon (through native/hvshim), each
 * in the same sandbox, in the same run. Result: `{ ours, real }` in round trips per second (+ details).
 * Needs root, unshare, ip, gcc and hyperv-daemons (as the parity test).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSandboxedDaemon, writeFakeScripts } from '../../src/bridges/uapi/sandbox.ts';
import { HV_S_OK } from '../../src/protocol/ic/icmsg.ts';
import { kvpStack } from '../../test/devices/kvp/stack.ts';

const WARMUP = 50;
const ROUNDS = Number(process.env.KVP_BENCH_ROUNDS ?? 1000);

async function measure(kind: 'ours' | 'real', scratch: string): Promise<number> {
  const dir = `${scratch}/${kind}`;
  const socket = `${scratch}/${kind}.sock`;
  writeFakeScripts(`${dir}/scripts`);
  const stack = await kvpStack(socket);
  const child = spawnSandboxedDaemon({ kind, socket, state: `${dir}/state`, scripts: `${dir}/scripts` });
  const exited = new Promise((r) => child.once('exit', r));
  try {
    await stack.daemonRegistered();
    const round = async (i: number) => {
      const key = `bench${i % 40}`;
      const s = await stack.host.request({
        operation: 1,
        pool: 0,
        key,
        value: { type: 'string', value: `value${i}` },
      });
      const g = await stack.host.request({ operation: 0, pool: 0, key, valueSize: 2048 });
      if (s.status !== HV_S_OK || g.status !== HV_S_OK) throw new Error(`${kind}: round ${i} failed`);
    };
    for (let i = 0; i < WARMUP; i++) await round(i);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < ROUNDS; i++) await round(i);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    return ROUNDS / s;
  } finally {
    await stack.close();
    await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

export async function run(_opts: { json: boolean }): Promise<unknown> {
  const scratch = mkdtempSync(`${tmpdir()}/kvp-bench-`);
  try {
    const real = await measure('real', scratch);
    const ours = await measure('ours', scratch);
    return {
      unit: 'SET+GET round trips per second',
      rounds: ROUNDS,
      ours: Math.round(ours),
      real: Math.round(real),
      ratio: Number((ours / real).toFixed(2)),
    };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
