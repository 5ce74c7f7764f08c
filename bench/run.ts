/**
 * `npm run bench -- <area>` runs the benchmark bench/<area>.ts. Each area
 * module exports `main(): Promise<number>`, which prints its figures and
 * returns the exit code. An unknown or missing area lists the known ones and
 * exits with 2.
 */

interface BenchModule {
  main (): Promise<number>
}

const areas: Record<string, { describe: string, load: () => Promise<BenchModule> }> = {
  api: {
    describe: 'requests/s of /api/tags and /api/v0/id with autocannon, with no auth, an API key and a JWT, in one run',
    load: async () => import('./api.ts')
  },
  content: {
    describe: 'add through the HTTP API and the CLI against Helia\'s importer into blockstore-fs; cat and daemon RSS against single-core SHA-256; the transfer between two daemons against a bare libp2p stream and plain TCP',
    load: async () => import('./content.ts')
  },
  raft: {
    describe: 'commits/s, commit latency and failover of a three-node Raft cluster over loopback libp2p, against fsync\'d appends and the election timeout',
    load: async () => import('./raft.ts')
  },
  cluster: {
    describe: 'replication of a 200 MB model to factor 3, convergence after kill -9 of a node, and pin ingestion in pins/s, on real daemons, against the transfer rate between two daemons, node_timeout_ms and 1,000 pins/s',
    load: async () => import('./cluster.ts')
  },
  'cluster-scale': {
    describe: 'join, heartbeat gossip and pinset convergence of 100 nodes in one process on an in-memory transport, against a 3-node cluster',
    load: async () => import('./cluster-scale.ts')
  },
  inference: {
    describe: 'tokens/s and time to first token of /api/generate, 1 to 16 concurrent streams, and daemon RSS, against a bare onnxruntime greedy loop on the same model',
    load: async () => import('./inference.ts')
  },
  search: {
    describe: 'indexing chunks/s through a daemon against the embedding model alone, search/hybrid p50/p99 and queries/s against direct LanceDB queries, and Recall@10 of the ANN index against an exact scan',
    load: async () => import('./search.ts')
  },
  training: {
    describe: 'samples/s of a one-node job against a plain onnxruntime training loop, the share of step time spent exchanging gradients for 1M and 10M parameters on two daemons, and the time to go on after kill -9 of a worker',
    load: async () => import('./training.ts')
  }
}

function usage (): string {
  const width = Math.max(...Object.keys(areas).map(name => name.length))
  const known = Object.entries(areas).map(([name, a]) => `  ${name.padEnd(width)} ${a.describe}`).join('\n')
  return `usage: npm run bench -- <area>\nknown areas:\n${known}\n`
}

const area = process.argv[2]
if (area == null || !Object.hasOwn(areas, area)) {
  process.stderr.write(`${area == null ? 'no area given' : `unknown area ${JSON.stringify(area)}`}\n${usage()}`)
  process.exit(2)
}

// The bare loops make onnxruntime sessions in this process, whose telemetry would leave /tmp/mat-debug-<pid>.log; the daemons turn it off themselves.
process.env.ORT_DISABLE_TELEMETRY ??= '1'
try {
  process.exitCode = await (await areas[area].load()).main()
} catch (err: any) {
  process.stderr.write(`bench ${area} failed: ${err?.stack ?? String(err)}\n`)
  process.exitCode = 1
}
