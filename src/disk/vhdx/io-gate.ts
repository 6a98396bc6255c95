/**
 * A shared/exclusive gate for a disk's operations: I/O (read, write, trim, flush, block status) runs shared and
 * concurrently; resize and compaction steps run exclusive, after every shared operation in flight has finished
 * and before any that started later. An exclusive request that is waiting holds back new shared ones, so a
 * steady stream of I/O cannot starve a resize.
 */
export class IoGate {
  #active = 0;
  /** Settles when the current (or waiting) exclusive holder releases; null when there is none. */
  #exclusive: Promise<void> | null = null;
  #drained: (() => void) | null = null;

  /** Runs `fn` alongside other shared operations, once no exclusive operation holds or awaits the gate. */
  async shared<T>(fn: () => Promise<T>): Promise<T> {
    while (this.#exclusive) await this.#exclusive;
    this.#active++;
    try {
      return await fn();
    } finally {
      this.#active--;
      if (this.#active === 0) this.#drained?.();
    }
  }

  /** Runs `fn` alone: after the shared operations in flight drain, with new ones held until it settles. */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.#exclusive) await this.#exclusive;
    let release!: () => void;
    this.#exclusive = new Promise<void>((r) => {
      release = r;
    });
    try {
      if (this.#active > 0) {
        await new Promise<void>((r) => {
          this.#drained = r;
        });
      }
      this.#drained = null;
      return await fn();
    } finally {
      this.#exclusive = null;
      release();
    }
  }
}
