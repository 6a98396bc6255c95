/**
 * Checkpoint-VM / Get-VMSnapshot / Restore-VMSnapshot / Remove-VMSnapshot over the VM's virtual hard
 * disks, the way Hyper-V does it on disk: a checkpoint freezes each drive's current image and continues in
 * a new differencing child (`<name>_<checkpoint id>.avhdx` beside it); restoring starts a fresh child of the
 * checkpoint's frozen images (the discarded "Now" image is deleted); removing merges the VM's current image
 * into the frozen one when it continues directly from it (see {@link removeVmSnapshot}).
 *
 * Consistency: an Off VM is checkpointed directly. A running VM gets a Production checkpoint through the
 * guest's VSS freeze/thaw; a Standard one would need a saved memory state (not built), so it is refused
 * with HV_ERR_UNSUPPORTED rather than producing a checkpoint that is not what its type promises (see
 * {@link checkpointVm} for the Production / ProductionOnly fallback rules).
 * The checkpoint tree is part of the VM configuration (`checkpoints`), written atomically together with the
 * drive paths it changes, so a crash leaves both old or both new. A tree left in the old side file
 * `<home>/checkpoints/<vm id>.json` is read until the next checkpoint change moves it into the
 * configuration and removes the file.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { createDisk, openDisk } from '../disk/open.ts';
import { mergeDisk } from '../disk/ops/merge.ts';
import { HvError } from '../protocol/errors.ts';
import type { VmStorage } from './storage.ts';
import type { Vm } from './vm.ts';
import {
  type CheckpointConfig,
  type CheckpointTreeConfig,
  type CheckpointType,
  type HardDriveConfig,
  parseVmConfig,
  type VmConfig,
} from './vm-config.ts';

export type SnapshotType = CheckpointType;

/** One Get-VMSnapshot object (its property names; `HardDrives` is ours). */
export interface VmSnapshotView {
  VMName: string;
  Name: string;
  Id: string;
  SnapshotType: SnapshotType;
  CreationTime: string;
  ParentSnapshotId: string | null;
  ParentSnapshotName: string | null;
  IsCurrent: boolean;
  HardDrives: { ControllerNumber: number; ControllerLocation: number; Path: string }[];
}

/** Where hvis kept the tree before it moved into the VM configuration (`{schema: 1, current, checkpoints}`). */
function legacyFile(home: string, cfg: VmConfig): string {
  return join(home, 'checkpoints', `${cfg.id}.json`);
}

/**
 * The VM's checkpoint tree, a copy the caller may change: from the configuration, else from the old side
 * file (validated as the configuration field is), else empty.
 * @throws HvError HV_ERR_CORRUPT for a damaged side file.
 */
function load(home: string, cfg: VmConfig): CheckpointTreeConfig {
  if (cfg.checkpoints) return structuredClone(cfg.checkpoints);
  const p = legacyFile(home, cfg);
  if (!existsSync(p)) return { current: null, list: [] };
  let old: { schema?: unknown; current?: unknown; checkpoints?: unknown };
  try {
    old = JSON.parse(readFileSync(p, 'utf8')) as typeof old;
  } catch (e) {
    throw new HvError('HV_ERR_CORRUPT', `${p}: checkpoint list is damaged (${(e as Error).message})`);
  }
  if (typeof old !== 'object' || old === null || old.schema !== 1)
    throw new HvError('HV_ERR_CORRUPT', `${p}: checkpoint list is damaged (schema must be 1)`);
  const tree = { current: old.current, list: old.checkpoints };
  return parseVmConfig({ ...cfg, checkpoints: tree }, p).checkpoints!;
}

/** `cfg` with `tree` in it; once that is saved the old side file is stale ({@link dropLegacy}). */
function withTree(cfg: VmConfig, tree: CheckpointTreeConfig): VmConfig {
  return { ...cfg, checkpoints: tree };
}

function dropLegacy(home: string, vm: Vm): void {
  rmSync(legacyFile(home, vm.config), { force: true });
}

function requireOff(vm: Vm, what: string): void {
  if (vm.session)
    throw new HvError(
      'HV_ERR_INVALID_STATE',
      `cannot ${what} of running VM '${vm.name}': stop the VM first (hvis stop-vm ${vm.name})`,
    );
}

function childPathFor(image: string, id: string): string {
  const ext = extname(image).toLowerCase();
  const stem = basename(image, extname(image)).replace(/_[0-9a-f-]{36}$/, '');
  return join(dirname(image), `${stem}_${id}${ext === '.vhd' || ext === '.avhd' ? '.avhd' : '.avhdx'}`);
}

async function newChild(parent: string, id: string): Promise<string> {
  const child = childPathFor(parent, id);
  const p = await openDisk(parent, { readOnly: true });
  const format = p.format;
  await p.close();
  if (format === 'Raw')
    throw new HvError('HV_ERR_UNSUPPORTED', `${parent} is a raw image: checkpoints need VHD or VHDX`);
  await (await createDisk(child, { type: 'differencing', parentPath: parent, format })).close();
  return child;
}

function views(vm: Vm, f: CheckpointTreeConfig): VmSnapshotView[] {
  const byId = new Map(f.list.map((c) => [c.id, c]));
  return f.list.map((c) => ({
    VMName: vm.name,
    Name: c.name,
    Id: c.id,
    SnapshotType: c.type,
    CreationTime: c.creationTime,
    ParentSnapshotId: c.parentId,
    ParentSnapshotName: c.parentId ? (byId.get(c.parentId)?.name ?? null) : null,
    IsCurrent: f.current === c.id,
    HardDrives: c.drives.map((d) => ({
      ControllerNumber: d.controllerNumber,
      ControllerLocation: d.controllerLocation,
      Path: d.path,
    })),
  }));
}

export function getVmSnapshots(home: string, vm: Vm): VmSnapshotView[] {
  return views(vm, load(home, vm.config));
}

function find(vm: Vm, f: CheckpointTreeConfig, name: string): CheckpointConfig {
  const c = f.list.find((x) => x.name === name || x.id === name);
  if (!c) throw new HvError('HV_ERR_NOT_FOUND', `VM '${vm.name}' has no checkpoint named '${name}'`);
  return c;
}

/** The guest's VSS freeze/thaw (host requestor of the VSS integration service), for production checkpoints. */
export interface GuestQuiesce {
  freeze(): Promise<void>;
  thaw(): Promise<void>;
}

/** The running VM's own VSS requestor (Vm.vssFreeze / Vm.vssThaw). */
export function vmQuiesce(vm: Vm): GuestQuiesce {
  return { freeze: () => vm.vssFreeze(), thaw: () => vm.vssThaw() };
}

/**
 * Which checkpoint a running VM gets, after Set-VM -CheckpointType: `Production` uses the guest's VSS
 * freeze and falls back to Standard when the guest cannot take part; `ProductionOnly` fails instead;
 * `Standard` is a saved memory state plus the disks. hvis saves no memory state, so Standard on a
 * running VM — asked for, or as Production's fallback — is refused with HV_ERR_UNSUPPORTED naming why.
 */
async function freezeFor(vm: Vm, type: SnapshotType, quiesce: GuestQuiesce): Promise<void> {
  const standard = (why: string) =>
    new HvError(
      'HV_ERR_UNSUPPORTED',
      `cannot take a ${type === 'Standard' ? 'Standard' : 'Production'} checkpoint of running VM '${vm.name}': ${why}; a Standard checkpoint of a running VM needs a saved memory state, which hvis cannot take yet — stop the VM (hvis stop-vm ${vm.name}) and try again`,
    );
  if (type === 'Standard') throw standard('Standard checkpoints were asked for');
  try {
    await quiesce.freeze();
  } catch (e) {
    const why = `the guest could not freeze its filesystems through VSS (${(e as Error).message})`;
    if (type === 'ProductionOnly')
      throw new HvError(
        'HV_ERR_INVALID_STATE',
        `cannot take a ProductionOnly checkpoint of VM '${vm.name}': ${why}; enable the VSS integration service and run hv_vss_daemon in the guest, or use -SnapshotType Production to allow a Standard checkpoint instead`,
      );
    throw standard(`${why}, so Production falls back to Standard`);
  }
}

/**
 * Checkpoint-VM. An Off VM: a differencing child for each drive. A running VM (Production or
 * ProductionOnly, see {@link freezeFor}): VSS freeze in the guest → each drive continues in its child
 * without the guest noticing (VmStorage.continueInChild) → thaw, always, also on failure. If a drive fails
 * part-way, the drives already moved are merged back into their parents (nothing the guest wrote is lost),
 * new child files are deleted and the configuration is left as it was: disks and configuration agree.
 * `quiesce` defaults to the VM's own VSS requestor ({@link vmQuiesce}).
 * @throws HvError HV_ERR_UNSUPPORTED (Standard on a running VM, or Production without VSS; raw images),
 *   HV_ERR_INVALID_STATE (ProductionOnly without VSS), HV_ERR_ALREADY_EXISTS for a taken name; the disk
 *   library's errors (after the rollback).
 */
export async function checkpointVm(
  home: string,
  vm: Vm,
  o: { name?: string; type?: SnapshotType; quiesce?: GuestQuiesce },
): Promise<VmSnapshotView> {
  const id = randomUUID();
  const type = o.type ?? 'Production';
  const name = o.name ?? `${vm.name} - (${new Date().toISOString().replace('T', ' ').slice(0, 19)})`;
  const cfg = await vm.updateConfig(async (cfg, session) => {
    const f = load(home, cfg);
    if (f.list.some((c) => c.name === name))
      throw new HvError('HV_ERR_ALREADY_EXISTS', `VM '${vm.name}' already has a checkpoint named '${name}'`);
    const live = session?.storage;
    const quiesce = live ? (o.quiesce ?? vmQuiesce(vm)) : null;
    for (const d of live ? cfg.hardDrives : [])
      if (live?.diskForPath(d.path)?.format === 'Raw')
        throw new HvError('HV_ERR_UNSUPPORTED', `${d.path} is a raw image: checkpoints need VHD or VHDX`);
    if (quiesce) await freezeFor(vm, type, quiesce);
    const moved: { d: HardDriveConfig; child: string }[] = [];
    try {
      for (const d of cfg.hardDrives) {
        let child: string;
        if (live) {
          child = childPathFor(d.path, id);
          await live.continueInChild(d.controllerNumber, d.controllerLocation, child);
        } else child = await newChild(d.path, id);
        moved.push({ d, child });
      }
    } catch (e) {
      await rollBack(vm, moved, live);
      throw e;
    } finally {
      if (quiesce) await quiesce.thaw();
    }
    f.list.push({
      id,
      name,
      type,
      creationTime: new Date().toISOString(),
      parentId: f.current,
      drives: moved.map(({ d }) => ({
        controllerNumber: d.controllerNumber,
        controllerLocation: d.controllerLocation,
        path: d.path,
      })),
    });
    f.current = id;
    return withTree({ ...cfg, hardDrives: moved.map(({ d, child }) => ({ ...d, path: child })) }, f);
  });
  dropLegacy(home, vm);
  return views(vm, cfg.checkpoints!).find((v) => v.Id === id)!;
}

/**
 * Undoes the drives a failed checkpoint already moved: a running drive goes back onto its parent with what
 * the guest wrote meanwhile merged in (VmStorage.returnToParent); an offline child is just deleted. A
 * drive that cannot be rolled back is logged by name (its child stays, still readable through the parent).
 */
async function rollBack(
  vm: Vm,
  moved: { d: HardDriveConfig; child: string }[],
  live: VmStorage | undefined,
): Promise<void> {
  for (const { d, child } of moved.reverse()) {
    try {
      if (live) await live.returnToParent(d.controllerNumber, d.controllerLocation, d.path);
      else rmSync(child, { force: true });
    } catch (e) {
      vm.log(`checkpoint rollback of ${child} onto ${d.path} failed: ${(e as Error).message}`);
    }
  }
}

/** Every image path a checkpoint or the VM itself still uses. */
function referenced(f: CheckpointTreeConfig, cfg: VmConfig): Set<string> {
  const s = new Set<string>();
  for (const c of f.list) for (const d of c.drives) s.add(resolve(d.path));
  for (const d of cfg.hardDrives) s.add(resolve(d.path));
  return s;
}

/** Restore-VMSnapshot: the VM continues from the checkpoint; its current state is discarded. */
export async function restoreVmSnapshot(home: string, vm: Vm, name: string): Promise<VmSnapshotView> {
  requireOff(vm, 'restore a checkpoint');
  const discarded = vm.config.hardDrives.map((d) => d.path);
  const cfg = await vm.updateConfig(async (cur) => {
    const f = load(home, cur);
    const c = find(vm, f, name);
    f.current = c.id;
    const drives = [];
    for (const d of c.drives) {
      const base = cur.hardDrives.find(
        (x) => x.controllerNumber === d.controllerNumber && x.controllerLocation === d.controllerLocation,
      );
      if (!base) continue;
      drives.push({ ...base, path: await newChild(d.path, randomUUID()) });
    }
    return withTree({ ...cur, hardDrives: drives }, f);
  });
  dropLegacy(home, vm);
  const f = cfg.checkpoints!;
  const keep = referenced(f, cfg);
  for (const p of discarded) if (!keep.has(resolve(p))) rmSync(p, { force: true });
  return views(vm, f).find((v) => v.Id === f.current)!;
}

/**
 * Remove-VMSnapshot: forgets the checkpoint. Where the VM's current image continues directly from the
 * checkpoint's frozen image, that image is merged into the frozen one (Merge-VHD) and the VM uses the
 * result, reclaiming the space. A checkpoint whose frozen image later checkpoints (or other branches) build
 * on is refused with HV_ERR_UNSUPPORTED naming them: merging it would need its children re-parented, which
 * hvis cannot do yet; remove the later checkpoints first. Nothing is changed when it refuses.
 * @throws HvError HV_ERR_INVALID_STATE on a running VM, HV_ERR_NOT_FOUND for an unknown name,
 *   HV_ERR_UNSUPPORTED as above.
 */
export async function removeVmSnapshot(home: string, vm: Vm, name: string): Promise<void> {
  requireOff(vm, 'remove a checkpoint');
  const f = load(home, vm.config);
  const c = find(vm, f, name);
  const parentOf = new Map<string, string | null>();
  for (const u of referenced(f, vm.config)) {
    if (!existsSync(u)) continue;
    const img = await openDisk(u, { readOnly: true });
    const info = await img.info();
    await img.close();
    parentOf.set(u, info.ParentPath ? resolve(info.ParentPath) : null);
  }
  const current = new Set(vm.config.hardDrives.map((h) => resolve(h.path)));
  const stillFrozen = new Set(
    f.list.filter((x) => x !== c).flatMap((x) => x.drives.map((d) => resolve(d.path))),
  );
  const merges: { child: string; frozen: string; path: string }[] = [];
  for (const d of c.drives) {
    const frozen = resolve(d.path);
    if (stillFrozen.has(frozen)) continue;
    const children = [...parentOf].filter(([, p]) => p === frozen).map(([u]) => u);
    const child = children[0];
    if (children.length === 1 && child && current.has(child)) {
      merges.push({ child, frozen, path: d.path });
      continue;
    }
    if (children.length === 0) continue;
    const later = f.list
      .filter((x) => x.drives.some((y) => children.includes(resolve(y.path))))
      .map((x) => `'${x.name}'`);
    throw new HvError(
      'HV_ERR_UNSUPPORTED',
      `cannot remove checkpoint '${c.name}' of VM '${vm.name}': ${later.length ? `checkpoint(s) ${later.join(', ')} build on its disk ${d.path}` : `${children.length} images build on its disk ${d.path}`}, and merging it would need them re-parented, which hvis cannot do yet; remove the later checkpoints first`,
    );
  }
  for (const { child, frozen } of merges) await mergeDisk(child, frozen);
  // The merged children are gone: the drives and the tree change in one configuration write.
  await vm.updateConfig(async (cfg) => {
    const t = load(home, cfg);
    for (const o of t.list) if (o.parentId === c.id) o.parentId = c.parentId;
    if (t.current === c.id) t.current = c.parentId;
    t.list = t.list.filter((x) => x.id !== c.id);
    const merged = new Map(merges.map((m) => [m.child, m.path]));
    const hardDrives = cfg.hardDrives.map((h) => {
      const path = merged.get(resolve(h.path));
      return path === undefined ? h : { ...h, path };
    });
    return withTree({ ...cfg, hardDrives }, t);
  });
  dropLegacy(home, vm);
}
