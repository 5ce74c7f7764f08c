/**
 * Raft driven for real: the library of packages/raft with a durable log in
 * the node's repo, a libp2p transport between members, and the driver loop
 * that ties them to an application's state machine.
 */
export { createRaftNode, RaftNode } from './driver.ts'
export type { LeaderChange, RaftNodeComponents, RaftNodeEvents, RaftNodeInit, StateMachine, WaitOptions } from './driver.ts'
export { createRaftTransport, Libp2pRaftTransport, RAFT_PROTOCOL } from './transport.ts'
export type { RaftTransport, RaftTransportComponents, RaftTransportEvents, RaftTransportInit, RaftTransportStats } from './transport.ts'
export { openRaftStorage } from './storage.ts'
export type { RaftStorage, RaftStorageComponents, RaftStorageInit } from './storage.ts'
export type { RaftFile, RaftFs } from './fs.ts'
export type { Clock } from './clock.ts'
export { encodeMessage, decodeMessage, encodeProposal, decodeProposal, decodeEntry } from './codec.ts'
export type { Proposal, Proposed } from './codec.ts'
export * from './errors.ts'
export * from './storage-errors.ts'
