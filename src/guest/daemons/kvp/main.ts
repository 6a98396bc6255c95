/**
 * Standalone entry of our KVP daemon, the counterpart of `hv_kvp_daemon -n`: attaches to a guest kernel's
 * `/dev/vmbus/hv_kvp` through the uapi socket bridge and serves it until the device closes (exit 1, as the
 * C daemon exits when it cannot reopen the device).
 *
 *   node dist/src/guest/daemons/kvp/main.js --socket <path> [--root /var/lib/hyperv]
 *        [--scripts /usr/libexec/hypervkvpd] [--sys-net /sys/class/net]
 */
import { parseArgs } from 'node:util';
import { connectUapi } from '../../../bridges/uapi/client.ts';
import { KvpDaemon } from './daemon.ts';

const { values } = parseArgs({
  options: {
    socket: { type: 'string' },
    root: { type: 'string' },
    scripts: { type: 'string' },
    'sys-net': { type: 'string' },
  },
});
if (!values.socket) {
  process.stderr.write(
    'usage: main.js --socket <bridge socket> [--root dir] [--scripts dir] [--sys-net dir]\n',
  );
  process.exit(2);
}
const log = (m: string) => process.stderr.write(`<6>KVP[${process.pid}]: ${m}\n`);
const daemon = new KvpDaemon({
  ...(values.root ? { root: values.root } : {}),
  ...(values.scripts ? { scripts: values.scripts } : {}),
  ...(values['sys-net'] ? { sysNet: values['sys-net'] } : {}),
  syncLock: true,
  log,
});
log(`KVP starting; pid is:${process.pid}`);
try {
  const dev = await connectUapi(values.socket, '/dev/vmbus/hv_kvp');
  await daemon.serve(dev);
  log('device closed');
} catch (e) {
  log(`open /dev/vmbus/hv_kvp failed: ${(e as Error).message}`);
}
daemon.stop();
process.exit(1);
