#!/usr/bin/env -S node --max-semi-space-size=8
// A young generation of at most 8 MiB per semi-space keeps a daemon that streams
// gigabytes near 300 MB of RSS (the default lets it grow by ~100 MB); measured
// with `npm run bench -- content`. Runners that start Node themselves pass the
// flags of this line (see daemonNodeFlags in bench/lib/daemon.ts).
// The command alone, not the index, which also exports startDaemon and so loads a whole node.
import { main } from '@node-daemon/cli/main'

await main(process.argv)
