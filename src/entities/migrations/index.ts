import { Initial1764093600000 } from './1764093600000-initial';
import { Api1764180000000 } from './1764180000000-api';
import { NetworksFirewall1764266400000 } from './1764266400000-networks-firewall';
import { MachineListIndexes1764352800000 } from './1764352800000-machine-list-indexes';
import { Images1764525600000 } from './1764525600000-images';
import { GuestInfo1764612000000 } from './1764612000000-guest-info';
import { OperationResult1764698400000 } from './1764698400000-operation-result';
import { MachineMetrics1764784800000 } from './1764784800000-machine-metrics';

/** Every migration, in order. Listed explicitly so that ts-jest, tsx and compiled code load the same set. */
export const migrations = [
  Initial1764093600000,
  Api1764180000000,
  NetworksFirewall1764266400000,
  MachineListIndexes1764352800000,
  Images1764525600000,
  GuestInfo1764612000000,
  OperationResult1764698400000,
  MachineMetrics1764784800000,
];
