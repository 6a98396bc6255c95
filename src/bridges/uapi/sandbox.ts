/**
 * Starts a guest daemon inside scripts/sandbox-run.sh (`unshare -m -n -u`: private /var/lib, its own
 * network with a deterministic eth0, fake scripts), attached to a uapi socket bridge. `kind: 'real'` runs
 * Debian's `/usr/sbin/hv_kvp_daemon -n` with native/hvshim preloaded; `kind: 'ours'` runs our daemon's
 * standalone entry. Needs root (or user namespaces) and util-linux `unshare`, iproute2 `ip`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { nativeTool } from '../native.ts';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

export interface SandboxOptions {
  kind: 'real' | 'ours';
  /** Which daemon: `hv_<service>_daemon` / our `guest/daemons/<service>/main.js` (default kvp). */
  service?: 'kvp' | 'fcopy' | 'vss';
  /** Extra arguments for our daemon's entry (ignored for `real`). */
  args?: readonly string[];
  /** Extra environment (e.g. HVSHIM_MOUNTS, HVSHIM_FAKE_FREEZE for the real hv_vss_daemon). */
  env?: Readonly<Record<string, string>>;
  /** Shell commands run inside the namespaces before the daemon starts (e.g. mount a small tmpfs). */
  prelude?: string;
  /** The bridge socket (a filesystem path: abstract sockets do not cross network namespaces). */
  socket: string;
  /** Directory bound over /var/lib (pool files appear in `<state>/hyperv`). */
  state: string;
  /** Directory bound over /usr/libexec/hypervkvpd, e.g. from {@link writeFakeScripts}. */
  scripts?: string;
  /** netvsc device_id of eth0, e.g. `{f8615163-df3e-46c5-913f-f2d2f965ed0e}`. */
  deviceId?: string;
  /** Where the daemon's stderr goes (default: ignored). */
  stderr?: 'inherit' | 'pipe' | 'ignore';
  /** Daemon binary for `real` (default /usr/sbin/hv_<service>_daemon). */
  binary?: string;
}

/** Spawns the sandboxed daemon; kill it with `process.kill(-child.pid)` or by closing the bridge. */
export function spawnSandboxedDaemon(o: SandboxOptions): ChildProcess {
  mkdirSync(o.state, { recursive: true });
  const svc = o.service ?? 'kvp';
  let cmd =
    o.kind === 'real'
      ? [o.binary ?? `/usr/sbin/hv_${svc}_daemon`, '-n']
      : [
          process.execPath,
          `${ROOT}dist/src/guest/daemons/${svc}/main.js`,
          '--socket',
          o.socket,
          ...(o.args ?? []),
        ];
  if (o.prelude) cmd = ['/bin/sh', '-c', `${o.prelude}\nexec "$@"`, 'sh', ...cmd];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...o.env,
    SANDBOX_STATE: o.state,
    HVSHIM_SOCKET: o.socket,
    HVSHIM_QUIET: '1',
  };
  if (o.scripts) env.SANDBOX_SCRIPTS = o.scripts;
  if (o.deviceId) env.SANDBOX_DEVICE_ID = o.deviceId;
  if (o.kind === 'real') env.LD_PRELOAD = nativeTool('hvshim');
  return spawn(
    'unshare',
    ['-m', '-n', '-u', '--fork', '--kill-child', `${ROOT}scripts/sandbox-run.sh`, ...cmd],
    {
      env,
      stdio: ['ignore', 'ignore', o.stderr ?? 'ignore'],
      detached: true,
    },
  );
}

/**
 * Writes logging stand-ins for the KVP scripts into `dir`: hv_get_dns_info prints 192.0.2.53 and
 * 192.0.2.54, hv_get_dhcp_info prints Disabled, hv_set_ifconfig appends its arguments and the file it got
 * to `<dir>/calls.log` (as the daemon runs it, inside the sandbox).
 */
export function writeFakeScripts(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const put = (name: string, body: string) => {
    writeFileSync(`${dir}/${name}`, `#!/bin/sh\n${body}\n`);
    chmodSync(`${dir}/${name}`, 0o755);
  };
  put('hv_get_dns_info', 'echo 192.0.2.53\necho 192.0.2.54');
  put('hv_get_dhcp_info', 'echo Disabled');
  put(
    'hv_set_ifconfig',
    'echo "hv_set_ifconfig $*" >> /usr/libexec/hypervkvpd/calls.log\ncat "$1" >> /usr/libexec/hypervkvpd/calls.log',
  );
}
