/**
 * libvirt storage XML: volumes ({@link buildVolumeXml} / {@link parseVolumeXml}) for
 * `virStorageVolCreateXML(From)`, and directory pools ({@link buildPoolXml} / {@link parsePoolXml})
 * for `virStoragePoolDefineXML`.
 */
import {
  addElement,
  assignDefined,
  attr,
  child,
  childText,
  createRoot,
  descend,
  parseRoot,
  required,
  scaledBytes,
  serialize,
  textOf,
} from './dom';
import { type Known } from './common';
import {
  assertAbsolutePath,
  assertInteger,
  assertLibvirtName,
  assertOneOf,
  assertRecord,
  assertUuid,
  fail,
} from './validate';

/** Volume image formats vmflow creates. */
export type VolumeFormat = 'qcow2' | 'raw';

/** A storage volume to create. */
export interface VolumeSpec {
  /** Volume name = file name inside a dir pool (`vmflow-<id>.qcow2`). */
  name: string;
  /** Virtual size in bytes (positive). */
  capacityBytes: number;
  /** Bytes to preallocate (0 = sparse/thin, ≤ capacity). Omitted: libvirt's default. */
  allocationBytes?: number;
  /** Image format. */
  format: VolumeFormat;
  /** Copy-on-write base image (qcow2 volumes only). */
  backingStore?: { path: string; format: VolumeFormat };
}

/** A storage volume as read back from libvirt. */
export interface ParsedVolume {
  /** Name. */
  name: string;
  /** Volume key (for dir pools, the path). */
  key?: string;
  /** Path on the host. */
  path?: string;
  /** Virtual size, bytes. */
  capacityBytes: number;
  /** Bytes allocated on disk. */
  allocationBytes?: number;
  /** Image format. */
  format?: Known<VolumeFormat>;
  /** Backing image. */
  backingStore?: { path: string; format?: Known<VolumeFormat> };
}

/** A storage pool to define (vmflow uses directory pools). */
export interface PoolSpec {
  /** Pool name. */
  name: string;
  /** UUID; omitted: libvirt generates one. */
  uuid?: string;
  /** Pool type. */
  type: 'dir';
  /** Directory holding the volumes. */
  path: string;
}

/** A storage pool as read back from libvirt. */
export interface ParsedPool {
  /** Name. */
  name: string;
  /** UUID. */
  uuid?: string;
  /** Pool type (`dir`, `fs`, `logical`, …). */
  type: Known<PoolSpec['type']>;
  /** Target directory. */
  path?: string;
  /** Size of the underlying storage, bytes (live XML). */
  capacityBytes?: number;
  /** Bytes in use. */
  allocationBytes?: number;
  /** Bytes free. */
  availableBytes?: number;
}

/** Largest volume accepted: 1 PiB (well inside Number's exact-integer range). */
export const MAX_VOLUME_BYTES = 2 ** 50;

/** Validates a {@link VolumeSpec}, throwing {@link XmlSpecError} on the first problem. */
export function validateVolumeSpec(value: unknown): VolumeSpec {
  const spec = assertRecord(value, 'spec');
  assertLibvirtName(spec.name, 'name');
  const capacity = assertInteger(spec.capacityBytes, 'capacityBytes', { min: 1, max: MAX_VOLUME_BYTES });
  if (spec.allocationBytes !== undefined) {
    const alloc = assertInteger(spec.allocationBytes, 'allocationBytes', { min: 0, max: MAX_VOLUME_BYTES });
    if (alloc > capacity)
      fail('allocationBytes', `must not exceed capacityBytes (${capacity}), got ${alloc}`);
  }
  const format = assertOneOf(spec.format, ['qcow2', 'raw'] as const, 'format');
  if (spec.backingStore !== undefined) {
    if (format !== 'qcow2')
      fail('backingStore', 'needs format qcow2: a raw image cannot have a backing file');
    const backing = assertRecord(spec.backingStore, 'backingStore');
    assertAbsolutePath(backing.path, 'backingStore.path');
    assertOneOf(backing.format, ['qcow2', 'raw'] as const, 'backingStore.format');
  }
  return spec as unknown as VolumeSpec;
}

/**
 * Builds storage volume XML. Sizes are written in bytes (`unit='bytes'`) so nothing is rounded.
 * Throws {@link XmlSpecError} naming the field for any invalid value.
 */
export function buildVolumeXml(spec: VolumeSpec): string {
  validateVolumeSpec(spec);
  const root = createRoot('volume');
  root.setAttribute('type', 'file');
  addElement(root, 'name', {}, spec.name);
  addElement(root, 'capacity', { unit: 'bytes' }, spec.capacityBytes);
  if (spec.allocationBytes !== undefined)
    addElement(root, 'allocation', { unit: 'bytes' }, spec.allocationBytes);
  addElement(addElement(root, 'target'), 'format', { type: spec.format });
  if (spec.backingStore) {
    const backing = addElement(root, 'backingStore');
    addElement(backing, 'path', {}, spec.backingStore.path);
    addElement(backing, 'format', { type: spec.backingStore.format });
  }
  return serialize(root);
}

/** Parses storage volume XML (`virStorageVolGetXMLDesc`) into a {@link ParsedVolume}. */
export function parseVolumeXml(xml: string): ParsedVolume {
  const root = parseRoot(xml, 'volume');
  const vol: ParsedVolume = {
    name: required(childText(root, 'name'), 'volume <name>'),
    capacityBytes: required(
      scaledBytes(child(root, 'capacity'), 'bytes', 'volume capacity'),
      'volume <capacity>',
    ),
  };
  const allocation = scaledBytes(child(root, 'allocation'), 'bytes', 'volume allocation');
  const backing = child(root, 'backingStore');
  const backingPath = backing ? childText(backing, 'path') : undefined;
  const optional: Partial<ParsedVolume> = {
    key: childText(root, 'key'),
    path: textOf(descend(root, 'target', 'path'))?.trim(),
    allocationBytes: allocation,
    format: attr(descend(root, 'target', 'format'), 'type'),
  };
  assignDefined(vol, optional);
  if (backing && backingPath) {
    const format = attr(child(backing, 'format'), 'type');
    vol.backingStore = format === undefined ? { path: backingPath } : { path: backingPath, format };
  }
  return vol;
}

/** Validates a {@link PoolSpec}. */
export function validatePoolSpec(value: unknown): PoolSpec {
  const spec = assertRecord(value, 'spec');
  assertLibvirtName(spec.name, 'name');
  if (spec.uuid !== undefined) assertUuid(spec.uuid, 'uuid');
  assertOneOf(spec.type, ['dir'] as const, 'type');
  const path = assertAbsolutePath(spec.path, 'path');
  if (path === '/') fail('path', 'must not be the root directory');
  return spec as unknown as PoolSpec;
}

/** Builds storage pool XML for a directory pool. */
export function buildPoolXml(spec: PoolSpec): string {
  validatePoolSpec(spec);
  const root = createRoot('pool');
  root.setAttribute('type', spec.type);
  addElement(root, 'name', {}, spec.name);
  if (spec.uuid !== undefined) addElement(root, 'uuid', {}, spec.uuid.toLowerCase());
  addElement(addElement(root, 'target'), 'path', {}, spec.path);
  return serialize(root);
}

/** Parses storage pool XML (`virStoragePoolGetXMLDesc`) into a {@link ParsedPool}. */
export function parsePoolXml(xml: string): ParsedPool {
  const root = parseRoot(xml, 'pool');
  const pool: ParsedPool = {
    name: required(childText(root, 'name'), 'pool <name>'),
    type: required(attr(root, 'type'), 'pool type'),
  };
  const target = child(root, 'target');
  const optional: Partial<ParsedPool> = {
    uuid: childText(root, 'uuid'),
    path: target ? childText(target, 'path') : undefined,
    capacityBytes: scaledBytes(child(root, 'capacity'), 'bytes', 'pool capacity'),
    allocationBytes: scaledBytes(child(root, 'allocation'), 'bytes', 'pool allocation'),
    availableBytes: scaledBytes(child(root, 'available'), 'bytes', 'pool available'),
  };
  assignDefined(pool, optional);
  return pool;
}
