/**
 * The integration services a VM lists, as Hyper-V names them (`Get-VMIntegrationService`), with the VMBus
 * class GUID of each service's channel (vmbus-core-ics.md §8; Linux `drivers/hv/channel_mgmt.c` vmbus_devs).
 * `implemented: false` services are listed, configurable and persisted, but no channel is offered for them
 * until their device exists; their status says so instead of pretending.
 */

export type IntegrationServiceName =
  | 'Heartbeat'
  | 'Shutdown'
  | 'Time Synchronization'
  | 'Key-Value Pair Exchange'
  | 'VSS'
  | 'Guest Service Interface';

export interface IntegrationServiceSpec {
  /** Hyper-V display name (Get-VMIntegrationService `Name`). */
  name: IntegrationServiceName;
  /** Name of the Windows service inside a guest (learn.microsoft.com, integration-services reference). */
  windowsService: string;
  /** VMBus class (interface type) GUID of the channel. */
  classId: string;
  /** True when hvis offers this channel today. */
  implemented: boolean;
}

/** In Get-VMIntegrationService's order (alphabetical, as Hyper-V lists them). */
export const INTEGRATION_SERVICES: readonly IntegrationServiceSpec[] = [
  {
    name: 'Guest Service Interface',
    windowsService: 'vmicguestinterface',
    classId: '34d14be3-dee4-41c8-9ae7-6b174977c192',
    implemented: true,
  },
  {
    name: 'Heartbeat',
    windowsService: 'vmicheartbeat',
    classId: '57164f39-9115-4e78-ab55-382f3bd5422d',
    implemented: true,
  },
  {
    name: 'Key-Value Pair Exchange',
    windowsService: 'vmickvpexchange',
    classId: 'a9a0f4e7-5a45-4d96-b827-8a841e8c03e6',
    implemented: true,
  },
  {
    name: 'Shutdown',
    windowsService: 'vmicshutdown',
    classId: '0e0b6031-5213-4934-818b-38d90ced39db',
    implemented: true,
  },
  {
    name: 'Time Synchronization',
    windowsService: 'vmictimesync',
    classId: '9527e630-d0ae-497b-adce-e80ab0175caf',
    implemented: true,
  },
  {
    name: 'VSS',
    windowsService: 'vmicvss',
    classId: '35fa2e29-ea23-4236-96ae-3a6ebacba440',
    implemented: true,
  },
];

/**
 * Finds a service by its display name, case-insensitively (PowerShell binds names that way).
 * @returns undefined when no service has that name.
 */
export function findIntegrationService(name: string): IntegrationServiceSpec | undefined {
  const n = name.toLowerCase();
  return INTEGRATION_SERVICES.find((s) => s.name.toLowerCase() === n);
}

/** The names, for error messages. */
export function integrationServiceNames(): string {
  return INTEGRATION_SERVICES.map((s) => `'${s.name}'`).join(', ');
}
