/**
 * One KVP pool file, `<root>/.kvp_pool_<n>`, in the on-disk layout of Linux tools/hv/hv_kvp_daemon.c
 * (`struct kvp_record { char key[512]; char value[2048]; }`): a flat array of 2560-byte records, no header,
 * NUL-terminated UTF-8 (bytes after the NUL are not significant). Every operation re-reads the file under
 * the fcntl write lock, as the C daemon does, so records other writers add are seen and none are lost.
 * Writes happen in place under the lock (a rename would leave other processes locking a stale inode).
 */
import { closeSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { HV_KVP_EXCHANGE_MAX_KEY_SIZE, HV_KVP_EXCHANGE_MAX_VALUE_SIZE } from '../../../protocol/ic/kvp.ts';
import { readCString } from '../../../protocol/uapi/strings.ts';
import type { FileLock } from './file-lock.ts';

/** Bytes per record: key[512] + value[2048]. */
export const KVP_RECORD_SIZE = HV_KVP_EXCHANGE_MAX_KEY_SIZE + HV_KVP_EXCHANGE_MAX_VALUE_SIZE;

export interface KvpRecord {
  key: string;
  value: string;
}

/** The file's records as C strings. A trailing partial record (a truncated file) is ignored, never fatal. */
export function parsePool(bytes: Uint8Array): KvpRecord[] {
  const out: KvpRecord[] = [];
  for (let at = 0; at + KVP_RECORD_SIZE <= bytes.length; at += KVP_RECORD_SIZE) {
    out.push({
      key: readCString(bytes, at, HV_KVP_EXCHANGE_MAX_KEY_SIZE),
      value: readCString(bytes, at + HV_KVP_EXCHANGE_MAX_KEY_SIZE, HV_KVP_EXCHANGE_MAX_VALUE_SIZE),
    });
  }
  return out;
}

const enc = new TextEncoder();

function record(key: string, value: string): Uint8Array {
  const r = new Uint8Array(KVP_RECORD_SIZE);
  r.set(enc.encode(key).subarray(0, HV_KVP_EXCHANGE_MAX_KEY_SIZE - 1), 0);
  r.set(enc.encode(value).subarray(0, HV_KVP_EXCHANGE_MAX_VALUE_SIZE - 1), HV_KVP_EXCHANGE_MAX_KEY_SIZE);
  return r;
}

export class KvpPoolFile {
  readonly path: string;
  readonly #lock: FileLock;
  #fd: number | null = null;

  constructor(path: string, lock: FileLock) {
    this.path = path;
    this.#lock = lock;
  }

  /** Creates the file (mode 0644) when missing. */
  async ensure(): Promise<void> {
    closeSync(openSync(this.path, 'a', 0o644));
  }

  /** Closes the kept descriptor. */
  close(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }

  // The file is small (2560 bytes a record) and the lock is held: plain synchronous I/O on a kept
  // descriptor is the cheapest correct path (no thread-pool hops between read and write).
  #locked<T>(fn: (fd: number, recs: KvpRecord[]) => T): Promise<T> {
    return this.#lock.with(this.path, async () => {
      if (this.#fd === null) this.#fd = openSync(this.path, 'r+');
      const fd = this.#fd;
      const size = fstatSync(fd).size;
      const bytes = new Uint8Array(size);
      let got = 0;
      while (got < size) {
        const n = readSync(fd, bytes, got, size - got, got);
        if (n === 0) break;
        got += n;
      }
      return fn(fd, parsePool(bytes.subarray(0, got)));
    });
  }

  /** All records. */
  list(): Promise<KvpRecord[]> {
    return this.#locked((_fd, recs) => recs);
  }

  /** Value of `key`, or null. */
  get(key: string): Promise<string | null> {
    return this.#locked((_fd, recs) => recs.find((r) => r.key === key)?.value ?? null);
  }

  /** Overwrites the value of an existing key in place, else appends a record. */
  set(key: string, value: string): Promise<void> {
    return this.#locked((fd, recs) => {
      const i = recs.findIndex((r) => r.key === key);
      const at = (i >= 0 ? i : recs.length) * KVP_RECORD_SIZE;
      writeSync(fd, record(key, value), 0, KVP_RECORD_SIZE, at);
      if (i < 0) ftruncateSync(fd, at + KVP_RECORD_SIZE);
    });
  }

  /** Removes `key`, moving later records up. @returns false when it was not there. */
  delete(key: string): Promise<boolean> {
    return this.#locked((fd, recs) => {
      const i = recs.findIndex((r) => r.key === key);
      if (i < 0) return false;
      const rest = recs.slice(i + 1);
      const buf = new Uint8Array(rest.length * KVP_RECORD_SIZE);
      for (const [k, r] of rest.entries()) buf.set(record(r.key, r.value), k * KVP_RECORD_SIZE);
      if (buf.length) writeSync(fd, buf, 0, buf.length, i * KVP_RECORD_SIZE);
      ftruncateSync(fd, (recs.length - 1) * KVP_RECORD_SIZE);
      return true;
    });
  }
}
