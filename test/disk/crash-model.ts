/**
 * Shared by the disk crash tests: a child process writes (or trims) random ranges and reports each write before
 * it starts ("B kind offset length id") and after its flush returned ("A id"); the parent SIGKILLs it at random
 * points and keeps, per sector, the acknowledged writer id and the id of the write in flight (old or new data
 * may be there after the kill). Sector contents: u32 id then u32 sector number (little-endian), repeated;
 * id 0 means zeros.
 */
import { spawn } from 'node:child_process';

export interface CrashModel {
  /** Per sector: id of the last acknowledged write (0 = zeros). */
  acked: Int32Array;
  /** Per sector: id of the write in flight at the kill (-1 = a trim, 0 = none). */
  maybe: Int32Array;
}

export function newModel(sectors: number): CrashModel {
  return { acked: new Int32Array(sectors), maybe: new Int32Array(sectors) };
}

/** A small seeded PRNG (mulberry32) returning floats in [0, 1), so a run's kill decisions can be replayed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/**
 * Runs `childJs image seed firstId ...extraArgs` and kills it with SIGKILL after at least `minAcks` acknowledged
 * writes, at a random moment (right after a write started, or a few ms after an acknowledgement; decisions from
 * `random`); with `minAcks` Infinity the child is expected to kill itself. Resolves with the next unused id once
 * the child is dead AND its stdout is drained ('close', not 'exit': 'exit' may come before the last lines the
 * child printed are read, which would verify against a model missing acknowledgements and reuse ids in the next
 * round). Rejects if the child exits any other way.
 */
export function runCrashChild(
  childJs: string,
  image: string,
  seed: number,
  firstId: number,
  model: CrashModel,
  minAcks: number,
  extraArgs: string[] = [],
  random: () => number = Math.random,
): Promise<number> {
  const child = spawn(process.execPath, [childJs, image, String(seed), String(firstId), ...extraArgs], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let pending: { kind: string; first: number; count: number; id: number } | null = null;
  let lastId = firstId - 1;
  let acks = 0;
  let buf = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    buf += chunk;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl).split(' ');
      buf = buf.slice(nl + 1);
      if (line[0] === 'B') {
        pending = {
          kind: line[1]!,
          first: Number(line[2]) / 512,
          count: Number(line[3]) / 512,
          id: Number(line[4]),
        };
        lastId = pending.id;
        for (let s = pending.first; s < pending.first + pending.count; s++)
          model.maybe[s] = pending.kind === 'T' ? -1 : pending.id;
        if (acks >= minAcks && random() < 0.5) child.kill('SIGKILL');
      } else if (line[0] === 'A' && pending && Number(line[1]) === pending.id) {
        for (let s = pending.first; s < pending.first + pending.count; s++) {
          model.acked[s] = pending.kind === 'T' ? 0 : pending.id;
          model.maybe[s] = 0;
        }
        pending = null;
        acks++;
        if (acks >= minAcks && random() < 0.3) setTimeout(() => child.kill('SIGKILL'), random() * 5);
      }
    }
  });
  return new Promise((resolve, reject) => {
    child.on('close', (code, signal) => {
      if (signal === 'SIGKILL') resolve(lastId + 1);
      else reject(new Error(`crash child exited with code ${code}`));
    });
  });
}

function sectorHolds(buf: Uint8Array, at: number, id: number, sector: number): boolean {
  const dv = new DataView(buf.buffer, buf.byteOffset + at, 512);
  for (let o = 0; o < 512; o += 8) {
    const a = dv.getUint32(o, true);
    const b = dv.getUint32(o + 4, true);
    if (id <= 0 ? a !== 0 || b !== 0 : a !== id || b !== sector) return false;
  }
  return true;
}

/**
 * Checks `buf` (the disk's sectors from `firstSector`) against the model; returns a description of the first
 * sector that holds neither its acknowledged data nor the data of the write in flight, or null.
 */
export function findLostWrite(model: CrashModel, buf: Uint8Array, firstSector: number): string | null {
  for (let i = 0; i < buf.length / 512; i++) {
    const s = firstSector + i;
    const maybe = model.maybe[s]!;
    if (sectorHolds(buf, i * 512, model.acked[s]!, s)) continue;
    if (maybe !== 0 && sectorHolds(buf, i * 512, maybe, s)) continue;
    const held = new DataView(buf.buffer, buf.byteOffset + i * 512, 512);
    const words = new Set<string>();
    for (let o = 0; o < 512; o += 8) words.add(`${held.getUint32(o, true)}/${held.getUint32(o + 4, true)}`);
    return `sector ${s} lost acknowledged write ${model.acked[s]} (in flight: ${maybe}); it holds id/sector ${[...words].join(', ')}`;
  }
  return null;
}

/** After verification: the in-flight write's sectors take what `disk` (the whole disk's bytes) holds there. */
export function settle(model: CrashModel, disk: Uint8Array): void {
  const dv = new DataView(disk.buffer, disk.byteOffset, disk.byteLength);
  for (let s = 0; s < model.maybe.length; s++) {
    if (model.maybe[s] === 0) continue;
    model.acked[s] = dv.getUint32(s * 512, true);
    model.maybe[s] = 0;
  }
}
