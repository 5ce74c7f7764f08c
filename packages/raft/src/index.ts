/**
 * Raft consensus as a pure state machine, held to the standard of etcd-io/raft:
 * no timers, sockets or disk inside. A caller drives a RawNode with ticks,
 * messages and proposals, and carries out each Ready (persist, send, apply).
 * Election with pre-vote and check-quorum, pipelined replication with flow
 * control, membership changes by joint consensus, snapshots, ReadIndex reads
 * and leader transfer. packages/raft-node drives it for real; the tests drive
 * it on a simulated network.
 */
export { RawNode } from './raw-node.ts'
export type { Status } from './raw-node.ts'
export { MemoryStorage, emptyConfState, cloneConfState } from './memory-storage.ts'
export { encodeConfChange, decodeConfChange } from './confchange.ts'
export type { RaftConfig } from './config.ts'
export type { ProgressState } from './tracker.ts'
export * from './types.ts'
export * from './errors.ts'
