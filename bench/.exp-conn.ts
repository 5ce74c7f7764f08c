import { createMemoryCluster } from '../packages/cluster/test/helpers/memory-cluster.ts'
const N = Number(process.env.N ?? 30)
const c = await createMemoryCluster({ voters: 3, heartbeatMs: 30000, nodeTimeoutMs: 120000, voterTimeoutMs: 180000 } as any)
const t0 = performance.now()
let last = performance.now(); let busy = 0
const probe = setInterval(() => { const now = performance.now(); busy += Math.max(0, now - last - 100); last = now }, 100)
await c.grow(N, { wave: 1, joinTimeoutMs: 300000, onWave: (m) => { if (m % 10 === 0) { console.log(m, 'nodes', ((performance.now() - t0) / 1000).toFixed(1), 's; event-loop lag total', (busy / 1000).toFixed(1), 's') } } })
clearInterval(probe)
await c.stop(10000)
process.exit(0)
