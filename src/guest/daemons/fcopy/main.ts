/**
 * Standalone entry of our file copy daemon, the counterpart of `hv_fcopy_daemon -n`: attaches to a guest
 * kernel's `/dev/vmbus/hv_fcopy` through the uapi socket bridge and serves it until the device closes
 * (exit 1, as the C daemon exits when it cannot reopen the device). Logs go to stderr only.
 *
 *   node dist/src/guest/daemons/fcopy/main.js --socket <path> [--allowed-root <dir>]...
 */
import { parseArgs } from 'node:util';
import { connectUapi } from '../../../bridges/uapi/client.ts';
import { serveFcopy } from './in-process.ts';

const { values } = parseArgs({
  options: {
    socket: { type: 'string' },
    'allowed-root': { type: 'string', multiple: true },
  },
});
if (!values.socket) {
  process.stderr.write('usage: main.js --socket <bridge socket> [--allowed-root dir]...\n');
  process.exit(2);
}
const log = (m: string) => process.stderr.write(`<6>HV_FCOPY(hvis)[${process.pid}]: ${m}\n`);
try {
  const dev = await connectUapi(values.socket, '/dev/vmbus/hv_fcopy');
  await serveFcopy(dev, { allowedRoots: values['allowed-root'] ?? [], log });
  log('device closed');
} catch (e) {
  log(`open /dev/vmbus/hv_fcopy failed: ${(e as Error).message}`);
}
process.exit(1);
