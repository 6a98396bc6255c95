/**
 * POSIX record locks (fcntl F_SETLKW write lock on a whole file) for Node, through the `hvlock` helper
 * process: the lock Linux's hv_kvp_daemon takes around every pool-file access (`kvp_acquire_lock`), so
 * concurrent writers (the C daemon, cloud-init's KVP reporter, us) never lose a record.
 *
 * Two ways to talk to the helper:
 * - asynchronous (default): its stdin/stdout pipes, answers through the event loop; a long wait for the
 *   lock never blocks the process (the guest kernel's in-process daemon shares its thread with VMBus).
 * - synchronous (`{ sync: true }`, the standalone daemon): blocking writes and reads on FIFOs, as the C
 *   daemon blocks in F_SETLKW. No event-loop round trip per lock, which is most of a KVP request's cost.
 *   Each FIFO end is held by one process only, so either side dying gives the other EOF (the helper then
 *   exits and its lock goes with it).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { nativeTool } from '../../../bridges/native.ts';
import { HvError } from '../../../protocol/errors.ts';

/** Blocking FIFO ends to and from the helper (see the module comment). */
interface SyncLink {
  toHelper: number;
  fromHelper: number;
  /** `U` lines written whose answers are not read yet. */
  unread: number;
  /** Answer bytes read ahead (`len` of them). */
  buf: Buffer;
  len: number;
}

/** Opens a FIFO pair; returns our ends and the helper's (stdin, stdout), all blocking, none shared. */
function fifoPair(): { ours: SyncLink; helperIn: number; helperOut: number } {
  const dir = mkdtempSync(`${tmpdir()}/hvlock-`);
  try {
    const req = `${dir}/req`;
    const res = `${dir}/res`;
    execFileSync('mkfifo', ['-m', '600', req, res]);
    // O_RDWR placeholders let the one-way opens return at once (Linux FIFO semantics), then go.
    const p1 = openSync(req, constants.O_RDWR);
    const p2 = openSync(res, constants.O_RDWR);
    const helperIn = openSync(req, constants.O_RDONLY);
    const toHelper = openSync(req, constants.O_WRONLY);
    const helperOut = openSync(res, constants.O_WRONLY);
    const fromHelper = openSync(res, constants.O_RDONLY);
    closeSync(p1);
    closeSync(p2);
    return { ours: { toHelper, fromHelper, unread: 0, buf: Buffer.alloc(64), len: 0 }, helperIn, helperOut };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export class FileLock {
  readonly #proc: ChildProcess;
  readonly #sync: SyncLink | null = null;
  #buf = '';
  #waiters: ((line: string) => void)[] = [];
  #chain: Promise<unknown> = Promise.resolve();
  #dead = false;
  #closed = false;

  /** @param o.sync blocking helper I/O (a process whose only job is the daemon); see the module comment. */
  constructor(o: { sync?: boolean } = {}) {
    if (o.sync) {
      const { ours, helperIn, helperOut } = fifoPair();
      this.#sync = ours;
      this.#proc = spawn(nativeTool('hvlock'), [], { stdio: [helperIn, helperOut, 'ignore'] });
      closeSync(helperIn);
      closeSync(helperOut);
      this.#proc.on('exit', () => {
        this.#dead = true;
      });
      this.#proc.unref();
      return;
    }
    this.#proc = spawn(nativeTool('hvlock'), [], { stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout = this.#proc.stdout!;
    stdout.setEncoding('utf8');
    stdout.on('data', (d: string) => {
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
    if (this.#sync) {
      try {
        return Promise.resolve(this.#syncCmd(this.#sync, line));
      } catch (e) {
        return Promise.reject(new HvError('HV_ERR_IO', `the hvlock helper is gone: ${(e as Error).message}`));
      }
    }
    return new Promise((res) => {
      this.#waiters.push(res);
      // Keep the event loop alive only while an answer is pending (an idle helper must not hold it).
      this.#stdout().ref?.();
      this.#proc.stdin!.write(`${line}\n`);
    });
  }

  /** Writes `line`; for `U` returns at once (its answer is read before the next one), else waits for the answer. */
  #syncCmd(l: SyncLink, line: string): string {
    writeSync(l.toHelper, `${line}\n`);
    if (line === 'U') {
      l.unread++;
      return '0';
    }
    for (;;) {
      const answer = this.#readLine(l);
      if (l.unread === 0) return answer;
      l.unread--;
    }
  }

  /** One answer line (answers are short: at most an errno). @throws Error at EOF (the helper died). */
  #readLine(l: SyncLink): string {
    for (;;) {
      const nl = l.buf.indexOf(0x0a, 0);
      if (nl >= 0 && nl < l.len) {
        const line = l.buf.toString('latin1', 0, nl);
        l.buf.copy(l.buf, 0, nl + 1, l.len);
        l.len -= nl + 1;
        return line;
      }
      if (l.len === l.buf.length) l.len = 0; // not an answer of ours: drop it
      const got = readSync(l.fromHelper, l.buf, l.len, l.buf.length - l.len, null);
      if (got === 0) throw new Error('end of file');
      l.len += got;
    }
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
    if (this.#closed) return;
    this.#closed = true;
    if (this.#sync) {
      closeSync(this.#sync.toHelper);
      closeSync(this.#sync.fromHelper);
    } else this.#proc.stdin!.end();
    this.#proc.kill();
  }
}
