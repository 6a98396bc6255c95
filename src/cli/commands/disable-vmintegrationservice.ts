/** `hvis disable-vmintegrationservice [-Name] <String[]> -VMName <String[]>` — Disable-VMIntegrationService. */
import { toggleCommand } from './vm-integration-service-toggle.ts';

export const disableVmIntegrationServiceCommand = toggleCommand('disable');
