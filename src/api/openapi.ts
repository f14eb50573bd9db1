/**
 * The OpenAPI 3.1 document, generated from the route declarations (src/api/route.ts) and their zod
 * schemas: the same objects that validate requests.
 */
import { OpenAPIRegistry, OpenApiGeneratorV31 } from '@asteasolutions/zod-to-openapi';
import { document, type RouteSpec } from './route';

/** Builds the document for a set of routes. */
export function buildOpenApi(
  routes: RouteSpec[],
  version = '0.1.0',
): ReturnType<OpenApiGeneratorV31['generateDocument']> {
  const registry = new OpenAPIRegistry();
  registry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
  });
  for (const r of routes) document(registry, r);
  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'vmflow API',
      version,
      description:
        'VM lifecycle operations as durable Temporal workflows. Mutating machine routes answer 202 with an operation; ' +
        'follow it with GET /api/operations/{id} or live over Socket.IO (`vms:progress` and resource events). ' +
        'Errors are application/problem+json. POST, PUT, PATCH and DELETE accept an Idempotency-Key header.',
    },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }],
  });
}
