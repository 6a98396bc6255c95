/**
 * Standalone entry of our VSS daemon, the counterpart of `hv_vss_daemon -n`: attaches to a guest kernel's
 * `/dev/vmbus/hv_vss` through the uapi socket bridge. It freezes only the mount points named with
 * `--freeze` (never `/` without `--allow-root`); `--fake-freeze` logs the ioctls instead of issuing them.
 * Logs go to stderr only (never to a filesystem that may be frozen). Exit 1 when the device closes.
 *
 *   node dist/src/guest/daemons/vss/main.js --socket <path> [--freeze <mount point>]... [--allow-root]
 *        [--fake-freeze] [--freeze-timeout-ms 60000]
 */
import { parseArgs } from 'node:util';
import { connectUapi } from '../../../bridges/uapi/client.ts';
import { serveVss, VssDaemon } from './daemon.ts';

const { values } = parseArgs({
  options: {
    socket: { type: 'string' },
    freeze: { type: 'string', multiple: true },
    'allow-root': { type: 'boolean' },
    'fake-freeze': { type: 'boolean' },
    'freeze-timeout-ms': { type: 'string' },
  },
});
if (!values.socket) {
  process.stderr.write(
    'usage: main.js --socket <bridge socket> [--freeze dir]... [--allow-root] [--fake-freeze] [--freeze-timeout-ms n]\n',
  );
  process.exit(2);
}
const log = (m: string) => process.stderr.write(`<6>Hyper-V VSS(hvis)[${process.pid}]: ${m}\n`);
let daemon: VssDaemon;
try {
  daemon = new VssDaemon({
    mountPoints: values.freeze ?? [],
    allowRoot: values['allow-root'] ?? false,
    ...(values['freeze-timeout-ms'] ? { freezeTimeoutMs: Number(values['freeze-timeout-ms']) } : {}),
    ...(values['fake-freeze']
      ? {
          ioctl: (_fd: number, op: 'freeze' | 'thaw', m: string) =>
            log(`FAKE ${op === 'freeze' ? 'FIFREEZE' : 'FITHAW'} ${m}`),
        }
      : {}),
    log,
  });
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(2);
}
try {
  const dev = await connectUapi(values.socket, '/dev/vmbus/hv_vss');
  await serveVss(dev, daemon);
  log('device closed');
} catch (e) {
  log(`open /dev/vmbus/hv_vss failed: ${(e as Error).message}`);
}
daemon.thaw();
process.exit(1);
