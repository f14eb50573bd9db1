/** /api/firewall routes (being implemented). */
import { type ApiContext } from '../context';
import { type RouteSpec } from '../route';

/** The firewall routes. */
export function firewallRoutes(_ctx: ApiContext): RouteSpec[] {
  return [];
}
