/**
 * `hvis up --guest-agent hyperv-daemons`: the VM's guest runs none of our user-space daemons; instead
 * Debian's real `hv_kvp_daemon`, `hv_fcopy_daemon` and `hv_vss_daemon` run, each in its own sandbox
 * (scripts/sandbox-run.sh: private /var/lib, own network) attached to the guest's `/dev/vmbus/hv_<service>`
 * through the uapi socket bridge and native/hvshim. Like systemd's `Restart=`, a daemon that exits is
 * started again (after 1 s) while the VM runs.
 *
 * Each sandbox's `/var/lib` is the folder {@link SandboxedAgent.root} (`$HVIS_HOME/guests/<vm>/<service>`).
 * Safety of the machine, which runs these daemons as root:
 * - fcopy: every mount but /var/lib, /proc, /sys and /dev is made read-only inside the sandbox (per-mount
 *   `remount,bind,ro`, in the sandbox's own mount namespace only), so a copy lands in the guest root or
 *   fails (EROFS), never in the machine's files.
 * - VSS: the daemon sees a fake mount table (`HVSHIM_MOUNTS`, {@link VSS_FAKE_MOUNTS}, no `/`), its
 *   FIFREEZE/FITHAW are logged, not issued (`HVSHIM_FAKE_FREEZE=1`), and as a second guard a tmpfs (which
 *   cannot be frozen) is mounted inside the sandbox on every listed mount point. Nothing real freezes.
 */
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants, createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import { spawnSandboxedDaemon } from '../bridges/uapi/sandbox.ts';
import { HvError } from '../protocol/errors.ts';
import { hvisHome } from './home.ts';

/** Which daemons a guest runs: ours (in the guest worker) or Debian's, sandboxed. */
export type GuestAgent = 'hvis' | 'hyperv-daemons';

/** A user-space daemon of the hyperv-daemons package, by its `/dev/vmbus/hv_<service>` node. */
export type AgentService = 'kvp' | 'fcopy' | 'vss';

export const AGENT_SERVICES: readonly AgentService[] = ['kvp', 'fcopy', 'vss'];

/** Mount points of the VSS sandbox's fake table, as the guest's /var/lib sees them (no `/`). */
export const VSS_FAKE_MOUNTS = ['/var/lib/vss/data', '/var/lib/vss/logs'] as const;

/** The `--guest-agent` value as a {@link GuestAgent} (default `hvis`). */
export function guestAgent(v: string | undefined): GuestAgent {
  return v === 'hyperv-daemons' ? 'hyperv-daemons' : 'hvis';
}

/**
 * @throws HvError `HV_ERR_UNSUPPORTED` naming what is missing (the package, root) for hyperv-daemons.
 */
export function checkGuestAgent(agent: GuestAgent): void {
  if (agent === 'hvis') return;
  for (const s of AGENT_SERVICES) {
    try {
      accessSync(`/usr/sbin/hv_${s}_daemon`, constants.X_OK);
    } catch {
      throw new HvError(
        'HV_ERR_UNSUPPORTED',
        `--guest-agent hyperv-daemons needs /usr/sbin/hv_${s}_daemon from Debian's package 'hyperv-daemons' (apt-get install hyperv-daemons)`,
      );
    }
  }
  if (process.getuid?.() !== 0) {
    throw new HvError(
      'HV_ERR_UNSUPPORTED',
      '--guest-agent hyperv-daemons runs the daemons in mount and network namespaces: run hvis as root',
    );
  }
}

/** Shell run in the fcopy sandbox before the daemon: everything outside the guest root read-only. */
const FCOPY_PRELUDE = `findmnt -rno TARGET | sort -r | while read -r t; do
  case "$t" in /var/lib|/var/lib/*|/proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue ;; esac
  mount -o remount,bind,ro "$t" 2>/dev/null || true
done`;

const VSS_PRELUDE = VSS_FAKE_MOUNTS.map(
  (m, i) => `mkdir -p ${m} && mount -t tmpfs -o size=1m vss${i} ${m}`,
).join('\n');

/** One of Debian's daemons for one VM, sandboxed, restarted while the VM runs. */
export class SandboxedAgent {
  readonly service: AgentService;
  /** The bridge socket the guest kernel listens on. */
  readonly socket: string;
  /** The sandbox's /var/lib: the KVP pool files (`hyperv/`), file copies, the fake mount table. */
  readonly root: string;
  /** The daemon's stderr, with the shim's FIFREEZE/FITHAW lines for VSS. */
  readonly logFile: string;
  readonly #log: (m: string) => void;
  #child: ChildProcess | null = null;
  #stopped = false;
  #timer: NodeJS.Timeout | null = null;

  constructor(vmName: string, service: AgentService, log: (m: string) => void) {
    const dir = `${hvisHome()}/guests/${vmName}`;
    this.service = service;
    this.socket = `${dir}/hv_${service}.sock`;
    // KVP keeps its historic folder so pools survive upgrades.
    this.root = service === 'kvp' ? `${dir}/var-lib` : `${dir}/${service}-root`;
    this.logFile = `${dir}/hv_${service}_daemon.log`;
    mkdirSync(this.root, { recursive: true });
    this.#log = log;
  }

  /** Pool files of the real KVP daemon (`<root>/hyperv`). */
  get poolDir(): string {
    return `${this.root}/hyperv`;
  }

  start(): void {
    if (this.#stopped || this.#child) return;
    const vss = this.service === 'vss';
    if (vss) {
      writeFileSync(
        `${this.root}/fake-mounts`,
        VSS_FAKE_MOUNTS.map((m, i) => `/dev/sdz${i + 1} ${m} ext4 rw,relatime 0 0\n`).join(''),
      );
    }
    const c = spawnSandboxedDaemon({
      kind: 'real',
      service: this.service,
      socket: this.socket,
      state: this.root,
      stderr: 'pipe',
      ...(this.service === 'fcopy' ? { prelude: FCOPY_PRELUDE } : {}),
      ...(vss
        ? {
            prelude: VSS_PRELUDE,
            env: { HVSHIM_MOUNTS: '/var/lib/fake-mounts', HVSHIM_FAKE_FREEZE: '1' },
          }
        : {}),
    });
    this.#child = c;
    c.stderr?.pipe(createWriteStream(this.logFile, { flags: 'a' }));
    c.once('exit', (code) => {
      this.#child = null;
      if (this.#stopped) return;
      this.#log(`hv_${this.service}_daemon exited (${code}); starting it again in 1 s`);
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

/** The three agents of one VM, keyed by service. */
export function sandboxedAgents(
  vmName: string,
  log: (m: string) => void,
): Record<AgentService, SandboxedAgent> {
  return {
    kvp: new SandboxedAgent(vmName, 'kvp', log),
    fcopy: new SandboxedAgent(vmName, 'fcopy', log),
    vss: new SandboxedAgent(vmName, 'vss', log),
  };
}
