/**
 * Errors a Temporal client of vmflow (the API, tests, benches, scripts) gets when it starts operations.
 */

/** The kind of resource an operation works on and competes for. */
export type ResourceKind = 'machine' | 'network' | 'firewall' | 'image';

/**
 * Thrown when an operation cannot start because another one is running on the same resource (a machine,
 * a network, a firewall scope) under the same business-keyed workflow id, and did not close within the
 * grace (or the wait the caller asked for). Names the running operation.
 */
export class OperationConflictError extends Error {
  override readonly name = 'OperationConflictError';
  constructor(
    /** What kind of resource the operations compete for. */
    public readonly resourceKind: ResourceKind,
    /** The machine, network or firewall scope the operations compete for. */
    public readonly resourceId: string,
    public readonly runningWorkflowId: string,
    public readonly runningOperationId: string | null,
    public readonly runningType: string | null,
  ) {
    super(
      `another operation (${runningType ?? 'unknown'} ${runningOperationId ?? runningWorkflowId}) is running on ${resourceKind} ${resourceId}`,
    );
  }
}
