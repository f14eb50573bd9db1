/** Fixtures of the firewall workflow tests (firewall-change and flush-filters .test.ts). */
import { customFilterSpec, departmentFilterSpec } from '../../src/firewall/compile';
import type { FilterSpec } from '../../src/libvirt/xml';
import { libvirtNames } from '../../src/workflows/shared';

export const DEPT = '2b7f5a4e-0c1d-4e5f-8a9b-0c1d2e3f4a5b';
export const CUSTOM = '4d9f7c6a-2e3f-4a7b-8c1d-2e3f4a5b6c7d';
export const customName = libvirtNames.customFilter(CUSTOM);
export const customSpec: FilterSpec = customFilterSpec({
  filterId: CUSTOM,
  rules: [{ action: 'drop', direction: 'out', protocol: 'tcp', dstPortStart: 25, priority: 500 }],
  includes: [],
});
/** The department filter as libvirt has it before: it still includes the custom filter. */
export const deptWithCustom: FilterSpec = departmentFilterSpec({
  departmentId: 'dept-1',
  policy: 'ALLOW_ALL',
  rules: [],
  includes: [customName],
});
