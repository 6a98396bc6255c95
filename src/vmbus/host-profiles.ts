/**
 * Host version profiles: which VMBus protocol versions, and which utility-IC versions, an emulated host of
 * a given Windows Server release offers.
 *
 * VMBus: a host accepts every version it knows up to its maximum, by exact match only (OpenVMM
 * vmbus_server channels.rs; Linux connection.c walks down its list until one is accepted). The maximum per
 * release follows the version table in vmbus-core-ics.md §1.1 (Linux hyperv.h comments name each
 * version's host: WIN7 = WS2008R2, WIN8 = WS2012, WIN8_1 = WS2012R2, WIN10 = WS2016, 5.2 = RS5 = WS2019,
 * 5.3 = Iron = WS2022). WS2025's maximum is UNVERIFIED: no source names it; we use 5.3, and 6.0 only when a
 * profile is built with `copper: true` (OpenVMM's optional "Copper").
 *
 * IC versions are what the host lists in its ICMSGTYPE_NEGOTIATE (ascending, as OpenVMM hyperv_ic
 * common.rs sends). Version values are `major << 16 | minor` like Linux's in-memory form. Sources per IC:
 * Linux drivers/hv/hv_kvp.c (WS2008_SRV_VERSION 1.0, WIN7_SRV_VERSION 3.0, WIN8_SRV_VERSION 4.0),
 * hv_util.c (UTIL_WS2K8_FW_VERSION 1.0, UTIL_FW_VERSION 3.0; shutdown 1.0/3.0/3.1/3.2; timesync 1.0/3.0/4.0;
 * heartbeat 1.0/3.0), hv_snapshot.c (VSS 5.0), hv_fcopy.c (1.1); OpenVMM host ICs (shutdown 1.0–3.2,
 * timesync 4.0, KVP 3.0/4.0/5.0). Which release first offered timesync 4.0 (WS2016), shutdown 3.1/3.2
 * (WS2019 assumed) and VSS 5.0 (WS2012R2 assumed) is UNVERIFIED and marked so below; file copy
 * ("Guest services") appeared with WS2012R2.
 */
import { HvError } from '../protocol/errors.ts';
import {
  ALL_VMBUS_VERSIONS,
  VERSION_WIN7,
  VERSION_WIN8,
  VERSION_WIN8_1,
  VERSION_WIN10,
  VERSION_WIN10_V5_2,
  VERSION_WIN10_V5_3,
  VERSION_WIN10_V6_0,
} from '../protocol/vmbus/constants.ts';

export const HOST_PROFILE_NAMES = [
  'WS2008R2',
  'WS2012',
  'WS2012R2',
  'WS2016',
  'WS2019',
  'WS2022',
  'WS2025',
] as const;
export type HostProfileName = (typeof HOST_PROFILE_NAMES)[number];

/** The utility ICs whose versions a profile caps. */
export type IcName = 'heartbeat' | 'shutdown' | 'timesync' | 'kvp' | 'vss' | 'fcopy';

/** Versions a host offers for one IC, ascending, each `major << 16 | minor`. */
export interface IcOffer {
  framework: readonly number[];
  message: readonly number[];
}

export interface HostProfile {
  name: HostProfileName;
  /** Highest VMBus version accepted. */
  vmbusMaxVersion: number;
  /** Every VMBus version accepted (exact match), ascending. */
  vmbusVersions: readonly number[];
  /** Per IC: the versions the host offers, or null when that release has no such IC. */
  ics: Readonly<Record<IcName, IcOffer | null>>;
}

const v = (major: number, minor: number) => (major << 16) | minor;
const FW = [v(1, 0), v(3, 0)] as const;

function ics(opts: { ts: number[]; sd: number[]; kvp: number[]; vss: number[] | null; fcopy: boolean }) {
  return {
    heartbeat: { framework: FW, message: [v(1, 0), v(3, 0)] },
    shutdown: { framework: FW, message: opts.sd },
    timesync: { framework: FW, message: opts.ts },
    kvp: { framework: FW, message: opts.kvp },
    vss: opts.vss === null ? null : { framework: FW, message: opts.vss },
    fcopy: opts.fcopy ? { framework: FW, message: [v(1, 1)] } : null,
  };
}

const TS_PRE2016 = [v(1, 0), v(3, 0)];
const TS_2016 = [v(1, 0), v(3, 0), v(4, 0)]; // UNVERIFIED: timesync 4.0 first on WS2016
const SD_BASE = [v(1, 0), v(3, 0)];
const SD_2019 = [v(1, 0), v(3, 0), v(3, 1), v(3, 2)]; // UNVERIFIED: 3.1/3.2 first on WS2019
const KVP_WIN7 = [v(1, 0), v(3, 0)];
const KVP_WIN8 = [v(1, 0), v(3, 0), v(4, 0)];
const VSS = [v(5, 0)]; // UNVERIFIED: which release first spoke VSS 5.0; Linux knows only 5.0

const TABLE: Record<HostProfileName, { max: number; ics: HostProfile['ics'] }> = {
  WS2008R2: {
    max: VERSION_WIN7,
    ics: ics({ ts: TS_PRE2016, sd: SD_BASE, kvp: KVP_WIN7, vss: null, fcopy: false }),
  },
  WS2012: {
    max: VERSION_WIN8,
    ics: ics({ ts: TS_PRE2016, sd: SD_BASE, kvp: KVP_WIN8, vss: null, fcopy: false }),
  },
  WS2012R2: {
    max: VERSION_WIN8_1,
    ics: ics({ ts: TS_PRE2016, sd: SD_BASE, kvp: KVP_WIN8, vss: VSS, fcopy: true }),
  },
  WS2016: {
    max: VERSION_WIN10,
    ics: ics({ ts: TS_2016, sd: SD_BASE, kvp: KVP_WIN8, vss: VSS, fcopy: true }),
  },
  WS2019: {
    max: VERSION_WIN10_V5_2,
    ics: ics({ ts: TS_2016, sd: SD_2019, kvp: KVP_WIN8, vss: VSS, fcopy: true }),
  },
  WS2022: {
    max: VERSION_WIN10_V5_3,
    ics: ics({ ts: TS_2016, sd: SD_2019, kvp: KVP_WIN8, vss: VSS, fcopy: true }),
  },
  WS2025: {
    max: VERSION_WIN10_V5_3,
    ics: ics({ ts: TS_2016, sd: SD_2019, kvp: KVP_WIN8, vss: VSS, fcopy: true }),
  },
};

/**
 * The profile named `name` (case-insensitive). `copper` adds VMBus 6.0 to what the host accepts.
 * @throws HvError HV_ERR_INVALID_ARGUMENT for an unknown name, listing the valid ones.
 */
export function hostProfile(name: string, opts: { copper?: boolean } = {}): HostProfile {
  const key = HOST_PROFILE_NAMES.find((n) => n.toLowerCase() === name.trim().toLowerCase());
  if (key === undefined) {
    throw new HvError(
      'HV_ERR_INVALID_ARGUMENT',
      `unknown host profile '${name}' (expected one of ${HOST_PROFILE_NAMES.join(', ')})`,
    );
  }
  const row = TABLE[key];
  const max = opts.copper ? VERSION_WIN10_V6_0 : row.max;
  return {
    name: key,
    vmbusMaxVersion: max,
    vmbusVersions: ALL_VMBUS_VERSIONS.filter((x) => x <= max),
    ics: row.ics,
  };
}

/** Every profile, oldest first. */
export function allHostProfiles(): HostProfile[] {
  return HOST_PROFILE_NAMES.map((n) => hostProfile(n));
}
