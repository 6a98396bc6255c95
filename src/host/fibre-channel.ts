/**
 * Add-/Get-/Remove-VMFibreChannelHba: virtual Fibre Channel adapters (VMBus class HV_SYNTHFC_GUID, the
 * VSTOR protocol plus FCHBA_DATA, devices.md B.13). Each HBA has WWNN/WWPN set A (set B is kept for the
 * cmdlet's shape; the guest uses set A as the primary pair). hvis has no virtual SAN, so an HBA carries no
 * LUNs: the guest sees the adapter and its WWNs. The list is part of the VM configuration
 * (`fibreChannelAdapters`, written atomically with it; a list left in the old side file
 * `<home>/fibrechannel/<vm id>.json` is read until the next change moves it) and offered when the VM starts,
 * or hot added to a running VM.
 */

import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { HvError } from '../protocol/errors.ts';
import { hvisHome } from './home.ts';
import type { VmStorage } from './storage.ts';
import type { Vm } from './vm.ts';
import type { VmConfig } from './vm-config.ts';

/** One Get-VMFibreChannelHba object (WWNs as 16 hex digits, as the cmdlet prints them). */
export interface FibreChannelHbaView {
  VMName: string;
  SanName: string;
  WorldWideNodeNameSetA: string;
  WorldWidePortNameSetA: string;
  WorldWideNodeNameSetB: string;
  WorldWidePortNameSetB: string;
}

type Stored = Omit<FibreChannelHbaView, 'VMName'>;

/** Hyper-V's default WWNN (Hyper-V Manager "World Wide Names" defaults) and WWPN prefix C0:03:FF. */
const DEFAULT_WWNN = 'C003FF0000FFFF00';
const WWN = /^[0-9A-F]{16}$/;

/** Where hvis kept the list before it moved into the VM configuration (read once, then removed). */
function legacyFile(home: string, cfg: VmConfig): string {
  return join(home, 'fibrechannel', `${cfg.id}.json`);
}

function load(home: string, cfg: VmConfig): Stored[] {
  if (cfg.fibreChannelAdapters)
    return cfg.fibreChannelAdapters.map((a) => ({
      SanName: a.sanName,
      WorldWideNodeNameSetA: a.wwnnA,
      WorldWidePortNameSetA: a.wwpnA,
      WorldWideNodeNameSetB: a.wwnnB,
      WorldWidePortNameSetB: a.wwpnB,
    }));
  const p = legacyFile(home, cfg);
  if (!existsSync(p)) return [];
  try {
    const v = JSON.parse(readFileSync(p, 'utf8')) as Stored[];
    if (
      !Array.isArray(v) ||
      !v.every((h) => WWN.test(h.WorldWideNodeNameSetA) && WWN.test(h.WorldWidePortNameSetA))
    )
      throw new Error('bad entries');
    return v;
  } catch (e) {
    throw new HvError(
      'HV_ERR_CORRUPT',
      `${p}: Fibre Channel adapter list is damaged (${(e as Error).message})`,
    );
  }
}

function wwnBytes(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g)!.map((b) => Number.parseInt(b, 16)));
}

function randomWwpn(): string {
  return `C003FF${randomBytes(5).toString('hex').toUpperCase()}`;
}

/** Offers the VM's stored HBAs on a starting session (index = position in the list). */
export function offerFibreChannelHbas(storage: VmStorage, cfg: VmConfig, home = hvisHome()): void {
  load(home, cfg).forEach((h, i) => {
    storage.addFibreChannel(i, wwnBytes(h.WorldWidePortNameSetA), wwnBytes(h.WorldWideNodeNameSetA));
  });
}

export function getVmFibreChannelHbas(home: string, vm: Vm): FibreChannelHbaView[] {
  return load(home, vm.config).map((h) => ({ VMName: vm.name, ...h }));
}

/**
 * Add-VMFibreChannelHba -SanName [-WorldWideNodeNameSetA -WorldWidePortNameSetA] (generated when absent).
 * @throws HvError HV_ERR_INVALID_ARGUMENT for a WWN that is not 16 hex digits or an empty SAN name.
 */
export async function addVmFibreChannelHba(
  home: string,
  vm: Vm,
  o: { sanName: string; wwnn?: string; wwpn?: string },
): Promise<FibreChannelHbaView> {
  const wwnn = (o.wwnn ?? DEFAULT_WWNN).toUpperCase();
  const wwpn = (o.wwpn ?? randomWwpn()).toUpperCase();
  for (const [what, v] of [
    ['-WorldWideNodeNameSetA', wwnn],
    ['-WorldWidePortNameSetA', wwpn],
  ] as const)
    if (!WWN.test(v))
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `${what} '${v}' must be 16 hexadecimal digits, e.g. C003FF0000FFFF00`,
      );
  if (!o.sanName.trim()) throw new HvError('HV_ERR_INVALID_ARGUMENT', '-SanName must name the virtual SAN');
  const list = load(home, vm.config);
  if (list.length >= 4)
    throw new HvError(
      'HV_ERR_INVALID_STATE',
      `VM '${vm.name}' already has 4 virtual Fibre Channel adapters (Hyper-V's maximum)`,
    );
  const hba: Stored = {
    SanName: o.sanName,
    WorldWideNodeNameSetA: wwnn,
    WorldWidePortNameSetA: wwpn,
    WorldWideNodeNameSetB: wwnn,
    WorldWidePortNameSetB: randomWwpn(),
  };
  list.push(hba);
  await vm.updateConfig(async (cfg) => ({
    ...cfg,
    fibreChannelAdapters: list.map((h) => ({
      sanName: h.SanName,
      wwnnA: h.WorldWideNodeNameSetA,
      wwpnA: h.WorldWidePortNameSetA,
      wwnnB: h.WorldWideNodeNameSetB,
      wwpnB: h.WorldWidePortNameSetB,
    })),
  }));
  rmSync(legacyFile(home, vm.config), { force: true });
  vm.session?.storage?.addFibreChannel(list.length - 1, wwnBytes(wwpn), wwnBytes(wwnn));
  return { VMName: vm.name, ...hba };
}
