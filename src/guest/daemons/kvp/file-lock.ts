/**
 * The pool-file lock of Linux's hv_kvp_daemon (`kvp_acquire_lock`: a whole-file write lock, `struct flock`
 * { l_type F_WRLCK, l_whence SEEK_SET, l_start 0, l_len 0 } through fcntl), taken in-process through koffi,
 * so concurrent writers (the C daemon, cloud-init's KVP reporter, us) never lose a record.
 *
 * We take open-file-description locks (F_OFD_SETLK / F_OFD_SETLKW, Linux 3.15) rather than classic
 * F_SETLK(W): on Linux both kinds live in the same record-lock table and conflict with each other, so the C
 * daemon's F_SETLKW still waits for us and we for it; but a classic lock belongs to the whole process
 * (two holders in one Node process would not exclude each other) and any close() of any descriptor of
 * the file drops it, both of which an in-process daemon sharing its process with other code cannot rule out.
 * An OFD lock belongs to the descriptor we keep open per path.
 *
 * Waiting: `{ sync: true }` (the standalone daemon, whose process does nothing else) blocks in
 * F_OFD_SETLKW, as the C daemon blocks in F_SETLKW. Otherwise (the guest kernel's in-process daemon
 * shares its thread with VMBus) a non-blocking F_OFD_SETLK is tried first, and only when the lock is held
 * elsewhere the blocking call runs on koffi's worker thread, so the event loop never waits for the lock.
 */
import { closeSync, openSync } from 'node:fs';
import { HvError } from '../../../protocol/errors.ts';
import { fcntlLock } from './fcntl-lock.ts';

export class FileLock {
  readonly #sync: boolean;
  /** Descriptor (O_RDWR: a write lock needs a writable descriptor) per locked path, kept open. */
  readonly #fds = new Map<string, number>();
  #chain: Promise<unknown> = Promise.resolve();
  #closed = false;

  /** @param o.sync block the thread while another process holds the lock (see the module comment). */
  constructor(o: { sync?: boolean } = {}) {
    this.#sync = o.sync ?? false;
  }

  /**
   * Runs `fn` while holding the write lock on `path` (calls on one FileLock are serialized; separate
   * FileLocks exclude each other like separate processes).
   * @throws HvError `HV_ERR_IO` when the file cannot be opened or locked, `HV_ERR_INVALID_STATE` after close().
   */
  with<T>(path: string, fn: () => Promise<T>): Promise<T> {
    const run = async () => {
      const fd = this.#fd(path);
      if (this.#sync) fcntlLock(fd, 'lock-wait');
      else if (!fcntlLock(fd, 'try-lock')) await fcntlLock.async(fd);
      try {
        return await fn();
      } finally {
        if (!this.#closed) fcntlLock(fd, 'unlock');
      }
    };
    const p = this.#chain.then(run, run).catch((e: unknown) => {
      throw e instanceof HvError
        ? e
        : new HvError('HV_ERR_IO', `cannot lock ${path}: ${(e as Error).message}`);
    });
    this.#chain = p.catch(() => {});
    return p;
  }

  #fd(path: string): number {
    if (this.#closed) throw new HvError('HV_ERR_INVALID_STATE', 'the pool-file lock is closed');
    let fd = this.#fds.get(path);
    if (fd === undefined) {
      fd = openSync(path, 'r+');
      this.#fds.set(path, fd);
    }
    return fd;
  }

  /** Closes the descriptors (which releases any lock still held). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const fd of this.#fds.values()) closeSync(fd);
    this.#fds.clear();
  }
}
