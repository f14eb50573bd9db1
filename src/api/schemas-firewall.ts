/**
 * The zod schemas of the firewall routes (filters, rules, department policies, services): as in
 * src/api/schemas.ts, the request schemas validate and the same objects generate the OpenAPI document.
 *
 * A rule body is checked by `checkUserRule` (src/firewall/validate.ts), not field by field by zod, so that
 * every problem of a rule — cross-field ones included (a reversed port range, ports on icmp, an IPv4
 * address in an IPv6 rule, a mask without an address) — is reported at once, each with its field. Its
 * documented shape is {@link FilterRuleSchema}.
 */
import { z } from 'zod';
import { FIREWALL_POLICIES } from '../entities/department';
import {
  checkUserRule,
  MAX_INCLUDES,
  USER_RULE_ACTIONS,
  USER_RULE_PRIORITY,
  USER_RULE_PROTOCOLS,
} from '../firewall/validate';
import { FIREWALL_PRESETS, SERVICE_ACTIONS } from '../workflows/shared';
import { DepartmentSchema, displayName, OperationSchema, PageQuery } from './schemas';

const uuid = () => z.uuid();
const int = (min: number, max: number) => z.number().int().min(min).max(max);
const isoDate = z.string().openapi({ format: 'date-time' });

/** Filter kinds. */
export const FILTER_KINDS = ['department', 'vm', 'custom'] as const;
/** Rule directions (seen from the guest). */
export const RULE_DIRECTIONS = ['in', 'out', 'inout'] as const;
/** Connection-tracking states a rule may match. */
export const RULE_STATES = ['NEW', 'ESTABLISHED', 'RELATED', 'INVALID', 'NONE'] as const;

// ---- parameters and queries --------------------------------------------------------------------------

/** `/filters/:id/rules/:ruleId`. */
export const RuleParams = z.strictObject({ id: uuid(), ruleId: uuid() });
/** `/machines/:id/filters/:filterId`. */
export const MachineFilterParams = z.strictObject({ id: uuid(), filterId: uuid() });
/** `/machines/:id/services/:serviceId`, `/departments/:id/services/:serviceId`. */
export const ServiceParams = z.strictObject({
  id: uuid(),
  serviceId: z
    .string()
    .regex(/^[a-z0-9-]{1,40}$/, 'a service id from GET /api/services')
    .openapi({ param: { description: 'service id (GET /api/services)' } }),
});
/** GET /filters. */
export const FilterListQuery = PageQuery.extend({
  kind: z.enum(FILTER_KINDS).optional(),
  department: uuid()
    .optional()
    .openapi({
      param: { description: 'department id (its own filter and the custom filters scoped to it)' },
    }),
});

// ---- rules -------------------------------------------------------------------------------------------

const address = z
  .string()
  .max(64)
  .openapi({ description: "an IP literal of the protocol's family, or a filter variable like $IP" });
const port = int(1, 65535);

/** A user rule, as documented (enforced by `checkUserRule`, which also checks how the fields combine). */
export const FilterRuleSchema = z
  .strictObject({
    action: z.enum(USER_RULE_ACTIONS),
    direction: z.enum(RULE_DIRECTIONS).openapi({ description: 'seen from the guest: in = towards it' }),
    protocol: z.enum(USER_RULE_PROTOCOLS),
    priority: int(USER_RULE_PRIORITY.min, USER_RULE_PRIORITY.max)
      .optional()
      .openapi({
        description: `lower first; default ${USER_RULE_PRIORITY.default} (services 300; −1000 and 1000 are the preset's)`,
      }),
    statematch: z.boolean().optional(),
    srcMacAddr: z.string().max(64).optional(),
    srcIpAddr: address.optional(),
    srcIpMask: int(0, 128).optional().openapi({ description: 'prefix length; needs srcIpAddr' }),
    srcIpFrom: address.optional(),
    srcIpTo: address.optional(),
    dstIpAddr: address.optional(),
    dstIpMask: int(0, 128).optional().openapi({ description: 'prefix length; needs dstIpAddr' }),
    dstIpFrom: address.optional(),
    dstIpTo: address.optional(),
    srcPortStart: port.optional(),
    srcPortEnd: port.optional().openapi({ description: '≥ srcPortStart' }),
    dstPortStart: port.optional(),
    dstPortEnd: port.optional().openapi({ description: '≥ dstPortStart' }),
    state: z
      .array(z.enum(RULE_STATES))
      .min(1)
      .optional()
      .openapi({ description: 'IPv4 tcp/udp/icmp/all only' }),
    icmpType: int(0, 255).optional(),
    icmpCode: int(0, 255).optional().openapi({ description: 'needs icmpType' }),
    comment: z.string().max(256).optional(),
  })
  .openapi('FilterRule');

/** The JSON Schema of {@link FilterRuleSchema}, for documenting request bodies that checkUserRule validates. */
function ruleJsonSchema(): Record<string, unknown> {
  const { $schema: _drop, ...schema } = z.toJSONSchema(FilterRuleSchema, { io: 'input' }) as Record<
    string,
    unknown
  >;
  return schema;
}

/**
 * Normalizes the field of a problem to the body's own names (`dstPortEnd`, `state[1]`): `checkUserRule`
 * prefixes fields with the prefix it is given.
 */
export function ruleField(field: string): string {
  return field.replace(/^rule(\.|$)/, '').replace(/^\./, '') || '(body)';
}

/** The body of addRule / updateRule: a user rule, every problem reported at once. */
export const RuleBody = z
  .unknown()
  .superRefine((value, ctx) => {
    for (const p of checkUserRule(value, '')) {
      const field = ruleField(p.field);
      ctx.addIssue({ code: 'custom', path: field === '(body)' ? [] : [field], message: p.message });
    }
  })
  .openapi('FilterRuleRequest', {
    ...ruleJsonSchema(),
    description: 'a user rule; every problem is reported at once (400, errors[].field as below)',
  } as never);

// ---- requests ----------------------------------------------------------------------------------------

/** POST /filters (createFilter). */
export const CreateFilterBody = z
  .strictObject({
    name: displayName(100),
    description: displayName(500).optional(),
    departmentId: uuid()
      .optional()
      .openapi({ description: 'scope the filter to a department (default: global, admins only)' }),
  })
  .openapi('CreateFilterRequest');
/** PATCH /filters/:id. */
export const UpdateFilterBody = z
  .strictObject({ name: displayName(100).optional(), description: displayName(500).nullable().optional() })
  .refine((b) => Object.keys(b).length > 0, { message: 'give at least one field' })
  .openapi('UpdateFilterRequest');
/** PUT /filters/:id/includes. */
export const IncludesBody = z
  .strictObject({
    includes: z
      .array(uuid())
      .max(MAX_INCLUDES)
      .refine((a) => new Set(a).size === a.length, { message: 'lists a filter twice' })
      .openapi({ description: 'ids of custom filters, in order (global, or of the same department)' }),
  })
  .openapi('IncludesRequest');
/** POST /machines/:id/filters (applyFilterToVM). */
export const ApplyFilterBody = z
  .strictObject({ filterId: uuid().openapi({ description: 'a custom filter' }) })
  .openapi('ApplyFilterRequest');
/** POST /filters/flush. */
export const FlushBody = z
  .strictObject({
    departmentId: uuid()
      .optional()
      .openapi({ description: "one department's filters (default: all, admins)" }),
  })
  .openapi('FlushRequest');
/** PUT /departments/:id/policy. */
export const PolicyBody = z.strictObject({ policy: z.enum(FIREWALL_PRESETS) }).openapi('PolicyRequest');
/** PUT /departments/:id/services/:serviceId. */
export const DepartmentServiceBody = z
  .strictObject({ action: z.enum(SERVICE_ACTIONS), enabled: z.boolean() })
  .openapi('DepartmentServiceRequest');
/** PUT /machines/:id/services/:serviceId. */
export const MachineServiceBody = z
  .strictObject({
    action: z.enum(SERVICE_ACTIONS),
    enabled: z
      .boolean()
      .nullable()
      .openapi({ description: "null clears the VM's own setting: it follows its department again" }),
  })
  .openapi('MachineServiceRequest');
/** PUT /machines/:id/department. */
export const MachineDepartmentBody = z
  .strictObject({ departmentId: uuid() })
  .openapi('MachineDepartmentRequest');

// ---- responses ---------------------------------------------------------------------------------------

/** A service of the catalogue. */
export const ServiceSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    description: z.string(),
    ports: z.array(
      z.object({
        protocol: z.enum(['tcp', 'udp']),
        port: z.number().int(),
        endPort: z.number().int().optional(),
      }),
    ),
  })
  .openapi('Service');
/** The effective (or department) setting of one service and action. */
export const EffectiveServiceSchema = z
  .object({
    serviceId: z.string(),
    action: z.enum(SERVICE_ACTIONS),
    enabled: z.boolean(),
    source: z
      .enum(['vm', 'department', 'default'])
      .openapi({ description: "where the setting comes from: the VM's own, its department's, or off" }),
  })
  .openapi('ServiceSetting');
/** GET /machines/:id/services. */
export const MachineServicesResponse = z
  .object({ machineId: z.string(), departmentId: z.string(), services: z.array(EffectiveServiceSchema) })
  .openapi('MachineServices');
/** GET /departments/:id/services. */
export const DepartmentServicesResponse = z
  .object({ departmentId: z.string(), services: z.array(EffectiveServiceSchema) })
  .openapi('DepartmentServices');

/** A filter (its row). */
export const FilterSchema = z
  .object({
    id: z.string(),
    kind: z.enum(FILTER_KINDS),
    name: z.string(),
    description: z.string().nullable(),
    departmentId: z
      .string()
      .nullable()
      .openapi({ description: 'the department of a department filter, or the scope of a custom one' }),
    machineId: z.string().nullable(),
    includes: z.array(z.string()).openapi({ description: 'ids of the custom filters it includes, in order' }),
    version: z.number().int(),
    libvirtName: z.string(),
    createdAt: isoDate,
    updatedAt: isoDate,
  })
  .openapi('Filter');
/** A user rule with its id. */
export const StoredRuleSchema = z
  .object({ id: z.string(), rule: FilterRuleSchema, createdAt: isoDate })
  .openapi('StoredFilterRule');
/** A filter with its user rules, its derived (preset, service) rules and what it references in libvirt. */
export const FilterDescriptionSchema = z
  .object({
    ...FilterSchema.shape,
    rules: z.array(StoredRuleSchema),
    derived: z.array(
      z.object({
        origin: z.enum(['preset', 'service']),
        rule: z.record(z.string(), z.unknown()),
        serviceId: z.string().optional(),
        action: z.enum(SERVICE_ACTIONS).optional(),
      }),
    ),
    filterrefs: z.array(z.string()).openapi({
      description: 'libvirt filters it references (department filter, built-ins, custom filters)',
    }),
  })
  .openapi('FilterDescription');
/** 202 of addRule / updateRule. */
export const RuleOperationResponse = z
  .object({
    rule: z.object({ id: z.string(), ...FilterRuleSchema.shape }).openapi('FilterRuleWithId'),
    operation: OperationSchema,
  })
  .openapi('RuleOperationAccepted');
/** A department's policy, and the rules it compiles to. */
export const PolicySchema = z
  .object({
    departmentId: z.string(),
    policy: z.enum(FIREWALL_PRESETS),
    rules: z.array(z.record(z.string(), z.unknown())).openapi({ description: 'the preset rules' }),
  })
  .openapi('DepartmentPolicy');
/** A department, with its firewall policy. */
export const DepartmentWithPolicySchema = z
  .object({ ...DepartmentSchema.shape, firewallPolicy: z.enum(FIREWALL_POLICIES) })
  .openapi('Department');
