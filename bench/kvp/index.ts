/**
 * KVP round trips through the whole stack: host KvpHost → IC channel → guest KvpGuest driver →
 * /dev/vmbus/hv_kvp → uapi socket bridge → daemon, one host→guest SET then GET (pool 0, 40 distinct keys)
 * per round trip. Our daemon and Debian's real hv_kvp_daemon (through native/hvshim) each run in their own
 * sandbox and stack, both up at once; the rounds are measured in alternating slices (real, ours, real, ...)
 * so load from other processes falls on both alike. Result: `{ ours, real }` in round trips per second,
 * the best slice of each (least disturbed), and the medians. Needs root, unshare, ip, gcc and
 * hyperv-daemons (as the parity test).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSandboxedDaemon, writeFakeScripts } from '../../src/bridges/uapi/sandbox.ts';
import { HV_S_OK } from '../../src/protocol/ic/icmsg.ts';
import { type KvpStack, kvpStack } from '../../test/devices/kvp/stack.ts';

const WARMUP = 50;
const ROUNDS = Number(process.env.KVP_BENCH_ROUNDS ?? 1000);
const SLICES = 10;

type Kind = 'ours' | 'real';

interface Peer {
  kind: Kind;
  stack: KvpStack;
  child: ChildProcess;
  exited: Promise<unknown>;
  done: number;
}

async function start(kind: Kind, scratch: string): Promise<Peer> {
  const dir = `${scratch}/${kind}`;
  const socket = `${scratch}/${kind}.sock`;
  writeFakeScripts(`${dir}/scripts`);
  const stack = await kvpStack(socket);
  const child = spawnSandboxedDaemon({ kind, socket, state: `${dir}/state`, scripts: `${dir}/scripts` });
  const exited = new Promise((r) => child.once('exit', r));
  await stack.daemonRegistered();
  return { kind, stack, child, exited, done: 0 };
}

async function round(p: Peer): Promise<void> {
  const i = p.done++;
  const key = `bench${i % 40}`;
  const s = await p.stack.host.request({
    operation: 1,
    pool: 0,
    key,
    value: { type: 'string', value: `value${i}` },
  });
  const g = await p.stack.host.request({ operation: 0, pool: 0, key, valueSize: 2048 });
  if (s.status !== HV_S_OK || g.status !== HV_S_OK) throw new Error(`${p.kind}: round ${i} failed`);
}

/** Round trips per second over `n` rounds. */
async function slice(p: Peer, n: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await round(p);
  return n / (Number(process.hrtime.bigint() - t0) / 1e9);
}

async function stop(p: Peer): Promise<void> {
  await p.stack.close();
  await Promise.race([p.exited, new Promise((r) => setTimeout(r, 3000))]);
  try {
    process.kill(-p.child.pid!, 'SIGKILL');
  } catch {
    // gone
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

export async function run(_opts: { json: boolean }): Promise<unknown> {
  const scratch = mkdtempSync(`${tmpdir()}/kvp-bench-`);
  const peers: Peer[] = [];
  try {
    const real = await start('real', scratch);
    peers.push(real);
    const ours = await start('ours', scratch);
    peers.push(ours);
    for (let i = 0; i < WARMUP; i++) {
      await round(real);
      await round(ours);
    }
    const rates: Record<Kind, number[]> = { real: [], ours: [] };
    const per = Math.max(1, Math.round(ROUNDS / SLICES));
    for (let s = 0; s < SLICES; s++) {
      rates.real.push(await slice(real, per));
      rates.ours.push(await slice(ours, per));
    }
    const best = { ours: Math.max(...rates.ours), real: Math.max(...rates.real) };
    return {
      unit: 'SET+GET round trips per second',
      rounds: per * SLICES,
      ours: Math.round(best.ours),
      real: Math.round(best.real),
      ratio: Number((best.ours / best.real).toFixed(2)),
      median: {
        ours: Math.round(median(rates.ours)),
        real: Math.round(median(rates.real)),
        ratio: Number((median(rates.ours) / median(rates.real)).toFixed(2)),
      },
    };
  } finally {
    for (const p of peers) await stop(p);
    rmSync(scratch, { recursive: true, force: true });
  }
}
