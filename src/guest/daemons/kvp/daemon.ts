/**
 * Our KVP daemon, a drop-in for Linux tools/hv/hv_kvp_daemon.c: registers with REGISTER1, then answers
 * one `hv_kvp_msg` at a time with the same status codes (failures of GET/SET/DELETE and the end of an
 * enumeration → HV_S_CONT; unknown MAC → HV_E_FAIL; unknown adapter GUID → HV_GUID_NOTFOUND; a bad
 * address → HV_INVALIDARG; script failure → HV_E_FAIL), pool files in the C daemon's layout and locking.
 * Runs on any {@link UapiFile}: the guest kernel's node in-process, or the socket bridge from another process.
 */
import { mkdirSync } from 'node:fs';
import type { UapiFile } from '../../../bridges/uapi/file.ts';
import {
  HV_E_FAIL,
  HV_GUID_NOTFOUND,
  HV_INVALIDARG,
  HV_S_CONT,
  HV_S_OK,
} from '../../../protocol/ic/icmsg.ts';
import {
  HV_KVP_EXCHANGE_MAX_KEY_SIZE,
  HV_KVP_EXCHANGE_MAX_VALUE_SIZE,
  KVP_OP_DELETE,
  KVP_OP_ENUMERATE,
  KVP_OP_GET,
  KVP_OP_GET_IP_INFO,
  KVP_OP_SET,
  KVP_OP_SET_IP_INFO,
  KVP_POOL_AUTO,
  KVP_POOL_COUNT,
} from '../../../protocol/ic/kvp.ts';
import {
  getKvpDeleteKey,
  getKvpEnum,
  getKvpIp,
  getKvpRegisterVersion,
  getKvpValue,
  HV_KVP_MSG,
  HV_KVP_MSG_SIZE,
  KVP_OP_REGISTER1,
  newKvpMsg,
  putKvpEnum,
  putKvpIp,
  setKvpMsgError,
} from '../../../protocol/uapi/kvp.ts';
import { AUTO_KEYS, autoPoolValues } from './auto-pool.ts';
import { FileLock } from './file-lock.ts';
import { getIpInfo, type IpConfigPaths, setIpInfo } from './ip-config.ts';
import { KvpPoolFile } from './pool-file.ts';

export interface KvpDaemonOptions {
  /** Pool directory, default `/var/lib/hyperv` (Linux `KVP_CONFIG_LOC`). */
  root?: string;
  /** Script directory, default `/usr/libexec/hypervkvpd` (Debian's `KVP_SCRIPTS_PATH`). */
  scripts?: string;
  /** sysfs net directory, default `/sys/class/net`. */
  sysNet?: string;
  /**
   * Take the pool-file lock with blocking helper I/O (as the C daemon blocks in F_SETLKW): for a process
   * that runs only the daemon. Default false (the lock wait never blocks the event loop).
   */
  syncLock?: boolean;
  log?(msg: string): void;
}

export class KvpDaemon {
  readonly #paths: IpConfigPaths;
  readonly #lock: FileLock;
  readonly #pools: KvpPoolFile[];
  readonly #log: (m: string) => void;
  #version = '';
  #poolsReady = false;
  #stopped = false;

  constructor(o: KvpDaemonOptions = {}) {
    this.#paths = {
      root: o.root ?? '/var/lib/hyperv',
      scripts: o.scripts ?? '/usr/libexec/hypervkvpd',
      sysNet: o.sysNet ?? '/sys/class/net',
    };
    this.#log = o.log ?? (() => {});
    this.#lock = new FileLock({ sync: o.syncLock ?? false });
    mkdirSync(this.#paths.root, { recursive: true, mode: 0o755 });
    this.#pools = Array.from(
      { length: KVP_POOL_COUNT },
      (_, i) => new KvpPoolFile(`${this.#paths.root}/.kvp_pool_${i}`, this.#lock),
    );
  }

  /** The version string the kernel answered REGISTER1 with (IntegrationServicesVersion). */
  get kernelVersion(): string {
    return this.#version;
  }

  /**
   * Registers on `dev` and serves it until it closes. Resolves when the device is gone.
   * @throws HvError when the kernel's register answer is not a `hv_kvp_msg`.
   */
  async serve(dev: UapiFile): Promise<void> {
    await this.#ensurePools();
    dev.write(newKvpMsg(KVP_OP_REGISTER1, 0));
    const reg = await dev.read();
    this.#version = reg.length >= HV_KVP_MSG_SIZE ? getKvpRegisterVersion(reg) : '';
    this.#log(`KVP LIC Version: ${this.#version}`);
    for (;;) {
      let msg: Uint8Array;
      try {
        msg = await dev.read();
      } catch {
        return;
      }
      if (this.#stopped) return;
      if (msg.length < HV_KVP_MSG_SIZE) continue;
      const reply = await this.handle(msg);
      try {
        dev.write(reply);
      } catch {
        return;
      }
    }
  }

  /** Creates the five pool files (mode 0644) when missing, as the C daemon does at start. */
  async #ensurePools(): Promise<void> {
    if (this.#poolsReady) return;
    for (const p of this.#pools) await p.ensure();
    this.#poolsReady = true;
  }

  /** Stops after the current message and ends the lock helper. */
  stop(): void {
    this.#stopped = true;
    for (const p of this.#pools) p.close();
    this.#lock.close();
  }

  /** Answers one request in place (the status overwrites bytes 0..3, as the C daemon's `error` does). */
  async handle(msg: Uint8Array): Promise<Uint8Array> {
    await this.#ensurePools();
    const op = msg[HV_KVP_MSG.offsets.operation]!;
    const poolNo = msg[HV_KVP_MSG.offsets.pool]!;
    let status = HV_S_OK;
    try {
      status = await this.#op(op, poolNo, msg);
    } catch (e) {
      this.#log(`operation ${op} failed: ${(e as Error).message}`);
      status = HV_E_FAIL;
    }
    setKvpMsgError(msg, status);
    return msg;
  }

  async #op(op: number, poolNo: number, msg: Uint8Array): Promise<number> {
    if (op === KVP_OP_GET_IP_INFO) {
      const ip = await getIpInfo(this.#paths, getKvpIp(msg).adapterId);
      if (!ip) return HV_E_FAIL;
      putKvpIp(msg, ip);
      return HV_S_OK;
    }
    if (op === KVP_OP_SET_IP_INFO) {
      const r = await setIpInfo(this.#paths, getKvpIp(msg));
      return r === 'ok'
        ? HV_S_OK
        : r === 'invalid'
          ? HV_INVALIDARG
          : r === 'not-found'
            ? HV_GUID_NOTFOUND
            : HV_E_FAIL;
    }
    const pool = this.#pools[poolNo];
    if (!pool) return HV_E_FAIL;
    switch (op) {
      case KVP_OP_SET: {
        const v = getKvpValue(msg);
        if (v.keySize > HV_KVP_EXCHANGE_MAX_KEY_SIZE || v.valueSize > HV_KVP_EXCHANGE_MAX_VALUE_SIZE)
          return HV_S_CONT;
        await pool.set(v.key, v.value);
        return HV_S_OK;
      }
      case KVP_OP_GET: {
        const v = getKvpValue(msg);
        const value = await pool.get(v.key);
        if (value === null) return HV_S_CONT;
        // The C daemon copies `value_size` bytes of the record (0 from the Linux driver): do the same.
        const o = HV_KVP_MSG.offsets.value;
        const bytes = new TextEncoder().encode(value);
        const n = Math.min(v.valueSize, HV_KVP_EXCHANGE_MAX_VALUE_SIZE);
        msg.fill(0, o, o + n);
        msg.set(bytes.subarray(0, n), o);
        return HV_S_OK;
      }
      case KVP_OP_DELETE:
        return (await pool.delete(getKvpDeleteKey(msg))) ? HV_S_OK : HV_S_CONT;
      case KVP_OP_ENUMERATE: {
        const { index } = getKvpEnum(msg);
        if (poolNo === KVP_POOL_AUTO) {
          if (index >= AUTO_KEYS.length) return HV_S_CONT;
          putKvpEnum(msg, AUTO_KEYS[index]!, autoPoolValues(this.#version)[index]!);
          return HV_S_OK;
        }
        const r = (await pool.list())[index];
        if (!r) return HV_S_CONT;
        putKvpEnum(msg, r.key, r.value);
        return HV_S_OK;
      }
      default:
        return HV_E_FAIL;
    }
  }
}
