/** Recorded runs of the network workflows (see history-scenarios.ts). */
import type { Scenario } from './history-scenarios';

export const NETWORK_SCENARIOS: Scenario[] = [];
