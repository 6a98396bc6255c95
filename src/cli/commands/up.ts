/**
 * `hvis up [<name>...] [--exit-after <s>] [--json] [--api-port <n>] [--profile <WS20xx>]` — the main job:
 * runs the host in the foreground, serves the management API (Unix socket `$HVIS_HOME/hvis.sock`, HTTP on
 * 127.0.0.1), creates the default VM `vm1` when no name is given and it does not exist, starts the VMs, and
 * shows what Hyper-V Manager shows, refreshed every second. Ctrl-C, SIGTERM or `--exit-after` shut the guests
 * down through the Shutdown service (power off after 30 s if a guest does not stop), print the final state
 * and exit 0. With `--json`, one line per refresh: a JSON array of Get-VM objects.
 */
import type { CommandModule } from 'yargs';
import { startApi } from '../../host/api/server.ts';
import { checkGuestAgent, guestAgent } from '../../host/guest-agent.ts';
import { Host } from '../../host/host.ts';
import type { Vm } from '../../host/vm.ts';
import { createVmSessionFactory } from '../../host/vm-session.ts';
import type { VmView } from '../../host/vm-view.ts';
import { HvError } from '../../protocol/errors.ts';
import { HOST_PROFILE_NAMES, hostProfile } from '../../vmbus/host-profiles.ts';
import { namesOf } from '../vm-args.ts';
import { formatLiveView } from '../vm-output.ts';

interface Args {
  name?: string[] | undefined;
  exitAfter?: number | undefined;
  json?: boolean | undefined;
  apiPort?: number | undefined;
  profile?: string | undefined;
  guestAgent?: string | undefined;
}

/** Get-VM `Version` (VM configuration version) of VMs created on each Windows Server release. */
const CONFIG_VERSION: Record<string, string> = {
  WS2008R2: '1.0', // UNVERIFIED
  WS2012: '4.0', // UNVERIFIED
  WS2012R2: '5.0',
  WS2016: '8.0',
  WS2019: '9.0',
  WS2022: '10.0',
  WS2025: '12.0',
};

const REFRESH_MS = 1000;
/** How long a guest may take to shut down when the host stops before it is powered off. */
const SHUTDOWN_GRACE_MS = 30_000;

export const upCommand: CommandModule<object, Args> = {
  command: 'up [name..]',
  describe:
    'run the host: create and start vm1 (or the named VMs), serve the management API, show live state',
  builder: (y) =>
    y
      .positional('name', {
        type: 'string',
        array: true,
        describe: 'VMs to start (default: vm1, created if absent)',
      })
      .option('exit-after', {
        type: 'number',
        describe: 'shut the VMs down cleanly and exit after this many seconds',
      })
      .option('api-port', {
        type: 'number',
        describe: 'HTTP port of the management API on 127.0.0.1 (0: any free port)',
      })
      .option('profile', {
        type: 'string',
        choices: HOST_PROFILE_NAMES,
        describe: 'host version profile (default WS2025)',
      })
      .option('guest-agent', {
        type: 'string',
        choices: ['hvis', 'hyperv-daemons'],
        describe:
          "guest daemons (KVP, file copy, VSS): ours (default) or Debian's hv_kvp_daemon, hv_fcopy_daemon and hv_vss_daemon, each sandboxed (VSS with a fake mount table, nothing frozen; needs root + hyperv-daemons)",
      })
      .check((a) => {
        if (
          a.exitAfter !== undefined &&
          !(typeof a.exitAfter === 'number' && Number.isFinite(a.exitAfter) && a.exitAfter >= 0)
        ) {
          throw new HvError(
            'HV_ERR_INVALID_ARGUMENT',
            `--exit-after must be a number of seconds >= 0, got ${a.exitAfter}`,
          );
        }
        if (
          a.apiPort !== undefined &&
          !(
            typeof a.apiPort === 'number' &&
            Number.isInteger(a.apiPort) &&
            a.apiPort >= 0 &&
            a.apiPort <= 65535
          )
        ) {
          throw new HvError(
            'HV_ERR_INVALID_ARGUMENT',
            `--api-port must be a port number 0-65535, got ${a.apiPort}`,
          );
        }
        return true;
      }),
  handler: async (argv) => {
    const profile = hostProfile(argv.profile ?? 'WS2025');
    checkGuestAgent(guestAgent(argv.guestAgent));
    const log = (vm: string, msg: string) => process.stderr.write(`hvis: [${vm}] ${msg}\n`);
    const host = await Host.open({
      createSession: createVmSessionFactory({ profile, log, guestAgent: guestAgent(argv.guestAgent) }),
      configVersion: CONFIG_VERSION[profile.name] ?? '12.0',
      log,
    });
    for (const p of host.problems) process.stderr.write(`hvis: warning: ${p.message}\n`);
    const api = await startApi(host, argv.apiPort === undefined ? {} : { port: argv.apiPort });
    process.stderr.write(
      `hvis: host up (${profile.name}); API on ${api.socketPath} and http://127.0.0.1:${api.port}\n`,
    );

    const json = argv.json === true;
    const tty = !json && process.stdout.isTTY === true;
    let lastPlain = '';
    const render = (views: VmView[]) => {
      if (json) {
        process.stdout.write(`${JSON.stringify(views)}\n`);
        return;
      }
      const text = formatLiveView(views);
      if (tty) process.stdout.write(`\x1b[H\x1b[2J${text}`);
      else {
        // Piped: print only when something other than the uptime changed.
        const key = text.replace(/\d+(\.\d\d)?:\d\d:\d\d/g, '');
        if (key !== lastPlain) process.stdout.write(text);
        lastPlain = key;
      }
    };

    let stopping = false;
    let done: () => void = () => {};
    const finished = new Promise<void>((r) => {
      done = r;
    });
    const requestStop = () => {
      if (stopping) {
        process.stderr.write('hvis: second interrupt: turning the VMs off\n');
        void Promise.all(host.find().map((vm) => vm.stop({ mode: 'turnOff' }).catch(() => {})));
        return;
      }
      stopping = true;
      done();
    };
    process.on('SIGINT', requestStop);
    process.on('SIGTERM', requestStop);
    const exitTimer =
      argv.exitAfter === undefined ? undefined : setTimeout(requestStop, Math.round(argv.exitAfter * 1000));

    let targets: Vm[];
    try {
      const names = namesOf(argv.name);
      targets = names.length === 0 ? [await host.defaultVm()] : host.find(names);
      for (const vm of targets) {
        if (stopping) break;
        try {
          await vm.start();
        } catch (err) {
          process.stderr.write(`hvis: [${vm.name}] start failed: ${(err as Error).message}\n`);
        }
      }
    } catch (err) {
      clearTimeout(exitTimer);
      process.off('SIGINT', requestStop);
      process.off('SIGTERM', requestStop);
      await api.close();
      throw err;
    }

    render(host.find().map((vm) => vm.view()));
    const ticker = setInterval(() => render(host.find().map((vm) => vm.view())), REFRESH_MS);
    await finished;
    clearInterval(ticker);
    clearTimeout(exitTimer);
    process.stderr.write('hvis: shutting down the VMs through the Shutdown service\n');
    await host.close(SHUTDOWN_GRACE_MS);
    render(host.find().map((vm) => vm.view()));
    await api.close();
    process.off('SIGINT', requestStop);
    process.off('SIGTERM', requestStop);
  },
};
