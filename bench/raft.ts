/**
 * Raft benchmark: three members, each in a Node process of its own
 * (bench/lib/raft-member.ts) as in a deployment, over libp2p on 127.0.0.1,
 * each with its durable log in a temp dir, at the driver's default timeouts
 * (tickMs 100, electionTick 10). Prints commits/s with 1 and with 64
 * concurrent proposers, commit latency at a fixed offered load, and the
 * failover time from SIGKILLing the leader's process to the next committed
 * write. Proposers run in the leader's process, as co-located clients would,
 * and latencies are measured there.
 *
 * Machines are noisy, so each figure comes with a ratio to a baseline taken
 * in the same run: the disk's sequential fsync'd appends (a commit waits for
 * the leader's fsync and, in parallel, a round trip to a follower and its
 * fsync) and,
 * for failover, the configured election timeout. Each line also gives the CPU
 * cores each member used: three members share this machine's cores.
 *
 * Env: BENCH_RAFT_SECONDS (3) is the length of each throughput and latency
 * run; BENCH_RAFT_COMMAND_BYTES (64) the size of each command;
 * BENCH_PROFILE_DIR=<dir> writes a CPU profile of each member over the
 * offered-load run there (summarise with node bench/cpu-profile.ts <file>).
 */
import { mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { withCleanup } from './lib/cleanup.ts'
import { numberFromEnv, profileDirFromEnv, say } from './lib/cli.ts'
import { cpuSecondsOf } from './lib/daemon.ts'
import { spawnMember } from './lib/raft-cluster.ts'
import { percentile } from './lib/raft-load.ts'
import type { Cleanup } from './lib/cleanup.ts'
import type { MemberProcess } from './lib/raft-cluster.ts'

const TARGET_COMMITS = 10_000
const TARGET_P99_MS = 20
const TARGET_FAILOVER_MS = 1_500
const OFFERED_PER_SECOND = 1_000
/** The driver's defaults, which the members run with. */
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

async function startCluster (cleanup: Cleanup, root: string): Promise<MemberProcess[]> {
  const members = await Promise.all([0, 1, 2].map(async (i) => {
    cleanup.signal.throwIfAborted()
    const dir = await mkdtemp(join(root, `node-${i}-`))
    const spawning = spawnMember(`member ${i}`, dir)
    // Registered before the member is ready, so that an interrupt during its start still kills it.
    cleanup.defer(async () => { await (await spawning.catch(() => undefined))?.kill() })
    return spawning
  }))
  const peers = members.map(m => m.peer)
  await Promise.all(members.map(async m => m.call('join', { peers }, CALL_TIMEOUT_MS)))
  return members
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

/** Runs `fn` and reports the CPU cores each member, and the whole machine, used meanwhile (1.0 = one core busy). */
async function withCpu<T> (members: MemberProcess[], fn: () => Promise<T>): Promise<{ value: T, cores: string }> {
  const sample = async (): Promise<{ members: number[], machine: number }> =>
    ({ members: await Promise.all(members.map(async m => cpuSecondsOf(m.pid))), machine: await machineBusySeconds() })
  const before = await sample()
  const t0 = performance.now()
  const value = await fn()
  const seconds = (performance.now() - t0) / 1000
  const after = await sample()
  const cores = after.members.map((c, i) => ((c - before.members[i]) / seconds).toFixed(2))
  const machine = (after.machine - before.machine) / seconds
  return { value, cores: `cpu cores: leader ${cores[0]}, followers ${cores.slice(1).join(' ')}; machine ${machine.toFixed(2)} of ${cpus().length} busy` }
}

/** SIGKILLs the leader's process and has both survivors propose until one commits; times from the kill to that commit's answer. */
async function failover (members: MemberProcess[]): Promise<{ ms: number, newLeader: string }> {
  const leader = await leaderOf(members, LEADER_TIMEOUT_MS)
  const survivors = members.filter(m => m !== leader)
  const t0 = performance.now()
  leader.crash()
  const attempts = survivors.map(async (s) => {
    const { leader: newLeader } = await s.call('commit', { retryMs: RETRY_MS, deadlineMs: LEADER_TIMEOUT_MS }, LEADER_TIMEOUT_MS + CALL_TIMEOUT_MS)
    return { ms: performance.now() - t0, newLeader }
  })
  try {
    return await Promise.any(attempts)
  } finally {
    // The other survivor's attempt ends soon after; nothing may be left pending when the members are killed.
    await Promise.allSettled(attempts)
  }
}

interface Result { name: string, ok: boolean, figure: string }

export async function main (): Promise<number> {
  const seconds = numberFromEnv('BENCH_RAFT_SECONDS', 3, 600)
  const commandBytes = numberFromEnv('BENCH_RAFT_COMMAND_BYTES', 64, 1024 * 1024)
  const profileDir = profileDirFromEnv()
  const loadTimeout = seconds * 1000 + LOAD_MARGIN_MS
  say(`raft bench: 3 member processes over libp2p on 127.0.0.1, durable logs in ${tmpdir()}, tickMs ${TICK_MS}, electionTick ${ELECTION_TICK}, ${commandBytes}-byte commands, ${seconds} s per run; node ${process.version}, ${cpus().length} cpus, load average ${loadavg()[0].toFixed(2)}${profileDir != null ? `; cpu profiles in ${profileDir}` : ''}`)
  return withCleanup(async (cleanup) => {
    const root = await mkdtemp(join(tmpdir(), 'node-daemon-bench-raft-'))
    cleanup.defer(async () => rm(root, { recursive: true, force: true, maxRetries: 3 }))
    const results: Result[] = []

    const disk = await fsyncBaseline(root, commandBytes + 32, Math.min(seconds, 2))
    say(`fsync baseline: ${disk.perSecond.toFixed(0)} sequential fsync'd appends/s, p50 ${disk.p50.toFixed(2)} ms, p99 ${disk.p99.toFixed(2)} ms (write + fdatasync of ${commandBytes + 32} bytes)`)

    const cluster = await startCluster(cleanup, root)
    const leader = await leaderOf(cluster, LEADER_TIMEOUT_MS)
    // The leader first, as withCpu reports it.
    const members = [leader, ...cluster.filter(m => m !== leader)]
    // Warm-up: the first proposals compile the hot paths and open the streams.
    await leader.call('closed', { concurrency: 16, seconds: 0.5, bytes: commandBytes }, loadTimeout)

    const one = await withCpu(members, async () => leader.call('closed', { concurrency: 1, seconds, bytes: commandBytes }, loadTimeout))
    say(`commits/s, 1 proposer: ${one.value.perSecond.toFixed(0)} = ${(one.value.perSecond / disk.perSecond).toFixed(2)} x fsync appends/s (no target; a commit waits for a follower's fsync and a round trip)  [p50 ${one.value.p50.toFixed(2)} ms = ${(one.value.p50 / disk.p50).toFixed(1)} x fsync p50, p99 ${one.value.p99.toFixed(2)} ms; ${one.cores}]`)

    const many = await withCpu(members, async () => leader.call('closed', { concurrency: 64, seconds, bytes: commandBytes }, loadTimeout))
    const manyPerSecond = many.value.perSecond
    say(`commits/s, 64 proposers: ${manyPerSecond.toFixed(0)} = ${(manyPerSecond / disk.perSecond).toFixed(2)} x fsync appends/s (target >= ${TARGET_COMMITS} commits/s with batching)  [p50 ${many.value.p50.toFixed(2)} ms, p99 ${many.value.p99.toFixed(2)} ms; ${many.cores}]`)
    results.push({ name: 'throughput', ok: manyPerSecond >= TARGET_COMMITS, figure: `${manyPerSecond.toFixed(0)} commits/s (target >= ${TARGET_COMMITS})` })

    if (profileDir != null) {
      await mkdir(profileDir, { recursive: true })
      await Promise.all(members.map(async m => m.call('profile', {}, CALL_TIMEOUT_MS)))
    }
    const offered = await withCpu(members, async () => leader.call('open', { perSecond: OFFERED_PER_SECOND, seconds, bytes: commandBytes }, loadTimeout))
    if (profileDir != null) {
      const files = members.map((_, i) => join(profileDir, `raft-${i === 0 ? 'leader' : `follower-${i}`}-${process.pid}.cpuprofile`))
      await Promise.all(members.map(async (m, i) => m.call('profile', { file: files[i] }, CALL_TIMEOUT_MS)))
      say(`cpu profiles of the offered-load run: ${files.join(', ')}`)
    }
    const { p50, p99 } = offered.value
    say(`commit latency at ${OFFERED_PER_SECOND} commits/s offered (${offered.value.perSecond.toFixed(0)} achieved): p50 ${p50.toFixed(2)} ms = ${(p50 / disk.p50).toFixed(1)} x fsync p50, p99 ${p99.toFixed(2)} ms = ${(p99 / disk.p99).toFixed(1)} x fsync p99 (target p99 < ${TARGET_P99_MS} ms)  [${offered.cores}]`)
    results.push({ name: 'latency', ok: p99 < TARGET_P99_MS, figure: `p99 ${p99.toFixed(2)} ms (target < ${TARGET_P99_MS})` })

    const electionMs = TICK_MS * ELECTION_TICK
    const fo = await failover(members)
    say(`failover: ${fo.ms.toFixed(0)} ms from SIGKILLing the leader's process to the next committed write = ${(fo.ms / electionMs).toFixed(2)} x the ${electionMs} ms election timeout (target < ${TARGET_FAILOVER_MS} ms; followers that see the leader's connection close campaign after a tick plus up to half an election timeout)  [new leader ${fo.newLeader.slice(-8)}]`)
    results.push({ name: 'failover', ok: fo.ms < TARGET_FAILOVER_MS, figure: `failover ${fo.ms.toFixed(0)} ms (target < ${TARGET_FAILOVER_MS})` })

    const missed = results.filter(r => !r.ok)
    say(`summary: ${results.length - missed.length} of ${results.length} targets met${missed.length > 0 ? `; missed: ${missed.map(r => r.figure).join(', ')}` : ''}; fsync ${disk.perSecond.toFixed(0)} appends/s`)
    return 0
  })
}
