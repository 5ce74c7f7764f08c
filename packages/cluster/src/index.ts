/**
 * The cluster: nodes join through a bootstrap peer and Raft decides
 * membership (a few voters, every other node a learner). A deterministic
 * state machine applied from the Raft log holds the pinset with IPFS
 * Cluster's replication factors and allocations, the model and dataset
 * registry, node profiles, job records and the history of decisions. Each
 * node then pins what the state allocates to it, fetching blocks from the
 * others, and reports its status. Joining takes a credential (the
 * private-network key, or a signed join token), and only trusted peers vote
 * and change what is not their own.
 */
export type * from './interface.ts'
export type * from './types.ts'
export { FINAL_JOB_STATUSES } from './types.ts'
export * from './errors.ts'
export { createCluster, ClusterService, HEARTBEAT_TOPIC } from './cluster.ts'
export { readInvite } from './join-token.ts'
export type { Invite, JoinRole } from './join-token.ts'
export type { ClusterComponents, ClusterInit } from './cluster.ts'
export { ClusterState, jobIdOfTask, taskIdOf, workedOn } from './state.ts'
export { checkCID } from './commands.ts'
export type { TrainingChange } from './commands.ts'
export { CLUSTER_PROTOCOL } from './rpc.ts'
export type { Handler as ServiceHandler, ServiceMethod } from './rpc.ts'
export { chooseExecutionProvider, measureResources, usageOf } from './resources.ts'
