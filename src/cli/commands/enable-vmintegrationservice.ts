/** `hvis enable-vmintegrationservice [-Name] <String[]> -VMName <String[]>` — Enable-VMIntegrationService. */
import { toggleCommand } from './vm-integration-service-toggle.ts';

export const enableVmIntegrationServiceCommand = toggleCommand('enable');
