/**
 * /api/networks (list what the caller may use, get, create, update, delete; moving a machine to another
 * network is a machine route, src/api/routes/machines.ts). As for machines, the API checks what
 * it can before starting a workflow — every field of the request (src/networks/validate.ts), the names
 * and subnets of the database's networks and, when its libvirt connection reaches the network's host,
 * the host's libvirt networks and domains — so most bad requests never start one; the workflow checks
 * again and stays authoritative. Networks are managed by admins; everyone sees the shared networks and
 * those of their departments.
 */
import { In, IsNull, Not, type FindOptionsWhere } from 'typeorm';
import { Department } from '../../entities/department';
import { Host } from '../../entities/host';
import { Network } from '../../entities/network';
import { lookupHostInterface } from '../../networks/host-interfaces';
import { listHostNetworks, networkDomains, type DomainOnNetwork } from '../../networks/host-read';
import { designOf, machinesOn, vmflowNetworksOn } from '../../networks/queries';
import {
  designNetwork,
  findConflicts,
  planNetworkUpdate,
  qosProblem,
  type ExistingNetwork,
  type NetworkProblem,
  givenFields,
  NETWORK_CHANGE_FIELDS,
  NETWORK_CREATE_FIELDS,
} from '../../networks/validate';
import {
  libvirtNames,
  networkWorkflowId,
  type CreateNetworkInput,
  type UpdateNetworkInput,
} from '../../workflows/shared';
import { type ApiContext } from '../context';
import { badRequest, conflict, forbidden, notFound, ProblemError, refused } from '../errors';
import { accepted } from '../handler';
import { assertIdle } from '../idle';
import { hostNames, visibleNetwork } from '../lookups';
import { isAdmin, type Principal } from '../permissions';
import { ACCEPTED, acceptedAs, ok, routesFor, type RouteSpec } from '../route';
import { IdParams } from '../schemas';
import {
  CreateNetworkBody,
  NetworkListQuery,
  NetworkListResponse,
  NetworkOperationResponse,
  NetworkSchema,
  UpdateNetworkBody,
} from '../schemas-network';
import { networkView } from '../views-network';

const adminsOnly = (p: Principal) => {
  if (!isAdmin(p)) throw forbidden('only admins manage networks');
};

/**
 * Answers a list of problems: 400 naming every invalid field; else 409 for a name or bridge another
 * network holds; else 422 for what the host cannot do.
 */
function answer(problems: NetworkProblem[]): void {
  if (problems.length) reject(problems);
}

/** Throws the response for a non-empty list of problems (see {@link answer}). */
function reject(problems: NetworkProblem[]): never {
  const invalid = problems.filter((x) => x.kind === 'invalid');
  if (invalid.length)
    throw badRequest(
      'the network is invalid',
      invalid.map(({ field, message }) => ({ field, message })),
    );
  const taken = problems.filter((x) => x.kind === 'taken');
  if (taken.length)
    throw conflict(taken.map((t) => t.message).join('; '), {
      errors: taken.map(({ field, message }) => ({ field, message })),
    });
  const [unsupported] = problems;
  throw refused(unsupported!.message, unsupported!.field);
}

/** The API's own libvirt connection, when it reaches this host (else null). */
function readHost(ctx: ApiContext, host: Host) {
  if (!ctx.libvirt || host.libvirtUri !== ctx.libvirt.uri) return null;
  return ctx.libvirt;
}

/** The host's libvirt networks but `exceptName` (read-only; [] when libvirt cannot be asked from here). */
async function libvirtNeighbours(
  ctx: ApiContext,
  host: Host,
  exceptName: string,
): Promise<ExistingNetwork[]> {
  const read = readHost(ctx, host);
  if (!read) return [];
  try {
    return (await listHostNetworks(read))
      .filter((n) => n.name !== exceptName)
      .map((n) => ({ label: `libvirt network ${n.name}`, cidrs: n.cidrs, bridgeName: n.bridgeName }));
  } catch (err) {
    ctx.logger.warn({ err }, 'could not list the host libvirt networks; the workflow will check');
    return [];
  }
}

/** Domains of the host with a NIC on the network ([] when libvirt cannot be asked from here). */
async function domainsOn(
  ctx: ApiContext,
  host: Host | null,
  internalName: string,
): Promise<DomainOnNetwork[]> {
  const read = host ? readHost(ctx, host) : null;
  if (!read) return [];
  try {
    return await networkDomains(read, { internalName });
  } catch (err) {
    ctx.logger.warn({ err }, 'could not list the host domains; the workflow will check');
    return [];
  }
}

/** The network routes. */
export function networksRoutes(ctx: ApiContext): RouteSpec[] {
  const networksApi = routesFor('networks');
  return [
    networksApi.get(
      '/api/networks',
      'The networks the caller may use: shared ones and those of its departments (admins: all)',
      { query: NetworkListQuery, responses: ok('the networks, by name', NetworkListResponse) },
      async ({ principal: p, query }) => {
        const base: FindOptionsWhere<Network> = query.status ? { status: query.status } : {};
        // Shared networks, unless only department ones are asked for; department networks: the one asked
        // for, else all the caller may use (admins: every department's).
        const mine = isAdmin(p) ? null : [...p.departments.keys()];
        const shared = query.shared !== 'false';
        const depts =
          query.shared === 'true'
            ? []
            : query.department
              ? !mine || mine.includes(query.department)
                ? [query.department]
                : []
              : mine;
        const scopes: Array<FindOptionsWhere<Network>> = [];
        if (shared) scopes.push({ ...base, departmentId: IsNull() });
        if (depts === null) scopes.push({ ...base, departmentId: Not(IsNull()) });
        else if (depts.length) scopes.push({ ...base, departmentId: In(depts) });
        if (!scopes.length) return { status: 200, body: { items: [] } };
        const rows = await ctx.ds.getRepository(Network).find({ where: scopes, order: { name: 'ASC' } });
        const hosts = await hostNames(ctx);
        return { status: 200, body: { items: rows.map((n) => networkView(n, hosts.get(n.hostId) ?? null)) } };
      },
    ),
    networksApi.get(
      '/api/networks/:id',
      'A network',
      { params: IdParams, problems: [404], responses: ok('the network', NetworkSchema) },
      async ({ principal, params }) => {
        const n = await visibleNetwork(ctx, principal, params.id);
        return { status: 200, body: networkView(n, (await hostNames(ctx)).get(n.hostId) ?? null) };
      },
    ),
    networksApi.post(
      '/api/networks',
      'Create a network (admins; starts the createNetwork workflow)',
      {
        body: CreateNetworkBody,
        problems: [403, 404, 409, 422],
        responses: acceptedAs(
          'accepted: the network as it will be, and its operation',
          NetworkOperationResponse,
        ),
      },
      async ({ principal: p, body: b, ids, idempotencyKey }) => {
        adminsOnly(p);
        const designed = designNetwork(b);
        if (!designed.ok) reject(designed.problems);
        const { design } = designed;
        if (
          b.departmentId &&
          !(await ctx.ds.getRepository(Department).exists({ where: { id: b.departmentId } }))
        )
          throw notFound('department', 'departmentId');
        const host = ctx.placementHost
          ? await ctx.ds.getRepository(Host).findOne({ where: { name: ctx.placementHost } })
          : await ctx.ds.getRepository(Host).findOne({ where: {}, order: { name: 'ASC' } });
        if (!host) throw refused('no hypervisor host is registered');
        const networkId = ids.resource;
        const internalName = libvirtNames.network(networkId);
        const bridgeName = design.bridgeName ?? libvirtNames.bridge(networkId);
        const problems: NetworkProblem[] = [];
        if (await ctx.ds.getRepository(Network).exists({ where: { name: b.name } }))
          problems.push({ field: 'name', message: `a network named "${b.name}" exists`, kind: 'taken' });
        const neighbours = [
          ...(await vmflowNetworksOn(ctx.ds.manager, host.id, networkId)),
          ...(await libvirtNeighbours(ctx, host, internalName)),
        ];
        problems.push(...findConflicts({ cidr: design.cidr, bridgeName }, neighbours));
        const bridgeRow = await ctx.ds.getRepository(Network).findOne({ where: { bridgeName } });
        if (bridgeRow && !problems.some((x) => x.field === 'bridgeName'))
          problems.push({
            field: 'bridgeName',
            message: `bridge ${bridgeName} is already used by network "${bridgeRow.name}"`,
            kind: 'taken',
          });
        if (design.mode === 'bridge' && readHost(ctx, host)) {
          const iface = await lookupHostInterface(host.libvirtUri, bridgeName).catch(() => undefined);
          if (iface === null)
            problems.push({
              field: 'bridgeName',
              message: `the host has no bridge named ${bridgeName}`,
              kind: 'invalid',
            });
        }
        const qos = qosProblem(design.bandwidth, host.capabilities);
        if (qos) problems.push(qos);
        answer(problems);
        const input: CreateNetworkInput = {
          operationId: ids.operation,
          actorId: p.id,
          idempotencyKey,
          networkId,
          name: b.name,
          mode: b.mode,
          hostName: host.name,
          departmentId: b.departmentId ?? null,
          ...givenFields(b, NETWORK_CREATE_FIELDS),
        };
        const operation = await ctx.operations.startResource({
          workflow: 'createNetwork',
          workflowId: networkWorkflowId(networkId),
          type: 'create_network',
          resource: 'networks',
          resourceId: networkId,
          input: input as unknown as { operationId: string } & Record<string, unknown>,
          actorId: p.id,
          departmentId: input.departmentId ?? null,
        });
        const network = networkView(
          Object.assign(new Network(), {
            id: networkId,
            name: b.name,
            description: b.description ?? null,
            internalName,
            bridgeName,
            hostId: host.id,
            mode: design.mode,
            cidr: design.cidr,
            gateway: design.gateway,
            dhcpStart: design.dhcpStart,
            dhcpEnd: design.dhcpEnd,
            staticHosts: design.staticHosts,
            forwardDev: design.forwardDev,
            departmentId: input.departmentId ?? null,
            vlanId: design.vlanId,
            bandwidth: design.bandwidth,
            qosApplied: false,
            status: 'creating' as const,
            lastError: null,
            currentOperationId: operation.id,
          }),
          host.name,
        );
        return accepted(operation, { network });
      },
    ),
    networksApi.patch(
      '/api/networks/:id',
      'Change a network (admins): DHCP range and static leases live; subnet, gateway or bandwidth by a safe redefine',
      { params: IdParams, body: UpdateNetworkBody, problems: [403, 404, 409, 422], responses: ACCEPTED },
      async ({ principal: p, params, body: b, ids, idempotencyKey }) => {
        const n = await visibleNetwork(ctx, p, params.id);
        adminsOnly(p);
        await assertIdle(ctx, { kind: 'network', currentOperationId: n.currentOperationId });
        if (n.status !== 'active') throw conflict(`the network is ${n.status}, not active`);
        const planned = planNetworkUpdate({ ...designOf(n), name: n.name }, b);
        if (!planned.ok) reject(planned.problems);
        const { plan } = planned;
        const host = await ctx.ds.getRepository(Host).findOne({ where: { id: n.hostId } });
        const problems: NetworkProblem[] = [];
        if (plan.next.cidr !== n.cidr && host) {
          const neighbours = [
            ...(await vmflowNetworksOn(ctx.ds.manager, host.id, n.id)),
            ...(await libvirtNeighbours(ctx, host, n.internalName)),
          ];
          problems.push(...findConflicts({ cidr: plan.next.cidr, bridgeName: null }, neighbours));
        }
        if (plan.redefine.includes('bandwidth')) {
          const qos = qosProblem(plan.next.bandwidth, host?.capabilities);
          if (qos) problems.push(qos);
        }
        answer(problems);
        if (plan.redefine.length) {
          const running = (await machinesOn(ctx.ds.manager, n.internalName)).filter(
            (m) => m.status !== 'off' && m.status !== 'failed',
          );
          const domains = (await domainsOn(ctx, host, n.internalName)).filter((d) => d.active);
          if (running.length || domains.length) {
            const names = [
              ...running.map((m) => m.name),
              ...domains.filter((d) => !d.machineId).map((d) => d.domain),
            ];
            throw new ProblemError(
              422,
              `changing the ${plan.redefine.join(', ')} restarts the network, which would cut off running machines: ${names.join(', ')}; stop them first`,
              {
                title: 'Refused',
                errors: [
                  {
                    field: plan.redefine[0] === 'bandwidth' ? 'bandwidth' : 'cidr',
                    message: 'running machines use the network',
                  },
                ],
                machines: running,
                domains,
              },
            );
          }
        }
        const input: UpdateNetworkInput = {
          operationId: ids.operation,
          actorId: p.id,
          idempotencyKey,
          networkId: n.id,
          departmentId: n.departmentId,
          ...givenFields(b, NETWORK_CHANGE_FIELDS),
        };
        const operation = await ctx.operations.startResource({
          workflow: 'updateNetwork',
          workflowId: networkWorkflowId(n.id),
          type: 'update_network',
          resource: 'networks',
          resourceId: n.id,
          input: input as unknown as { operationId: string } & Record<string, unknown>,
          actorId: p.id,
          departmentId: n.departmentId,
        });
        return accepted(operation);
      },
    ),
    networksApi.delete(
      '/api/networks/:id',
      'Delete a network (admins); refused with 409 naming the machines still attached',
      { params: IdParams, problems: [403, 404, 409], responses: ACCEPTED },
      async ({ principal: p, params, ids, idempotencyKey }) => {
        const n = await visibleNetwork(ctx, p, params.id);
        adminsOnly(p);
        await assertIdle(ctx, { kind: 'network', currentOperationId: n.currentOperationId });
        const machines = await machinesOn(ctx.ds.manager, n.internalName);
        const departments = await ctx.ds
          .getRepository(Department)
          .find({ where: { networkName: n.internalName }, select: { id: true, name: true } });
        const host = await ctx.ds.getRepository(Host).findOne({ where: { id: n.hostId } });
        const domains = await domainsOn(ctx, host, n.internalName);
        if (machines.length || departments.length || domains.length) {
          const parts = [
            ...(machines.length ? [`machines ${machines.map((m) => m.name).join(', ')}`] : []),
            ...(departments.length
              ? [`the default of departments ${departments.map((d) => d.name).join(', ')}`]
              : []),
            ...(domains.some((d) => !d.machineId)
              ? [
                  `domains ${domains
                    .filter((d) => !d.machineId)
                    .map((d) => d.domain)
                    .join(', ')}`,
                ]
              : []),
          ];
          throw conflict(`the network is still in use: ${parts.join('; ')}`, {
            title: 'Network in use',
            machines: machines.map((m) => ({ id: m.id, name: m.name, status: m.status })),
            departments: departments.map((d) => ({ id: d.id, name: d.name })),
            domains,
          });
        }
        const operation = await ctx.operations.startResource({
          workflow: 'deleteNetwork',
          workflowId: networkWorkflowId(n.id),
          type: 'delete_network',
          resource: 'networks',
          resourceId: n.id,
          input: {
            operationId: ids.operation,
            actorId: p.id,
            idempotencyKey,
            networkId: n.id,
            departmentId: n.departmentId,
          },
          actorId: p.id,
          departmentId: n.departmentId,
        });
        return accepted(operation);
      },
    ),
  ];
}
