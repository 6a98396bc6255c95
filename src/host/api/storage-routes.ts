/**
 * Storage routes (Get-/Add-/Remove-VMHardDiskDrive, online Resize-VHD of an attached image):
 *
 * | route | cmdlet |
 * |---|---|
 * | GET /vms/:name/hard-drives | Get-VMHardDiskDrive |
 * | POST /vms/:name/hard-drives `{path, controllerType?, controllerNumber?, controllerLocation?}` | Add-VMHardDiskDrive |
 * | POST /vms/:name/hard-drives/remove `{controllerNumber, controllerLocation}` | Remove-VMHardDiskDrive |
 * | POST /vms/:name/hard-drives/export `{controllerNumber, controllerLocation, stop?}` | ours: NBD export served by the guest |
 * | GET /vms/:name/checkpoints | Get-VMSnapshot |
 * | POST /vms/:name/checkpoints `{name?, snapshotType?}` | Checkpoint-VM |
 * | POST /vms/:name/checkpoints/restore `{name}` | Restore-VMSnapshot |
 * | POST /vms/:name/checkpoints/remove `{name}` | Remove-VMSnapshot |
 * | GET /vms/:name/fibre-channel | Get-VMFibreChannelHba |
 * | POST /vms/:name/fibre-channel `{sanName, wwnn?, wwpn?}` | Add-VMFibreChannelHba |
 * | POST /attached-vhd/resize `{path, sizeBytes}` | Resize-VHD of an image a running VM has open (404 when none) |
 */
import type { FastifyInstance } from 'fastify';
import { HvError } from '../../protocol/errors.ts';
import {
  checkpointVm,
  getVmSnapshots,
  removeVmSnapshot,
  restoreVmSnapshot,
  type SnapshotType,
} from '../checkpoints.ts';
import { addVmFibreChannelHba, getVmFibreChannelHbas } from '../fibre-channel.ts';
import type { Host } from '../host.ts';
import {
  type AddDriveRequest,
  addHardDiskDrive,
  exportHardDiskDrive,
  hardDiskDriveViews,
  removeHardDiskDrive,
  resizeAttachedImage,
} from '../vm-drives.ts';
import { API_PREFIX } from './routes.ts';

const nameParam = {
  type: 'object',
  properties: { name: { type: 'string', minLength: 1, maxLength: 256 } },
  required: ['name'],
} as const;
const u8 = { type: 'integer', minimum: 0, maximum: 255 } as const;

export function registerStorageRoutes(app: FastifyInstance, host: Host): void {
  app.get<{ Params: { name: string } }>(
    `${API_PREFIX}/vms/:name/hard-drives`,
    { schema: { params: nameParam } },
    async (req) => hardDiskDriveViews(host.vm(req.params.name)),
  );
  app.post<{ Params: { name: string }; Body: AddDriveRequest }>(
    `${API_PREFIX}/vms/:name/hard-drives`,
    {
      schema: {
        params: nameParam,
        body: {
          type: 'object',
          properties: {
            path: { type: 'string', minLength: 1, maxLength: 4096 },
            controllerType: { type: 'string', enum: ['SCSI', 'IDE'] },
            controllerNumber: u8,
            controllerLocation: u8,
          },
          required: ['path'],
          additionalProperties: false,
        },
      },
    },
    async (req) => addHardDiskDrive(host.vm(req.params.name), req.body),
  );
  app.post<{ Params: { name: string }; Body: { controllerNumber: number; controllerLocation: number } }>(
    `${API_PREFIX}/vms/:name/hard-drives/remove`,
    {
      schema: {
        params: nameParam,
        body: {
          type: 'object',
          properties: { controllerNumber: u8, controllerLocation: u8 },
          required: ['controllerNumber', 'controllerLocation'],
          additionalProperties: false,
        },
      },
    },
    async (req) =>
      removeHardDiskDrive(host.vm(req.params.name), req.body.controllerNumber, req.body.controllerLocation),
  );
  app.post<{
    Params: { name: string };
    Body: { controllerNumber: number; controllerLocation: number; stop?: boolean };
  }>(
    `${API_PREFIX}/vms/:name/hard-drives/export`,
    {
      schema: {
        params: nameParam,
        body: {
          type: 'object',
          properties: { controllerNumber: u8, controllerLocation: u8, stop: { type: 'boolean' } },
          required: ['controllerNumber', 'controllerLocation'],
          additionalProperties: false,
        },
      },
    },
    async (req) =>
      exportHardDiskDrive(
        host.vm(req.params.name),
        host.paths.home,
        req.body.controllerNumber,
        req.body.controllerLocation,
        req.body.stop === true,
      ),
  );
  app.get<{ Params: { name: string } }>(
    `${API_PREFIX}/vms/:name/fibre-channel`,
    { schema: { params: nameParam } },
    async (req) => getVmFibreChannelHbas(host.paths.home, host.vm(req.params.name)),
  );
  app.post<{ Params: { name: string }; Body: { sanName: string; wwnn?: string; wwpn?: string } }>(
    `${API_PREFIX}/vms/:name/fibre-channel`,
    {
      schema: {
        params: nameParam,
        body: {
          type: 'object',
          properties: {
            sanName: { type: 'string', minLength: 1, maxLength: 256 },
            wwnn: { type: 'string', maxLength: 32 },
            wwpn: { type: 'string', maxLength: 32 },
          },
          required: ['sanName'],
          additionalProperties: false,
        },
      },
    },
    async (req) => {
      const o: { sanName: string; wwnn?: string; wwpn?: string } = { sanName: req.body.sanName };
      if (req.body.wwnn !== undefined) o.wwnn = req.body.wwnn;
      if (req.body.wwpn !== undefined) o.wwpn = req.body.wwpn;
      return addVmFibreChannelHba(host.paths.home, host.vm(req.params.name), o);
    },
  );
  const snapName = { type: 'string', minLength: 1, maxLength: 256 } as const;
  app.get<{ Params: { name: string } }>(
    `${API_PREFIX}/vms/:name/checkpoints`,
    { schema: { params: nameParam } },
    async (req) => getVmSnapshots(host.paths.home, host.vm(req.params.name)),
  );
  app.post<{ Params: { name: string }; Body: { name?: string; snapshotType?: SnapshotType } }>(
    `${API_PREFIX}/vms/:name/checkpoints`,
    {
      schema: {
        params: nameParam,
        body: {
          type: 'object',
          properties: {
            name: snapName,
            snapshotType: { type: 'string', enum: ['Production', 'ProductionOnly', 'Standard'] },
          },
          additionalProperties: false,
        },
      },
    },
    async (req) => {
      const o: { name?: string; type?: SnapshotType } = {};
      if (req.body.name !== undefined) o.name = req.body.name;
      if (req.body.snapshotType !== undefined) o.type = req.body.snapshotType;
      return checkpointVm(host.paths.home, host.vm(req.params.name), o);
    },
  );
  for (const action of ['restore', 'remove'] as const) {
    app.post<{ Params: { name: string }; Body: { name: string } }>(
      `${API_PREFIX}/vms/:name/checkpoints/${action}`,
      {
        schema: {
          params: nameParam,
          body: {
            type: 'object',
            properties: { name: snapName },
            required: ['name'],
            additionalProperties: false,
          },
        },
      },
      async (req) => {
        const vm = host.vm(req.params.name);
        if (action === 'restore') return restoreVmSnapshot(host.paths.home, vm, req.body.name);
        await removeVmSnapshot(host.paths.home, vm, req.body.name);
        return {};
      },
    );
  }
  app.post<{ Body: { path: string; sizeBytes: number } }>(
    `${API_PREFIX}/attached-vhd/resize`,
    {
      schema: {
        body: {
          type: 'object',
          properties: {
            path: { type: 'string', minLength: 1, maxLength: 4096 },
            sizeBytes: { type: 'integer', minimum: 1 },
          },
          required: ['path', 'sizeBytes'],
          additionalProperties: false,
        },
      },
    },
    async (req) => {
      const info = await resizeAttachedImage(host.find(), req.body.path, req.body.sizeBytes);
      if (!info) throw new HvError('HV_ERR_NOT_FOUND', `${req.body.path} is not attached to a running VM`);
      return info;
    },
  );
}
