/**
 * The `node-daemon` command: `start` runs a node and its API until a signal;
 * `init` creates a repo; `id`, `add`, `cat` and `pin ls` are thin clients of a
 * running daemon's HTTP API, as `ipfs` is of Kubo. `startDaemon` is also what
 * tests and benchmarks use to run in-process nodes.
 */
export { main, program } from './main.ts'
export { startDaemon } from './daemon.ts'
export type { RunningDaemon } from './daemon.ts'
