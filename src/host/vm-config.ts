/**
 * A VM's configuration: the JSON document stored as `$HVIS_HOME/vms/<name>.json`, the role Hyper-V's
 * `.vmcx` configuration file plays. Field names are our own (camelCase); the PowerShell-shaped view is
 * built from it by `vm-view.ts`.
 */
import { HvError } from '../protocol/errors.ts';
import { Guid } from '../protocol/guid.ts';
import { INTEGRATION_SERVICES, type IntegrationServiceName } from './integration-services.ts';

/** Bumped when the file's shape changes incompatibly. */
export const VM_CONFIG_SCHEMA = 1;

/** A virtual hard disk attached to the VM (Add-VMHardDiskDrive / New-VM -NewVHDPath). */
export interface HardDriveConfig {
  /** Absolute path of the image file. */
  path: string;
  controllerType: 'SCSI' | 'IDE';
  controllerNumber: number;
  controllerLocation: number;
  /** Virtual size in bytes (used when hvis creates the file). */
  sizeBytes: number;
  vhdType: 'Dynamic' | 'Fixed';
}

/** A synthetic network adapter (Add-VMNetworkAdapter). */
export interface NetworkAdapterConfig {
  name: string;
  switchName: string;
  /** 12 upper-case hex digits, as Hyper-V prints `MacAddress` (00155D... is Hyper-V's OUI). */
  macAddress: string;
}

/** A virtual Fibre Channel adapter (Add-VMFibreChannelHba); WWNs as 16 upper-case hex digits. */
export interface FibreChannelAdapterConfig {
  sanName: string;
  wwnnA: string;
  wwpnA: string;
  wwnnB: string;
  wwpnB: string;
}

/** A checkpoint's frozen image of one drive (the drive's path when the checkpoint was taken). */
export interface CheckpointDriveConfig {
  controllerNumber: number;
  controllerLocation: number;
  /** Absolute path of the frozen image; the VM continued in a differencing child of it. */
  path: string;
}

/** Checkpoint types, as Set-VM -CheckpointType / Checkpoint-VM -SnapshotType name them. */
export type CheckpointType = 'Production' | 'ProductionOnly' | 'Standard';

/** One checkpoint (Checkpoint-VM), a node of the VM's checkpoint tree. */
export interface CheckpointConfig {
  /** A random GUID (Get-VMSnapshot `Id`). */
  id: string;
  name: string;
  type: CheckpointType;
  /** ISO 8601. */
  creationTime: string;
  /** The checkpoint this one was taken on top of (null: the first). */
  parentId: string | null;
  drives: CheckpointDriveConfig[];
}

/** The VM's checkpoint tree: every checkpoint, and the one the VM's current state continues from. */
export interface CheckpointTreeConfig {
  /** Id of a checkpoint in `list`, or null when the VM continues from none. */
  current: string | null;
  list: CheckpointConfig[];
}

export interface VmConfig {
  schema: typeof VM_CONFIG_SCHEMA;
  name: string;
  /** VMId, a random GUID fixed at creation. */
  id: string;
  generation: 1 | 2;
  processorCount: number;
  /** Startup memory in bytes (a multiple of 2 MiB, as Hyper-V requires). */
  memoryStartupBytes: number;
  hardDrives: HardDriveConfig[];
  networkAdapters: NetworkAdapterConfig[];
  /** Enabled flag per integration service (every service in INTEGRATION_SERVICES has an entry). */
  integrationServices: Record<IntegrationServiceName, boolean>;
  /** ISO 8601 creation time. */
  creationTime: string;
  /** Virtual Fibre Channel adapters, in offer order (absent: none). */
  fibreChannelAdapters?: FibreChannelAdapterConfig[];
  /** Checkpoints (absent: none, or still in the pre-configuration side file; see host/checkpoints.ts). */
  checkpoints?: CheckpointTreeConfig;
}

/** 127 GiB: Hyper-V Manager's New Virtual Machine wizard default for a new virtual hard disk ("127 GB"). */
export const DEFAULT_VHD_SIZE_BYTES = 127 * 1024 ** 3;
/** 1 GiB: Hyper-V Manager's default startup memory since Windows Server 2016 (1024 MB). */
export const DEFAULT_MEMORY_STARTUP_BYTES = 1024 ** 3;
export const DEFAULT_SWITCH_NAME = 'Default Switch';

const NAME = /^[A-Za-z0-9_][A-Za-z0-9 ._-]{0,99}$/;

/**
 * Checks a VM name usable as a file name: 1–100 characters, letters, digits, space, `.`, `_`, `-`, not
 * starting with `.`, `-` or a space.
 * @throws HvError `HV_ERR_INVALID_ARGUMENT` otherwise.
 */
export function checkVmName(name: string): string {
  if (!NAME.test(name) || name.endsWith(' ')) {
    throw new HvError(
      'HV_ERR_INVALID_ARGUMENT',
      `invalid VM name '${name}': use 1-100 letters, digits, spaces, '.', '_' or '-', starting with a letter, digit or '_'`,
      { name },
    );
  }
  return name;
}

/** A locally administered-looking MAC in Hyper-V's 00-15-5D range with 3 random bytes. */
export function randomHyperVMac(): string {
  const b = Guid.random().bytes;
  const hex = (x: number) => x.toString(16).toUpperCase().padStart(2, '0');
  return `00155D${hex(b[0]!)}${hex(b[1]!)}${hex(b[2]!)}`;
}

export interface NewVmOptions {
  name: string;
  memoryStartupBytes?: number;
  generation?: 1 | 2;
  processorCount?: number;
  switchName?: string;
  /** Attach a new dynamic VHDX at this path with this size; omit for -NoVHD. */
  newVhd?: { path: string; sizeBytes: number };
}

/**
 * A new configuration with Hyper-V's defaults: generation 2, one vCPU, 1 GiB, every integration
 * service enabled, one NIC when `switchName` is given.
 * @throws HvError `HV_ERR_INVALID_ARGUMENT` for a bad name, memory size or processor count.
 */
export function newVmConfig(o: NewVmOptions): VmConfig {
  checkVmName(o.name);
  const mem = o.memoryStartupBytes ?? DEFAULT_MEMORY_STARTUP_BYTES;
  if (!Number.isSafeInteger(mem) || mem < 32 * 1024 ** 2 || mem % (2 * 1024 ** 2) !== 0) {
    throw new HvError(
      'HV_ERR_INVALID_ARGUMENT',
      `invalid startup memory ${mem} bytes: give a multiple of 2 MiB (2097152 bytes), at least 32 MiB`,
    );
  }
  const cpus = o.processorCount ?? 1;
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > 240) {
    throw new HvError('HV_ERR_INVALID_ARGUMENT', `invalid processor count ${cpus}: give 1 to 240`);
  }
  const services = {} as Record<IntegrationServiceName, boolean>;
  // As on Hyper-V, every service but the Guest Service Interface (file copy) starts enabled.
  for (const s of INTEGRATION_SERVICES) services[s.name] = s.name !== 'Guest Service Interface';
  return {
    schema: VM_CONFIG_SCHEMA,
    name: o.name,
    id: Guid.random().toString(),
    generation: o.generation ?? 2,
    processorCount: cpus,
    memoryStartupBytes: mem,
    hardDrives: o.newVhd
      ? [
          {
            path: o.newVhd.path,
            controllerType: 'SCSI',
            controllerNumber: 0,
            controllerLocation: 0,
            sizeBytes: o.newVhd.sizeBytes,
            vhdType: 'Dynamic',
          },
        ]
      : [],
    networkAdapters:
      o.switchName !== undefined
        ? [{ name: 'Network Adapter', switchName: o.switchName, macAddress: randomHyperVMac() }]
        : [],
    integrationServices: services,
    creationTime: new Date().toISOString(),
  };
}

type Obj = Record<string, unknown>;

/**
 * Validates a parsed configuration document (untrusted: the file may have been edited by hand).
 * @param where the file name, for messages.
 * @throws HvError `HV_ERR_CORRUPT` naming the file and the first bad field.
 */
export function parseVmConfig(doc: unknown, where: string): VmConfig {
  const bad = (field: string, want: string): never => {
    throw new HvError('HV_ERR_CORRUPT', `${where}: field '${field}' must be ${want}`, { file: where, field });
  };
  const obj = (v: unknown, field: string): Obj =>
    typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : bad(field, 'an object');
  const str = (o: Obj, k: string, p: string): string =>
    typeof o[k] === 'string' ? o[k] : bad(p + k, 'a string');
  const int = (o: Obj, k: string, p: string, min: number, max: number): number => {
    const v = o[k];
    return Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max
      ? (v as number)
      : bad(p + k, `an integer from ${min} to ${max}`);
  };
  const arr = (o: Obj, k: string): unknown[] => (Array.isArray(o[k]) ? o[k] : bad(k, 'an array'));
  const guid = (o: Obj, k: string, p: string): string => {
    const v = str(o, k, p);
    try {
      Guid.parse(v);
    } catch {
      bad(p + k, 'a GUID');
    }
    return v;
  };
  const parseCheckpoints = (c: Obj): CheckpointTreeConfig => {
    const items = Array.isArray(c.list) ? c.list : bad('checkpoints.list', 'an array');
    const list = items.map((x, i): CheckpointConfig => {
      const p = `checkpoints.list[${i}].`;
      const o = obj(x, p);
      const type = str(o, 'type', p);
      if (type !== 'Production' && type !== 'ProductionOnly' && type !== 'Standard')
        bad(`${p}type`, "'Production', 'ProductionOnly' or 'Standard'");
      const drives = Array.isArray(o.drives) ? o.drives : bad(`${p}drives`, 'an array');
      return {
        id: guid(o, 'id', p),
        name: str(o, 'name', p),
        type: type as CheckpointType,
        creationTime: str(o, 'creationTime', p),
        parentId: o.parentId === null ? null : guid(o, 'parentId', p),
        drives: drives.map((y, j) => {
          const q = `${p}drives[${j}].`;
          const d = obj(y, q);
          return {
            controllerNumber: int(d, 'controllerNumber', q, 0, 3),
            controllerLocation: int(d, 'controllerLocation', q, 0, 63),
            path: str(d, 'path', q),
          };
        }),
      };
    });
    const ids = new Set<string>();
    const names = new Set<string>();
    list.forEach((x, i) => {
      if (ids.has(x.id)) bad(`checkpoints.list[${i}].id`, 'unique among the checkpoints');
      if (names.has(x.name)) bad(`checkpoints.list[${i}].name`, 'unique among the checkpoints');
      ids.add(x.id);
      names.add(x.name);
    });
    const parentOf = new Map(list.map((x) => [x.id, x.parentId]));
    list.forEach((x, i) => {
      if (x.parentId !== null && !ids.has(x.parentId))
        bad(`checkpoints.list[${i}].parentId`, 'null or the id of another listed checkpoint');
      // A tree: following parents from any checkpoint reaches null within list.length steps.
      let at: string | null | undefined = x.parentId;
      for (let n = 0; at != null; n++) {
        if (n >= list.length || at === x.id) bad(`checkpoints.list[${i}].parentId`, 'not part of a cycle');
        at = parentOf.get(at);
      }
    });
    const current = c.current === null ? null : guid(c, 'current', 'checkpoints.');
    if (current !== null && !ids.has(current))
      bad('checkpoints.current', 'null or the id of a listed checkpoint');
    return { current, list };
  };
  const root = obj(doc, '(root)');
  if (root.schema !== VM_CONFIG_SCHEMA) bad('schema', `${VM_CONFIG_SCHEMA}`);
  const name = str(root, 'name', '');
  if (!NAME.test(name)) bad('name', 'a VM name (letters, digits, space, . _ -; at most 100)');
  const id = str(root, 'id', '');
  try {
    Guid.parse(id);
  } catch {
    bad('id', 'a GUID');
  }
  const generation = int(root, 'generation', '', 1, 2) as 1 | 2;
  const hardDrives = arr(root, 'hardDrives').map((x, i): HardDriveConfig => {
    const p = `hardDrives[${i}].`;
    const d = obj(x, p);
    const controllerType = str(d, 'controllerType', p);
    if (controllerType !== 'SCSI' && controllerType !== 'IDE') bad(`${p}controllerType`, "'SCSI' or 'IDE'");
    const vhdType = str(d, 'vhdType', p);
    if (vhdType !== 'Dynamic' && vhdType !== 'Fixed') bad(`${p}vhdType`, "'Dynamic' or 'Fixed'");
    return {
      path: str(d, 'path', p),
      controllerType: controllerType as 'SCSI' | 'IDE',
      controllerNumber: int(d, 'controllerNumber', p, 0, 3),
      controllerLocation: int(d, 'controllerLocation', p, 0, 63),
      sizeBytes: int(d, 'sizeBytes', p, 0, Number.MAX_SAFE_INTEGER),
      vhdType: vhdType as 'Dynamic' | 'Fixed',
    };
  });
  const networkAdapters = arr(root, 'networkAdapters').map((x, i): NetworkAdapterConfig => {
    const p = `networkAdapters[${i}].`;
    const n = obj(x, p);
    const macAddress = str(n, 'macAddress', p);
    if (!/^[0-9A-F]{12}$/.test(macAddress)) bad(`${p}macAddress`, '12 upper-case hex digits');
    return { name: str(n, 'name', p), switchName: str(n, 'switchName', p), macAddress };
  });
  const isObj = obj(root.integrationServices, 'integrationServices');
  const integrationServices = {} as Record<IntegrationServiceName, boolean>;
  for (const s of INTEGRATION_SERVICES) {
    const v = isObj[s.name];
    integrationServices[s.name] =
      v === undefined
        ? true
        : typeof v === 'boolean'
          ? v
          : bad(`integrationServices.${s.name}`, 'true or false');
  }
  const fc =
    root.fibreChannelAdapters === undefined
      ? undefined
      : arr(root, 'fibreChannelAdapters').map((x, i): FibreChannelAdapterConfig => {
          const p = `fibreChannelAdapters[${i}].`;
          const a = obj(x, p);
          const wwn = (k: string) => {
            const v = str(a, k, p);
            return /^[0-9A-F]{16}$/.test(v) ? v : bad(p + k, '16 upper-case hex digits');
          };
          return {
            sanName: str(a, 'sanName', p),
            wwnnA: wwn('wwnnA'),
            wwpnA: wwn('wwpnA'),
            wwnnB: wwn('wwnnB'),
            wwpnB: wwn('wwpnB'),
          };
        });
  if (fc && fc.length > 4) bad('fibreChannelAdapters', 'at most 4 adapters');
  const checkpoints =
    root.checkpoints === undefined ? undefined : parseCheckpoints(obj(root.checkpoints, 'checkpoints'));
  return {
    ...(fc ? { fibreChannelAdapters: fc } : {}),
    ...(checkpoints ? { checkpoints } : {}),
    schema: VM_CONFIG_SCHEMA,
    name,
    id,
    generation,
    processorCount: int(root, 'processorCount', '', 1, 240),
    memoryStartupBytes: int(root, 'memoryStartupBytes', '', 32 * 1024 ** 2, Number.MAX_SAFE_INTEGER),
    hardDrives,
    networkAdapters,
    integrationServices,
    creationTime: str(root, 'creationTime', ''),
  };
}
