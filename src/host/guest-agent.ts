/**
 * `hvis up --guest-agent hyperv-daemons`: the VM's guest runs no KVP daemon of ours; instead Debian's real
 * `hv_kvp_daemon` runs in a sandbox (scripts/sandbox-run.sh: private /var/lib, own network) attached to
 * the guest's `/dev/vmbus/hv_kvp` through the uapi socket bridge and native/hvshim. Like systemd's
 * `Restart=`, a daemon that exits is started again (after 1 s) while the VM runs.
 */
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { spawnSandboxedDaemon } from '../bridges/uapi/sandbox.ts';
import { HvError } from '../protocol/errors.ts';
import { hvisHome } from './home.ts';

/** Which KVP daemon a guest runs: ours (in the guest worker) or Debian's, sandboxed. */
export type GuestAgent = 'hvis' | 'hyperv-daemons';

/** The `--guest-agent` value as a {@link GuestAgent} (default `hvis`). */
export function guestAgent(v: string | undefined): GuestAgent {
  return v === 'hyperv-daemons' ? 'hyperv-daemons' : 'hvis';
}

/**
 * @throws HvError `HV_ERR_UNSUPPORTED` naming what is missing (the package, root) for hyperv-daemons.
 */
export function checkGuestAgent(agent: GuestAgent): void {
  if (agent === 'hvis') return;
  try {
    accessSync('/usr/sbin/hv_kvp_daemon', constants.X_OK);
  } catch {
    throw new HvError(
      'HV_ERR_UNSUPPORTED',
      "--guest-agent hyperv-daemons needs Debian's package 'hyperv-daemons' (apt-get install hyperv-daemons)",
    );
  }
  if (process.getuid?.() !== 0) {
    throw new HvError(
      'HV_ERR_UNSUPPORTED',
      '--guest-agent hyperv-daemons runs the daemon in mount and network namespaces: run hvis as root',
    );
  }
}

export class SandboxedKvpAgent {
  /** The bridge socket the guest kernel listens on. */
  readonly socket: string;
  readonly #state: string;
  readonly #log: (m: string) => void;
  #child: ChildProcess | null = null;
  #stopped = false;
  #timer: NodeJS.Timeout | null = null;

  constructor(vmName: string, log: (m: string) => void) {
    const dir = `${hvisHome()}/guests/${vmName}`;
    mkdirSync(dir, { recursive: true });
    this.socket = `${dir}/hv_kvp.sock`;
    this.#state = `${dir}/var-lib`;
    this.#log = log;
  }

  /** Pool files of the real daemon (`<state>/hyperv`). */
  get poolDir(): string {
    return `${this.#state}/hyperv`;
  }

  start(): void {
    if (this.#stopped || this.#child) return;
    const c = spawnSandboxedDaemon({ kind: 'real', socket: this.socket, state: this.#state });
    this.#child = c;
    c.once('exit', (code) => {
      this.#child = null;
      if (this.#stopped) return;
      this.#log(`hv_kvp_daemon exited (${code}); starting it again in 1 s`);
      this.#timer = setTimeout(() => this.start(), 1000);
      this.#timer.unref();
    });
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    const c = this.#child;
    if (c?.pid) {
      try {
        process.kill(-c.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}
