/**
 * Parsing libvirt's bulk domain stats and the rates between two readings, on a record exactly as libvirt 9.0
 * (Debian 12) returned it through the binding's `getAllDomainStats` for the integration test's domain — a
 * running TCG domain with an empty qcow2 disk and one NIC on a vmflow network (names and ids replaced) —
 * and variants of it: a second disk, a backing chain, guest-reported balloon memory.
 */
import { type DomainStatsRecord } from '../../../src/libvirt/connection';
import {
  hostMetrics,
  machineIdOfDomain,
  parseDomainStats,
  type DomainCounters,
} from '../../../src/metrics/domain-stats';

const ID = '0b6a4c52-3f1e-4d2a-9c4b-1e2f3a4b5c6d';

/** The captured record (libvirt 9.0.0, QEMU 7.2, TCG, no OS in the guest). */
const emptyDisk = (over: Record<string, number | string> = {}): DomainStatsRecord => ({
  name: `vmflow-${ID}`,
  uuid: ID,
  stats: {
    'state.state': 1,
    'state.reason': 1,
    'cpu.time': 400_000_000,
    'cpu.user': 220_000_000,
    'cpu.system': 180_000_000,
    'cpu.cache.monitor.count': 0,
    'cpu.haltpoll.success.time': 0,
    'cpu.haltpoll.fail.time': 0,
    'balloon.current': 131_072,
    'balloon.maximum': 131_072,
    'balloon.last-update': 0,
    'balloon.rss': 49_512,
    'vcpu.current': 1,
    'vcpu.maximum': 2,
    'vcpu.0.state': 1,
    'vcpu.0.time': 140_000_000,
    'vcpu.0.wait': 0,
    'vcpu.0.delay': 235_473_542,
    'net.count': 1,
    'net.0.name': 'vnet47',
    'net.0.rx.bytes': 90,
    'net.0.rx.pkts': 1,
    'net.0.rx.errs': 0,
    'net.0.rx.drop': 0,
    'net.0.tx.bytes': 0,
    'net.0.tx.pkts': 0,
    'net.0.tx.errs': 0,
    'net.0.tx.drop': 0,
    'block.count': 1,
    'block.0.name': 'vda',
    'block.0.path': `/var/lib/vmflow/images/vmflow-${ID}.qcow2`,
    'block.0.backingIndex': 1,
    'block.0.rd.reqs': 1,
    'block.0.rd.bytes': 512,
    'block.0.rd.times': 152_066,
    'block.0.wr.reqs': 0,
    'block.0.wr.bytes': 0,
    'block.0.wr.times': 0,
    'block.0.fl.reqs': 0,
    'block.0.fl.times': 0,
    'block.0.allocation': 0,
    'block.0.capacity': 1_073_741_824,
    'block.0.physical': 204_800,
    'dirtyrate.calc_status': 0,
    'dirtyrate.calc_start_time': 0,
    'dirtyrate.calc_period': 0,
    'dirtyrate.calc_mode': 'page-sampling',
    ...over,
  },
});

describe('bulk domain stats', () => {
  it('reads a vmflow domain: machine id from its name, counters summed over disks and NICs, KiB to bytes', () => {
    const c = parseDomainStats(emptyDisk());
    expect(c).toEqual<DomainCounters>({
      machineId: ID,
      name: `vmflow-${ID}`,
      cpuTimeNs: 400_000_000,
      vcpus: 1, // online now, not the maximum
      memAssignedBytes: 128 * 1024 * 1024,
      memMaxBytes: 128 * 1024 * 1024,
      memGuestTotalBytes: null,
      memGuestUsableBytes: null,
      memGuestUnusedBytes: null,
      hostRssBytes: 49_512 * 1024,
      blockReadBytes: 512, // the top image carries a backingIndex too: still counted
      blockWriteBytes: 0,
      blockReadOps: 1,
      blockWriteOps: 0,
      netRxBytes: 90,
      netTxBytes: 0,
      netRxPackets: 1,
      netTxPackets: 0,
    });
  });

  it('knows vmflow domains by name only', () => {
    expect(machineIdOfDomain(`vmflow-${ID}`)).toBe(ID);
    expect(machineIdOfDomain('vmflow-net-x')).toBeNull();
    expect(machineIdOfDomain(`other-${ID}`)).toBeNull();
    expect(machineIdOfDomain(`vmflow-${ID}-x`)).toBeNull();
  });

  it('leaves out what a record lacks (a domain busy with a job reports only some groups)', () => {
    const c = parseDomainStats({
      name: `vmflow-${ID}`,
      uuid: 'u',
      stats: { 'state.state': 1, 'cpu.time': 5 },
    });
    expect(c).toMatchObject({
      cpuTimeNs: 5,
      vcpus: null,
      memAssignedBytes: null,
      blockReadBytes: null,
      netRxBytes: null,
    });
  });

  it('sums disks and NICs, counts a backing chain once, skips values that are not finite non-negative numbers', () => {
    const c = parseDomainStats(
      emptyDisk({
        'block.count': 3,
        'block.1.name': 'sda', // a CD-ROM
        'block.1.rd.bytes': 4_096,
        'block.2.name': 'vda', // vda's backing image (VIR_CONNECT_GET_ALL_DOMAINS_STATS_BACKING)
        'block.2.backingIndex': 2,
        'block.2.rd.bytes': 999_999,
        'net.count': 2,
        'net.1.name': 'vnet48',
        'net.1.rx.bytes': 10,
        'net.0.tx.bytes': -4,
        'cpu.time': 'x',
      }),
    );
    expect(c.blockReadBytes).toBe(512 + 4_096);
    expect(c.netRxBytes).toBe(100);
    expect(c.netTxBytes).toBeNull();
    expect(c.cpuTimeNs).toBeNull();
  });

  it('reads guest-reported memory when the balloon driver reports it', () => {
    const c = parseDomainStats(
      emptyDisk({
        'balloon.current': 524_288,
        'balloon.maximum': 524_288,
        'balloon.available': 492_000,
        'balloon.usable': 380_000,
        'balloon.unused': 300_000,
        'balloon.last-update': 1_764_690_000,
      }),
    );
    const m = hostMetrics(null, c, 0);
    expect(m.memTotalBytes).toBe(492_000 * 1024);
    expect(m.memUsedBytes).toBe((492_000 - 380_000) * 1024);
    expect(m.memAssignedBytes).toBe(524_288 * 1024);
  });
});

describe('rates between two readings', () => {
  const first = parseDomainStats(emptyDisk());

  it('has no rates for a first reading', () => {
    expect(hostMetrics(null, first, 0)).toMatchObject({
      cpuPct: null,
      diskReadBps: null,
      netRxBps: null,
      memAssignedBytes: 128 * 1024 * 1024,
    });
  });

  it('turns CPU time into % of the vCPUs and counters into bytes per second', () => {
    const later = parseDomainStats(
      emptyDisk({
        'cpu.time': 400_000_000 + 5_000_000_000, // 5 s of CPU over 10 s
        'vcpu.current': 2,
        'block.0.rd.bytes': 512 + 40_960,
        'block.0.wr.bytes': 8_192,
        'net.0.rx.bytes': 90 + 10_000,
        'net.0.tx.bytes': 2_000,
      }),
    );
    const m = hostMetrics(first, later, 10_000);
    expect(m.cpuPct).toBeCloseTo(25); // 0.5 CPU-seconds per second over 2 vCPUs
    expect(m.diskReadBps).toBeCloseTo(4_096);
    expect(m.diskWriteBps).toBeCloseTo(819.2);
    expect(m.netRxBps).toBeCloseTo(1_000);
    expect(m.netTxBps).toBeCloseTo(200);
  });

  it('clamps CPU % to 100 (the counter read a little late) and gives no rate across a restart', () => {
    const busy = parseDomainStats(emptyDisk({ 'cpu.time': 400_000_000 + 10_300_000_000 }));
    expect(hostMetrics(first, busy, 10_000).cpuPct).toBe(100);
    const restarted = parseDomainStats(emptyDisk({ 'cpu.time': 1_000, 'net.0.rx.bytes': 0 }));
    const m = hostMetrics(first, restarted, 10_000);
    expect(m.cpuPct).toBeNull();
    expect(m.netRxBps).toBeNull();
    expect(m.diskReadBps).toBe(0);
  });
});
