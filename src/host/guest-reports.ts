/**
 * Messages a guest worker sends its host over the worker's port, validated here because the guest is
 * untrusted: anything malformed is ignored (and counted), never trusted or thrown out of the host.
 *
 * | type | meaning |
 * |---|---|
 * | `connected` `{version}` | the guest kernel finished the VMBus handshake (VERSION_RESPONSE accepted) |
 * | `devices` `{devices: LsvmbusEntry[]}` | the guest's current view of the bus (after each offer/rescind) |
 * | `clock` `{offsetMs}` | the guest clock minus host time, ms, after time sync set it |
 * | `poweroff` `{reason}` | the guest OS is powering off on purpose (shutdown IC, or its own choice) |
 * | `fatal` `{message}` | the guest kernel hit an error it cannot continue from |
 * | `disks` `{disks}` | the disks the guest's storvsc found (controller instance, LUN, size, vendor, product) |
 */
import { type GuestDiskEntry, parseGuestDisks } from './storage.ts';
import type { LsvmbusEntry } from './vm-view.ts';

export type GuestReport =
  | { type: 'connected'; version: number }
  | { type: 'devices'; devices: LsvmbusEntry[] }
  | { type: 'clock'; offsetMs: number }
  | { type: 'poweroff'; reason: string }
  | { type: 'fatal'; message: string }
  | { type: 'disks'; disks: GuestDiskEntry[] };

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** More channels than a VMBus relid space holds is nonsense from the guest. */
const MAX_DEVICES = 2048;

const shortText = (v: unknown, max = 200): v is string => typeof v === 'string' && v.length <= max;

function entry(v: unknown): LsvmbusEntry | null {
  if (typeof v !== 'object' || v === null) return null;
  const e = v as Record<string, unknown>;
  if (!Number.isInteger(e.VMBusId) || (e.VMBusId as number) < 0 || (e.VMBusId as number) > 0xffffffff)
    return null;
  if (!shortText(e.ClassId) || !GUID.test(e.ClassId) || !shortText(e.DeviceId) || !GUID.test(e.DeviceId))
    return null;
  if (!shortText(e.Description)) return null;
  if (e.Driver !== null && !shortText(e.Driver, 64)) return null;
  return {
    VMBusId: e.VMBusId as number,
    ClassId: e.ClassId,
    DeviceId: e.DeviceId,
    Description: e.Description,
    Driver: e.Driver as string | null,
  };
}

/** Validates one message from a guest worker; null when it is not a well-formed report. */
export function parseGuestReport(v: unknown): GuestReport | null {
  if (typeof v !== 'object' || v === null) return null;
  const m = v as Record<string, unknown>;
  switch (m.type) {
    case 'connected':
      return Number.isInteger(m.version) && (m.version as number) >= 0 && (m.version as number) <= 0xffffffff
        ? { type: 'connected', version: m.version as number }
        : null;
    case 'devices': {
      if (!Array.isArray(m.devices) || m.devices.length > MAX_DEVICES) return null;
      const devices: LsvmbusEntry[] = [];
      for (const d of m.devices) {
        const e = entry(d);
        if (e === null) return null;
        devices.push(e);
      }
      return { type: 'devices', devices };
    }
    case 'clock':
      return typeof m.offsetMs === 'number' && Number.isFinite(m.offsetMs)
        ? { type: 'clock', offsetMs: m.offsetMs }
        : null;
    case 'poweroff':
      return shortText(m.reason) ? { type: 'poweroff', reason: m.reason } : null;
    case 'disks': {
      const disks = parseGuestDisks(m.disks);
      return disks ? { type: 'disks', disks } : null;
    }
    case 'fatal':
      return shortText(m.message, 2000) ? { type: 'fatal', message: m.message } : null;
    default:
      return null;
  }
}
