/**
 * POSIX record locks (fcntl F_SETLKW write lock on a whole file) for Node, through the `hvlock` helper
 * process: the lock Linux's hv_kvp_daemon takes around every pool-file access (`kvp_acquire_lock`), so
 * concurrent writers (the C daemon, cloud-init's KVP reporter, us) never lose a record.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { nativeTool } from '../../../bridges/native.ts';
import { HvError } from '../../../protocol/errors.ts';

export class FileLock {
  readonly #proc: ChildProcessWithoutNullStreams;
  #buf = '';
  #waiters: ((line: string) => void)[] = [];
  #chain: Promise<unknown> = Promise.resolve();
  #dead = false;

  constructor() {
    this.#proc = spawn(nativeTool('hvlock'), [], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#proc.stdout.setEncoding('utf8');
    this.#proc.stdout.on('data', (d: string) => {
      this.#buf += d;
      for (let i = this.#buf.indexOf('\n'); i >= 0; i = this.#buf.indexOf('\n')) {
        const line = this.#buf.slice(0, i);
        this.#buf = this.#buf.slice(i + 1);
        this.#waiters.shift()?.(line);
      }
      if (this.#waiters.length === 0) this.#stdout().unref?.();
    });
    this.#proc.on('exit', () => {
      this.#dead = true;
      for (const w of this.#waiters.splice(0)) w('5');
    });
    this.#proc.unref();
    (this.#proc.stdout as unknown as { unref?(): void }).unref?.();
    (this.#proc.stdin as unknown as { unref?(): void }).unref?.();
    (this.#proc.stderr as unknown as { unref?(): void }).unref?.();
  }

  #stdout(): { ref?(): void; unref?(): void } {
    return this.#proc.stdout as unknown as { ref?(): void; unref?(): void };
  }

  #cmd(line: string): Promise<string> {
    if (this.#dead) return Promise.reject(new HvError('HV_ERR_IO', 'the hvlock helper is gone'));
    return new Promise((res) => {
      this.#waiters.push(res);
      // Keep the event loop alive only while an answer is pending (an idle helper must not hold it).
      this.#stdout().ref?.();
      this.#proc.stdin.write(`${line}\n`);
    });
  }

  /**
   * Runs `fn` while holding the write lock on `path` (calls are serialized).
   * @throws HvError `HV_ERR_IO` when the file cannot be opened or locked.
   */
  with<T>(path: string, fn: () => Promise<T>): Promise<T> {
    const run = async () => {
      const r = await this.#cmd(`L ${path}`);
      if (r !== '0') throw new HvError('HV_ERR_IO', `cannot lock ${path} (errno ${r})`);
      try {
        return await fn();
      } finally {
        // Not awaited: the helper answers in order, so the next L's answer comes after this U's.
        void this.#cmd('U');
      }
    };
    const p = this.#chain.then(run, run);
    this.#chain = p.catch(() => {});
    return p;
  }

  close(): void {
    this.#proc.stdin.end();
    this.#proc.kill();
  }
}
