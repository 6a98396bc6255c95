/**
 * Where the host keeps its state: `$HVIS_HOME` (default `~/.hvis`). Layout:
 * `vms/<name>.json` (VM configurations), `<name>.vhdx` beside them for system disks created by `hvis up`,
 * `hvis.sock` (management API, Unix socket) and `api.json` (the HTTP port of the running host).
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** The state directory: `$HVIS_HOME` when set and non-empty, else `~/.hvis`. Always absolute. */
export function hvisHome(env: NodeJS.ProcessEnv = process.env): string {
  const h = env.HVIS_HOME;
  return resolve(h !== undefined && h !== '' ? h : join(homedir(), '.hvis'));
}

/** Paths derived from one home directory. */
export interface HomePaths {
  home: string;
  /** Directory of VM configuration files (`<name>.json`). */
  vms: string;
  /** Directory of virtual hard disks created by hvis. */
  disks: string;
  /** Unix socket of the management API. */
  socket: string;
  /** `{ pid, port, socket }` of the running host, written when its API listens. */
  apiInfo: string;
}

export function homePaths(home: string = hvisHome()): HomePaths {
  return {
    home,
    vms: join(home, 'vms'),
    disks: join(home, 'disks'),
    socket: join(home, 'hvis.sock'),
    apiInfo: join(home, 'api.json'),
  };
}
