/**
 * VM configurations on disk: one JSON file per VM, `$HVIS_HOME/vms/<name>.json`, replaced atomically
 * (temp + fsync + rename), so a crash leaves the old or the new configuration.
 */
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { HvError } from '../protocol/errors.ts';
import { writeFileAtomic } from './atomic-file.ts';
import { checkVmName, parseVmConfig, type VmConfig } from './vm-config.ts';

/** Largest configuration file read (a sane one is a few KiB); bigger is reported as corrupt. */
const MAX_CONFIG_BYTES = 1 << 20;

export class ConfigStore {
  readonly dir: string;

  /** @param dir the `vms` directory (created on first save). */
  constructor(dir: string) {
    this.dir = dir;
  }

  fileOf(name: string): string {
    return join(this.dir, `${checkVmName(name)}.json`);
  }

  /**
   * Reads and validates one VM's configuration.
   * @throws HvError `HV_ERR_NOT_FOUND` when no such VM; `HV_ERR_CORRUPT` when the file is not valid JSON,
   *   fails validation, or names another VM.
   */
  async load(name: string): Promise<VmConfig> {
    const file = this.fileOf(name);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new HvError('HV_ERR_NOT_FOUND', `no VM named '${name}' (no file ${file})`, { name });
      }
      throw new HvError('HV_ERR_IO', `cannot read ${file}: ${(err as Error).message}`, { file });
    }
    if (text.length > MAX_CONFIG_BYTES) {
      throw new HvError(
        'HV_ERR_CORRUPT',
        `${file}: larger than ${MAX_CONFIG_BYTES} bytes; not a VM configuration`,
        {
          file,
        },
      );
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw new HvError(
        'HV_ERR_CORRUPT',
        `${file}: not valid JSON (${(err as Error).message}); fix or remove the file`,
        { file },
      );
    }
    const cfg = parseVmConfig(doc, file);
    if (cfg.name !== name) {
      throw new HvError('HV_ERR_CORRUPT', `${file}: field 'name' is '${cfg.name}', expected '${name}'`, {
        file,
      });
    }
    return cfg;
  }

  /** True when a configuration file exists for `name`. */
  async has(name: string): Promise<boolean> {
    return (await this.names()).includes(name);
  }

  /** Names of every stored VM (from the file names), sorted. */
  async names(): Promise<string[]> {
    let entries: string[];
    try {
      entries = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return entries
      .filter((f) => f.endsWith('.json') && !f.startsWith('.'))
      .map((f) => f.slice(0, -5))
      .sort();
  }

  /**
   * Loads every configuration. A corrupt file does not hide the others: it is returned in `problems`.
   */
  async list(): Promise<{ configs: VmConfig[]; problems: HvError[] }> {
    const configs: VmConfig[] = [];
    const problems: HvError[] = [];
    for (const n of await this.names()) {
      try {
        configs.push(await this.load(n));
      } catch (err) {
        if (err instanceof HvError)
          problems.push(new HvError(err.code, err.message, { ...err.details, name: n.toLowerCase() }));
        else throw err;
      }
    }
    return { configs, problems };
  }

  /** Writes (creates or replaces) a configuration atomically. */
  async save(cfg: VmConfig): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await writeFileAtomic(this.fileOf(cfg.name), `${JSON.stringify(cfg, null, 2)}\n`);
  }

  /** @throws HvError `HV_ERR_NOT_FOUND` when no such VM. */
  async remove(name: string): Promise<void> {
    const file = this.fileOf(name);
    try {
      await rm(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new HvError('HV_ERR_NOT_FOUND', `no VM named '${name}' (no file ${file})`, { name });
      }
      throw err;
    }
  }
}
