/** Recorded runs of the firewall workflows (see history-scenarios.ts). */
import type { Scenario } from './history-scenarios';

export const FIREWALL_SCENARIOS: Scenario[] = [];
