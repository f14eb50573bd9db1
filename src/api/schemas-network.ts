/**
 * The zod schemas of the network routes: as in src/api/schemas.ts, the request schemas validate and the
 * same objects generate the OpenAPI document. zod checks the shape (types, lengths, unknown fields); what
 * a network means (a well-formed subnet, the gateway and range inside it, libvirt's per-mode rules,
 * overlaps) is checked by src/networks/validate.ts, so every problem is reported at once, each with its
 * field.
 */
import { z } from 'zod';
import {
  NETWORK_DESCRIPTION_MAX,
  NETWORK_MODES,
  NETWORK_NAME_MAX,
  STATIC_HOSTS_MAX,
} from '../networks/validate';
import { displayName, OperationSchema } from './schemas';

const uuid = () => z.uuid();
const isoDate = z.string().openapi({ format: 'date-time' });
const ipv4 = (description: string) => z.string().max(39).openapi({ description, example: '10.20.0.1' });
const rate = z
  .number()
  .openapi({ description: 'KiB/s (average, peak) or KiB (burst): an integer from 1 to 4294967295' });

/** Network statuses. */
export const NETWORK_STATUSES = ['creating', 'active', 'updating', 'deleting', 'failed'] as const;

/** A static DHCP lease: a MAC address always gets this IP address. */
export const StaticHostSchema = z
  .strictObject({
    mac: z.string().max(17).openapi({ example: '52:54:00:12:34:56' }),
    ip: ipv4('inside the subnet, not the gateway'),
    name: z.string().max(253).optional().openapi({ description: 'DNS host name (starts with a letter)' }),
  })
  .openapi('StaticHost');

const direction = z.strictObject({ average: rate, peak: rate.optional(), burst: rate.optional() });
/** QoS in libvirt's units (applied only on hosts whose kernel can shape traffic). */
export const BandwidthSchema = z
  .strictObject({ inbound: direction.optional(), outbound: direction.optional() })
  .openapi('Bandwidth', { description: 'inbound: towards the guests; outbound: from them' });

/** POST /networks. */
export const CreateNetworkBody = z
  .strictObject({
    name: displayName(NETWORK_NAME_MAX).openapi({ example: 'lab' }),
    description: displayName(NETWORK_DESCRIPTION_MAX).optional(),
    mode: z.enum(NETWORK_MODES).openapi({
      description:
        'nat: masqueraded through the host; route: routed, no NAT; isolated: guests and host only; bridge: an existing host bridge',
    }),
    cidr: z.string().max(43).optional().openapi({
      description: "the subnet's network address (nat, route; optional for isolated)",
      example: '10.20.0.0/24',
    }),
    gateway: ipv4("the host's address on the network (default: the subnet's first host address)").optional(),
    dhcpStart: ipv4('first address handed out by DHCP').optional(),
    dhcpEnd: ipv4('last address handed out by DHCP').optional(),
    staticHosts: z.array(StaticHostSchema).max(STATIC_HOSTS_MAX).optional(),
    bridgeName: z
      .string()
      .max(64)
      .optional()
      .openapi({ description: 'bridge mode only: the existing host bridge (vmflow names the others)' }),
    forwardDev: z.string().max(64).optional().openapi({ description: 'nat/route: the uplink device' }),
    departmentId: uuid()
      .nullable()
      .optional()
      .openapi({ description: 'owning department (omitted or null: shared with every department)' }),
    vlanId: z.number().optional().openapi({
      description: '802.1Q tag 1–4094; bridge mode on an Open vSwitch bridge only (libvirt rule)',
    }),
    bandwidth: BandwidthSchema.optional(),
  })
  .openapi('CreateNetworkRequest');

/** PATCH /networks/:id: only the fields given change; `null` removes the DHCP range or the bandwidth. */
export const UpdateNetworkBody = z
  .strictObject({
    dhcpStart: ipv4('first DHCP address (null with dhcpEnd: no DHCP range)').nullable().optional(),
    dhcpEnd: ipv4('last DHCP address').nullable().optional(),
    staticHosts: z
      .array(StaticHostSchema)
      .max(STATIC_HOSTS_MAX)
      .optional()
      .openapi({ description: 'the full list of static leases (replaces the current one)' }),
    bandwidth: BandwidthSchema.nullable().optional(),
    cidr: z.string().max(43).optional().openapi({
      description: 'a new subnet: redefines the network (refused while running machines use it)',
    }),
    gateway: ipv4('a new gateway: redefines the network').optional(),
  })
  .refine((b) => Object.keys(b).length > 0, { message: 'give at least one field' })
  .openapi('UpdateNetworkRequest');

/** PUT /machines/:id/network. */
export const MachineNetworkBody = z
  .strictObject({ networkId: uuid().openapi({ description: 'the network to move the machine to' }) })
  .openapi('MachineNetworkRequest');

/** GET /networks. */
export const NetworkListQuery = z.strictObject({
  status: z.enum(NETWORK_STATUSES).optional(),
  department: uuid()
    .optional()
    .openapi({ param: { description: "a department's networks (with `shared=false`: only them)" } }),
  shared: z
    .enum(['true', 'false'])
    .optional()
    .openapi({ param: { description: 'true: only shared networks; false: only department networks' } }),
});

/** A virtual network. */
export const NetworkSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    mode: z.enum(NETWORK_MODES),
    cidr: z.string().nullable(),
    gateway: z.string().nullable(),
    dhcpStart: z.string().nullable(),
    dhcpEnd: z.string().nullable(),
    staticHosts: z.array(StaticHostSchema),
    bridgeName: z.string(),
    forwardDev: z.string().nullable(),
    departmentId: z.string().nullable().openapi({ description: 'null: shared' }),
    vlanId: z.number().int().nullable(),
    bandwidth: BandwidthSchema.nullable(),
    qosApplied: z.boolean().openapi({ description: 'the bandwidth is in effect in libvirt' }),
    hostName: z.string().nullable(),
    internalName: z
      .string()
      .openapi({ description: 'the libvirt network name (machines show it as networkName)' }),
    status: z.enum(NETWORK_STATUSES),
    lastError: z.string().nullable(),
    currentOperationId: z.string().nullable(),
    createdAt: isoDate.nullable(),
    updatedAt: isoDate.nullable(),
  })
  .openapi('Network');

/** GET /networks. */
export const NetworkListResponse = z.object({ items: z.array(NetworkSchema) }).openapi('NetworkList');

/** 202 of POST /networks. */
export const NetworkOperationResponse = z
  .object({ network: NetworkSchema, operation: OperationSchema })
  .openapi('NetworkOperationAccepted');
