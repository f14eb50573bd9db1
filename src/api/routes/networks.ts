/** /api/networks routes (being implemented). */
import { type ApiContext } from '../context';
import { type RouteSpec } from '../route';

/** The networks routes. */
export function networksRoutes(_ctx: ApiContext): RouteSpec[] {
  return [];
}
