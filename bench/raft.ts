/**
 * Raft benchmark: the daemon's Raft against etcd 3.4 in the same run.
 *
 * Both are three members on 127.0.0.1, each its own process with its data
 * dir in a temp dir on the same filesystem, fsync on, a 100 ms heartbeat
 * and a 1 s election timeout (the driver's defaults, tickMs 100 and
 * electionTick 10, and etcd's), written to with 256-byte values by the same
 * load generators (bench/lib/raft-load.ts): 1 writer, 64 writers (each
 * writing once its last write committed), and 1,000 writes/s offered on a
 * fixed schedule. Each figure is printed as a ratio to etcd's.
 *
 * Fairness, where the clients run and what a commit waits for:
 * - The daemon's writers run in the leader's process and call
 *   RaftNode.propose(), as the daemon's own services do: its Raft is embedded
 *   and has no client protocol (an API request ends in such a call). A
 *   propose resolves once the entry is fsync'd on the leader and on a
 *   follower (which acknowledges only after its fsync) and applied on the
 *   leader (to a counter: the bench measures replication, not a store).
 * - etcd's writers are its clients, in the bench's process: each write is an
 *   HTTP/1.1 POST of /v3/kv/put (JSON) to the leader over a keep-alive
 *   connection, one per writer, as an application that kept its state in
 *   etcd would send. etcd answers once the entry is in its WAL, fsync'd on
 *   the leader and a follower, and applied to the leader's store. The client
 *   path's own cost is printed beside it: a serializable range over the same
 *   connection, which etcd answers locally without Raft.
 * - The daemon's members talk libp2p with a daemon's stack (TCP, a private
 *   network's key, noise on libsodium, yamux); etcd's peers plain HTTP.
 *   Neither is given the other's transport.
 *
 * Failover: 20 times, the leader's process is SIGKILLed and both survivors
 * propose (retrying every 100 ms) until one commits; the time from the kill
 * to that commit counts. The killed member is then started again on its log
 * and key before the next kill.
 *
 * Env: BENCH_RAFT_SECONDS (3) is the length of each throughput and latency
 * run; BENCH_RAFT_COMMAND_BYTES (256) the size of each value;
 * BENCH_RAFT_FAILOVERS (20) the leader kills; BENCH_PROFILE_DIR=<dir> writes
 * a CPU profile of each member over each of the daemon's load runs
 * there (summarise with node bench/cpu-profile.ts <file>).
 */
import { mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { withCleanup } from './lib/cleanup.ts'
import { numberFromEnv, profileDirFromEnv, say } from './lib/cli.ts'
import { cpuSecondsOf } from './lib/daemon.ts'
import { spawnMember } from './lib/raft-cluster.ts'
import { ensureEtcd, startEtcdCluster } from './lib/raft-etcd.ts'
import { closedLoop, openLoop, percentile } from './lib/raft-load.ts'
import type { Cleanup } from './lib/cleanup.ts'
import type { MemberProcess, PeerInfo } from './lib/raft-cluster.ts'
import type { LoadResult } from './lib/raft-load.ts'

const TARGET_ONE = 1.0
const TARGET_MANY = 3.0
const TARGET_P99_MS = 20
const TARGET_FAILOVER_MS = 1_000
const OFFERED_PER_SECOND = 1_000
const MANY = 64
/** The driver's defaults, which the members run with, as etcd's heartbeat (100 ms) and election timeout (1,000 ms). */
const TICK_MS = 100
const ELECTION_TICK = 10
/** A failover attempt gives up on one proposal after this long and tries again. */
const RETRY_MS = 100
const LEADER_TIMEOUT_MS = 10_000
/** Beyond a load run's own length: the last proposals may wait up to the driver's proposal timeout (5 s). */
const LOAD_MARGIN_MS = 30_000
const CALL_TIMEOUT_MS = 5_000
/** USER_HZ, the unit of /proc/stat. */
const CLOCK_TICKS = 100

/** Sequential appends of `bytes` to one file, each followed by fdatasync: what one durable log write costs on this disk. */
async function fsyncBaseline (dir: string, bytes: number, seconds: number): Promise<{ perSecond: number, p50: number, p99: number }> {
  const handle = await open(join(dir, 'fsync-baseline.log'), 'a')
  const record = new Uint8Array(bytes).fill(1)
  const latencies: number[] = []
  try {
    const end = performance.now() + seconds * 1000
    while (performance.now() < end) {
      const t0 = performance.now()
      await handle.write(record)
      await handle.datasync()
      latencies.push(performance.now() - t0)
    }
  } finally {
    await handle.close()
  }
  latencies.sort((a, b) => a - b)
  return { perSecond: latencies.length / seconds, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) }
}

/** Starts member `label` on `dir` (again, given its old `port`), killed at cleanup. */
async function startMember (cleanup: Cleanup, label: string, dir: string, port?: number): Promise<MemberProcess> {
  cleanup.signal.throwIfAborted()
  const spawning = spawnMember(label, dir, port)
  // Registered before the member is ready, so that an interrupt during its start still kills it.
  cleanup.defer(async () => { await (await spawning.catch(() => undefined))?.kill() })
  return spawning
}

async function startCluster (cleanup: Cleanup, root: string): Promise<{ members: MemberProcess[], peers: PeerInfo[] }> {
  const members = await Promise.all([0, 1, 2].map(async (i) => startMember(cleanup, `member ${i}`, await mkdtemp(join(root, `node-${i}-`)))))
  const peers = members.map(m => m.peer)
  await Promise.all(members.map(async m => m.call('join', { peers }, CALL_TIMEOUT_MS)))
  return { members, peers }
}

/** Polls the members until all of `members` name the same leader among them. */
async function leaderOf (members: MemberProcess[], timeoutMs: number): Promise<MemberProcess> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const leaders = await Promise.all(members.map(async m => (await m.call('status', {}, CALL_TIMEOUT_MS)).leader))
    const leader = leaders.every(id => id === leaders[0]) ? members.find(m => m.peer.id === leaders[0]) : undefined
    if (leader != null) return leader
    if (Date.now() > deadline) throw new Error(`no agreed leader within ${timeoutMs} ms (members name ${leaders.map(id => id === '' ? 'none' : id.slice(-8)).join(', ')})`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

/** Busy CPU seconds of the whole machine, from /proc/stat: whatever else runs here competes for the cores. */
async function machineBusySeconds (): Promise<number> {
  // cpu  user nice system idle iowait irq softirq steal ..., in clock ticks
  const ticks = (await readFile('/proc/stat', 'utf8')).split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number)
  return (ticks.reduce((a, b) => a + b, 0) - ticks[3] - ticks[4]) / CLOCK_TICKS
}

/**
 * Runs `fn` and reports the CPU cores each of `pids` (the leader's first),
 * and the whole machine, used meanwhile (1.0 = one core busy).
 */
async function withCpu<T> (pids: number[], fn: () => Promise<T>): Promise<{ value: T, cores: string }> {
  const sample = async (): Promise<{ pids: number[], machine: number }> =>
    ({ pids: await Promise.all(pids.map(cpuSecondsOf)), machine: await machineBusySeconds() })
  const before = await sample()
  const t0 = performance.now()
  const value = await fn()
  const seconds = (performance.now() - t0) / 1000
  const after = await sample()
  const cores = after.pids.map((c, i) => ((c - before.pids[i]) / seconds).toFixed(2))
  const machine = (after.machine - before.machine) / seconds
  return { value, cores: `cores: leader ${cores[0]}, followers ${cores.slice(1).join(' ')}; machine ${machine.toFixed(2)} of ${cpus().length}` }
}

/** SIGKILLs the leader's process and has both survivors propose until one commits; times from the kill to that commit's answer. */
async function failover (members: MemberProcess[], leader: MemberProcess): Promise<number> {
  const survivors = members.filter(m => m !== leader)
  const t0 = performance.now()
  leader.crash()
  const attempts = survivors.map(async (s) => {
    await s.call('commit', { retryMs: RETRY_MS, deadlineMs: LEADER_TIMEOUT_MS }, LEADER_TIMEOUT_MS + CALL_TIMEOUT_MS)
    return performance.now() - t0
  })
  try {
    return await Promise.any(attempts)
  } finally {
    // The other survivor's attempt ends soon after; nothing may be left pending when the members are killed.
    await Promise.allSettled(attempts)
  }
}

function figures (r: LoadResult): string {
  return `${r.perSecond.toFixed(0)} commits/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms`
}

interface Result { name: string, ok: boolean, figure: string }

export async function main (): Promise<number> {
  const seconds = numberFromEnv('BENCH_RAFT_SECONDS', 3, 600)
  const commandBytes = numberFromEnv('BENCH_RAFT_COMMAND_BYTES', 256, 1024 * 1024, { whole: true })
  const kills = numberFromEnv('BENCH_RAFT_FAILOVERS', 20, 1000, { whole: true })
  const profileDir = profileDirFromEnv()
  const loadTimeout = seconds * 1000 + LOAD_MARGIN_MS
  return withCleanup(async (cleanup) => {
    const etcdBinary = await ensureEtcd(cleanup.signal)
    say(`raft bench: 3 daemon Raft members (processes, libp2p) against 3 etcd 3.4 members (${etcdBinary}), all on 127.0.0.1 with data in ${tmpdir()}, fsync on, heartbeat ${TICK_MS} ms, election timeout ${TICK_MS * ELECTION_TICK} ms, ${commandBytes}-byte values, ${seconds} s per run; node ${process.version}, ${cpus().length} cpus, load average ${loadavg().map(l => l.toFixed(2)).join(' ')}${profileDir != null ? `; cpu profiles in ${profileDir}` : ''}`)
    const root = await mkdtemp(join(tmpdir(), 'node-daemon-bench-raft-'))
    cleanup.defer(async () => rm(root, { recursive: true, force: true, maxRetries: 3 }))
    const results: Result[] = []
    const value = new Uint8Array(commandBytes).fill(7)

    const disk = await fsyncBaseline(root, commandBytes + 32, Math.min(seconds, 2))
    say(`disk: ${disk.perSecond.toFixed(0)} sequential fsync'd appends/s, p50 ${disk.p50.toFixed(2)} ms, p99 ${disk.p99.toFixed(2)} ms (write + fdatasync of ${commandBytes + 32} bytes)`)

    const etcd = await startEtcdCluster(etcdBinary, root, cleanup)
    const { members: cluster, peers } = await startCluster(cleanup, root)
    const leader = await leaderOf(cluster, LEADER_TIMEOUT_MS)
    // The leader first, as withCpu reports it.
    const members = [leader, ...cluster.filter(m => m !== leader)]
    const etcdLeader = await etcd.leader()
    const etcdPids = [etcdLeader, ...etcd.urls.filter(u => u !== etcdLeader)].map(u => etcd.pids[etcd.urls.indexOf(u)])
    const etcdPut = etcd.put(etcdLeader, 'bench', value)

    const ours = async (params: { concurrency: number } | { perSecond: number }, run: string): Promise<{ value: LoadResult, cores: string }> => {
      if (profileDir != null) await Promise.all(members.map(async m => m.call('profile', {}, CALL_TIMEOUT_MS)))
      const result = await withCpu(members.map(m => m.pid), async () => 'concurrency' in params
        ? leader.call('closed', { concurrency: params.concurrency, seconds, bytes: commandBytes }, loadTimeout)
        : leader.call('open', { perSecond: params.perSecond, seconds, bytes: commandBytes }, loadTimeout))
      if (profileDir != null) await writeProfiles(members, profileDir, run)
      return result
    }
    const theirs = async (params: { concurrency: number } | { perSecond: number }): Promise<{ value: LoadResult, cores: string }> =>
      withCpu(etcdPids, async () => 'concurrency' in params
        ? closedLoop(etcdPut, params.concurrency, seconds)
        : openLoop(etcdPut, params.perSecond, seconds))

    // Warm-up: the first writes compile the hot paths and open the connections.
    await leader.call('closed', { concurrency: 16, seconds: 0.5, bytes: commandBytes }, loadTimeout)
    await closedLoop(etcdPut, MANY, 0.5)
    const clientPath = await closedLoop(etcd.range(etcdLeader, 'bench'), 1, Math.min(seconds, 1))
    say(`etcd's client path: a serializable range (no Raft) over the same connection takes p50 ${clientPath.p50.toFixed(2)} ms, p99 ${clientPath.p99.toFixed(2)} ms`)

    for (const [name, concurrency, target] of [['1 writer', 1, TARGET_ONE], [`${MANY} writers`, MANY, TARGET_MANY]] as const) {
      const e = await theirs({ concurrency })
      say(`etcd, ${name}: ${figures(e.value)}  [${e.cores}]`)
      const d = await ours({ concurrency }, `${concurrency}-writers`)
      const ratio = d.value.perSecond / e.value.perSecond
      say(`daemon, ${name}: ${figures(d.value)} = ${ratio.toFixed(2)}x etcd's commits/s (target >= ${target.toFixed(1)}x)  [${d.cores}]`)
      results.push({ name, ok: ratio >= target, figure: `${name} ${ratio.toFixed(2)}x etcd (target >= ${target.toFixed(1)}x)` })
    }

    const eo = await theirs({ perSecond: OFFERED_PER_SECOND })
    say(`etcd, ${OFFERED_PER_SECOND} commits/s offered: ${figures(eo.value)}  [${eo.cores}]`)
    const offered = await ours({ perSecond: OFFERED_PER_SECOND }, 'offered')
    const { p99 } = offered.value
    say(`daemon, ${OFFERED_PER_SECOND} commits/s offered: ${figures(offered.value)}; p99 = ${(p99 / eo.value.p99).toFixed(2)}x etcd's (target p99 < ${TARGET_P99_MS} ms)  [${offered.cores}]`)
    results.push({ name: 'latency', ok: p99 < TARGET_P99_MS, figure: `p99 ${p99.toFixed(2)} ms at ${OFFERED_PER_SECOND}/s (target < ${TARGET_P99_MS} ms)` })
    // etcd has no part in the failovers: its cores go back to the daemon's members.
    await etcd.stop()

    const times: number[] = []
    for (let k = 0; k < kills; k++) {
      const current = await leaderOf(members, LEADER_TIMEOUT_MS)
      const ms = await failover(members, current)
      times.push(ms)
      say(`failover ${k + 1}: ${ms.toFixed(0)} ms from SIGKILLing the leader's process to the next committed write`)
      // The killed member comes back on its log, key and port before the next kill.
      const i = members.indexOf(current)
      members[i] = await startMember(cleanup, current.label, current.dir, current.port)
      await members[i].call('join', { peers }, CALL_TIMEOUT_MS)
    }
    const under = times.filter(ms => ms < TARGET_FAILOVER_MS).length
    const sorted = [...times].sort((a, b) => a - b)
    say(`failover: ${under} of ${kills} under ${TARGET_FAILOVER_MS} ms (target ${kills} of ${kills}); p50 ${percentile(sorted, 0.5).toFixed(0)} ms, max ${sorted[sorted.length - 1].toFixed(0)} ms = ${(sorted[sorted.length - 1] / (TICK_MS * ELECTION_TICK)).toFixed(2)}x the election timeout`)
    results.push({ name: 'failover', ok: under === kills, figure: `failover ${under} of ${kills} under ${TARGET_FAILOVER_MS} ms` })

    const missed = results.filter(r => !r.ok)
    say(`summary: ${results.length - missed.length} of ${results.length} targets met${missed.length > 0 ? `; missed: ${missed.map(r => r.figure).join(', ')}` : ''}; load average ${loadavg().map(l => l.toFixed(2)).join(' ')}`)
    return 0
  })
}

/** Stops the members' CPU profiles, started before a run, and writes them to `dir`. */
async function writeProfiles (members: MemberProcess[], dir: string, run: string): Promise<void> {
  await mkdir(dir, { recursive: true })
  const files = members.map((_, i) => join(dir, `raft-${run}-${i === 0 ? 'leader' : `follower-${i}`}-${process.pid}.cpuprofile`))
  await Promise.all(members.map(async (m, i) => m.call('profile', { file: files[i] }, CALL_TIMEOUT_MS)))
  say(`cpu profiles: ${files.join(', ')}`)
}
