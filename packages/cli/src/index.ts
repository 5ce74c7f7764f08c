/**
 * The `node-daemon` command: `start` runs a node and its API until a signal;
 * `init` creates a repo; the rest are thin clients of a running daemon's HTTP
 * API, as `ipfs` is of Kubo: Kubo's verbs in commands/content.ts,
 * ipfs-cluster-ctl's in commands/cluster.ts. `startDaemon` is also what
 * tests and benchmarks use to run in-process nodes.
 */
export { main, program } from './main.ts'
export { startDaemon } from './daemon.ts'
export type { RunningDaemon } from './daemon.ts'
