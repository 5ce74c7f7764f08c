#!/usr/bin/env -S node --max-semi-space-size=8
// A young generation of at most 8 MiB per semi-space keeps a daemon that streams
// gigabytes near 300 MB of RSS (the default lets it grow by ~100 MB); measured
// with `npm run bench -- content`. Runners that start Node themselves pass the
// flags of this line (see daemonNodeFlags in bench/lib/daemon.ts).
import { enableCompileCache } from 'node:module'

// Node's compile cache keeps the modules type-stripped and compiled, by content
// hash, in os.tmpdir()/node-compile-cache (or $NODE_COMPILE_CACHE; off with
// NODE_DISABLE_COMPILE_CACHE=1): a client command then starts in ~60 MB and a
// tenth of the CPU, instead of loading the TypeScript stripper for its files.
enableCompileCache()
// The command alone, not the index, which also exports startDaemon and so loads a whole node.
const { main } = await import('@node-daemon/cli/main')
await main(process.argv)
