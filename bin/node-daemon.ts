#!/usr/bin/env -S node --max-semi-space-size=8 --external-memory-accounted-in-global-limit --heap-growing-percent=50
// A young generation of at most 8 MiB per semi-space keeps a daemon that streams
// gigabytes near 300 MB of RSS (the default lets it grow by ~100 MB); measured
// with `npm run bench -- content`.
// The buffers that stream through a daemon (blocks, sealed frames, gradients)
// live outside V8's heap. By default each 64 MB of them forces a full,
// non-incremental collection: three a second in a two-node training job, 16 ms
// each on average and up to 280 ms, on the path of every step. Counted in
// the heap's own limit instead, they are collected incrementally, a third as
// often, and a training step there took half the time. Growing the limit by
// half of what is live after each collection keeps the RSS of a 1 GB add or
// cat where it was (by default the limit grows up to 4x, and that RSS by
// 150 MB). Measured with `npm run bench -- training` and `content`.
// Runners that start Node themselves pass the flags of this line (see
// daemonNodeFlags in bench/lib/daemon.ts).
import { enableCompileCache } from 'node:module'

// Node's compile cache keeps the modules type-stripped and compiled, by content
// hash, in os.tmpdir()/node-compile-cache (or $NODE_COMPILE_CACHE; off with
// NODE_DISABLE_COMPILE_CACHE=1): a client command then starts in ~60 MB and a
// tenth of the CPU, instead of loading the TypeScript stripper for its files.
enableCompileCache()
// The command alone, not the index, which also exports startDaemon and so loads a whole node.
const { main } = await import('@node-daemon/cli/main')
await main(process.argv)
