/**
 * Placement: which nodes should run a piece of work, in order of preference,
 * from what the cluster knows of them (membership, liveness, where a model's
 * bytes are allocated, and the load and resources each node gossips). Pure
 * functions, so that every policy is tested without a network.
 */
export { rankWorkers, loadOf } from './placement.ts'
export type { PlacementRequest } from './placement.ts'
