/**
 * Whether a host can shape traffic, asked of libvirt itself: throw-away isolated networks with a
 * `<bandwidth>` element (no addresses, so no dnsmasq) are defined, started and removed, one per direction.
 * Starting them runs exactly the `tc` commands libvirt runs for any vmflow network or NIC with QoS
 * (inbound: an htb root and class with an sfq leaf; outbound: an ingress qdisc with a u32 filter and a
 * police action) on the host libvirtd runs on, in its network namespace, so the answer holds for that
 * kernel, remote hosts included. A kernel without one of those pieces fails the start ("Specified qdisc
 * kind is unknown", "Failed to load TC action module"): that is recorded in plain words, instead of
 * failing later when a network or machine is made.
 */
import { randomBytes } from 'node:crypto';
import { type HostCapabilities } from '../entities/host';
import { type Connection } from '../libvirt/connection';
import { buildNetworkXml, type Bandwidth } from '../libvirt/xml';

/** Names of the probe networks start with this (one left by a crash can be recognised). */
export const QOS_PROBE_PREFIX = 'vmflow-qosprobe-';

/** The queueing disciplines libvirt's bandwidth support needs, and what each one does for it. */
const QDISCS: Record<string, string> = {
  htb: "'htb' queueing discipline (rate limits)",
  sfq: "'sfq' queueing discipline (fair queueing under each limit)",
  ingress: "'ingress' queueing discipline (outbound limits are policed on ingress)",
};

function tcError(message: string): string {
  return (/Error: ([^\n]+)/.exec(message)?.[1] ?? message).trim().replace(/\.$/, '');
}

/** The reason, in plain words, from libvirt's error of a failed probe start. */
export function qosReasonFrom(message: string): string {
  const kind = /qdisc add dev \S+ (?:\S+ )*?(htb|sfq|ingress)\b/.exec(message)?.[1];
  if (kind && /unknown|not supported|No such file/i.test(message)) {
    return `the host kernel has no ${QDISCS[kind]}, which libvirt needs for bandwidth limits (tc: ${tcError(message)})`;
  }
  if (/tc filter add .* police /.test(message) && /action module|unknown|not supported/i.test(message)) {
    return `the host kernel has no 'police' traffic-control action, which libvirt needs for outbound limits (tc: ${tcError(message)})`;
  }
  return `libvirt could not apply a bandwidth limit on this host: ${message.trim()}`;
}

/** Starts and removes one probe network; null when it started, else the reason. */
async function tryBandwidth(conn: Connection, bandwidth: Bandwidth): Promise<string | null> {
  const tag = randomBytes(4).toString('hex');
  const xml = buildNetworkXml({
    name: `${QOS_PROBE_PREFIX}${tag}`,
    mode: 'isolated',
    bridgeName: `vfqp${tag}`,
    bandwidth,
  });
  let net: Awaited<ReturnType<Connection['defineNetwork']>> | null = null;
  try {
    net = await conn.defineNetwork(xml);
    await net.create();
    return null;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    return net ? qosReasonFrom(message) : `could not probe bandwidth support: ${message}`;
  } finally {
    if (net) {
      // Best effort: a probe network that did not start (the usual failure) has nothing to stop.
      if (await net.isActive().catch(() => false)) await net.destroy().catch(() => undefined);
      await net.undefine().catch(() => undefined);
    }
  }
}

/**
 * Probes QoS support through `conn` (the host's libvirtd): inbound and outbound limits separately, so
 * the reason names everything that is missing. Never throws: a probe that cannot run says so in
 * `qosReason` (and QoS is then off, the safe side).
 */
export async function probeQos(conn: Connection): Promise<HostCapabilities> {
  const reasons: string[] = [];
  for (const bandwidth of [
    { inbound: { average: 1000, peak: 2000, burst: 1024 } },
    { outbound: { average: 1000, peak: 2000, burst: 1024 } },
  ]) {
    const reason = await tryBandwidth(conn, bandwidth);
    if (reason && !reasons.includes(reason)) reasons.push(reason);
  }
  return reasons.length ? { qos: false, qosReason: reasons.join('; ') } : { qos: true };
}
