/**
 * A Jepsen-style run against real daemons: builds the namespaces, starts the
 * cluster, runs the workload and the nemesis side by side for the time
 * asked, heals everything, waits for the cluster to recover, reads the final
 * state from every node, checks the history, and takes everything down
 * again: processes, namespaces (with their veths, bridge, rules and
 * delayers) and the temporary repos, also when interrupted or failing.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { agreedLeader, call, FAST, waitFor } from '../helpers/cluster.ts'
import { checkHistory, describe } from './check.ts'
import { ChaosCluster } from './cluster.ts'
import { Nemesis, FAULT_KINDS } from './nemesis.ts'
import { ChaosNet, faketimeLibrary, sweepStale } from './net.ts'
import { DEFAULT_MODEL, OP_KINDS, Workload } from './workload.ts'
import type { CheckReport, FinalState } from './check.ts'
import type { ChaosNode } from './cluster.ts'
import type { Fault, FaultKind, NemesisOptions } from './nemesis.ts'
import type { Op, OpKind } from './workload.ts'

export interface ChaosOptions {
  /** How long the workload and the nemesis run, in seconds. */
  seconds: number
  /** Daemons, 3 to 5. */
  nodes: number
  /** Concurrent clients; default two per node. */
  clients?: number
  /** Operations per second of all clients together. */
  rate?: number
  /** A directory for the history, the faults and the daemons' logs. */
  out?: string
  /** How long faults are held and the quiet between them (the nemesis's defaults otherwise). */
  pace?: Pick<NemesisOptions, 'holdMs' | 'quietMs'>
  log?: (line: string) => void
}

export interface ChaosSummary {
  seconds: number
  nodes: number
  ops: Record<OpKind, { ok: number, fail: number, info: number }>
  faults: Fault[]
  report: CheckReport
  /** Prompts of acknowledged jobs that a node could not read once every fault had healed (see unreadablePrompts). */
  unreadable: string[]
  /** Faults that libfaketime could not make: why. */
  notes: string[]
}

/** A GET that names the node and the path when it fails. */
async function get (node: ChaosNode, path: string, timeoutMs = 60_000): Promise<any> {
  try {
    const res = await call(node, path, { signal: AbortSignal.timeout(timeoutMs) })
    if (res.status !== 200) throw new Error(`status ${res.status}: ${JSON.stringify(res.body)}`)
    return res.body
  } catch (err: any) {
    throw new Error(`GET ${path} on ${node.host.name}: ${err.message}`, { cause: err })
  }
}

/** A leader, every node ready, and every node caught up with what the leader had committed. */
async function recovered (nodes: ChaosNode[]): Promise<void> {
  await agreedLeader(nodes, 180_000)
  const target = Math.max(...await Promise.all(nodes.map(async n => (await get(n, '/api/v1/consensus/status')).commit_index as number)))
  await waitFor(`every node to apply index ${target}`, async () => {
    const applied = await Promise.all(nodes.map(async n => (await get(n, '/api/v1/consensus/status')).applied_index as number))
    return applied.every(a => a >= target)
  }, 120_000)
}

/**
 * What a node holds, from its own applied state, once it has caught up: its
 * pinset, and from its decisions (the state keeps the last 10,000, which
 * must reach back to the start) each model version with its CID and each
 * job with its prompt, beside the size of its job table. Nothing here reads
 * content, which a node may fail to find.
 */
async function finalState (node: ChaosNode, workload: Workload, startIndex: number): Promise<FinalState> {
  const pins = (await get(node, '/api/v0/cluster/pins?local=true')).pins.map((p: any) => p.cid as string).filter((c: string) => workload.pinKeys.includes(c))
  const decisions = (await get(node, '/api/v1/consensus/history?local=true&limit=100000')).decisions as Array<{ index: number, op: string, outcome: string, summary: string }>
  if (decisions.length === 0 || decisions[0].index > startIndex) throw new Error(`${node.host.name}'s decisions start at index ${decisions[0]?.index}, after the run's start at ${startIndex}: lower --rate`)
  const models: FinalState['models'] = {}
  const jobs: FinalState['jobs'] = []
  for (const d of decisions) {
    if (d.outcome !== 'committed') continue
    const job = d.op === 'job.submit' ? /^job (\d+): \S+ of \S+ on (\S+)$/.exec(d.summary) : null
    if (job != null) jobs.push({ jobId: Number(job[1]), promptCID: job[2] })
    const registered = /^register model (\S+) = (\S+)$/.exec(d.summary)
    const updated = /^model (\S+) v(\d+)(?: = (\S+)|: metadata)$/.exec(d.summary)
    const id = registered?.[1] ?? updated?.[1]
    if (id == null || !workload.modelIds.includes(id)) continue
    const version = registered != null ? 1 : Number(updated?.[2])
    const cid = registered?.[2] ?? updated?.[3] ?? models[id]?.cid ?? ''
    const m = models[id] ??= { version, cid, versions: [] }
    m.version = version
    m.cid = cid
    m.versions.push({ version, cid })
  }
  const current = (await get(node, '/api/models?local=true')).models as Array<{ id: string, cid: string }>
  for (const id of workload.modelIds) {
    const listed = current.find(m => m.id === id)
    if ((listed?.cid ?? null) !== (models[id]?.cid ?? null)) throw new Error(`${node.host.name}: the registry says ${id} is ${listed?.cid}, its decisions say ${models[id]?.cid}`)
  }
  const jobTable = (await get(node, '/api/metrics?local=true')).tasks.total as number
  return { node: node.host.name, pins, models, jobs, jobTable }
}

/** How long a node may take to read a prompt that another node holds, once every fault has healed. */
const CONTENT_READ_MS = 10_000
/** Reads through one node that may fail before the node is taken as unable to read at all. */
const CONTENT_FAILURES_PER_NODE = 3

/**
 * Reads the prompt of every acknowledged job through every node. The node it
 * was submitted through holds it on disk, and is back and connected: each
 * read must answer with the prompt within CONTENT_READ_MS, whichever node
 * holds it. A node that had lost sight of a connected peer's blocks waited for
 * the content deadline instead (2 minutes a block).
 */
async function unreadablePrompts (nodes: ChaosNode[], history: Op[]): Promise<string[]> {
  const jobs = history.flatMap(op => op.type === 'ok' && op.result?.kind === 'job.submit' && op.args?.prompt != null
    ? [{ jobId: op.result.jobId, cid: op.result.promptCID, prompt: op.args.prompt, via: op.node }]
    : [])
  const failures = await Promise.all(nodes.map(async node => {
    const failed: string[] = []
    for (const job of jobs) {
      if (failed.length === CONTENT_FAILURES_PER_NODE) {
        failed.push(`${node.host.name}: not tried further`)
        break
      }
      const what = `${node.host.name} reading job ${job.jobId}'s prompt ${job.cid} (submitted through ${job.via})`
      try {
        const res = await fetch(`${node.api}/api/v0/cat?arg=${job.cid}`, { method: 'POST', signal: AbortSignal.timeout(CONTENT_READ_MS) })
        const text = await res.text()
        if (res.status !== 200 || text !== job.prompt) failed.push(`${what}: ${res.status} ${text.slice(0, 200)}`)
      } catch (err: any) {
        failed.push(`${what}: ${err.name === 'TimeoutError' ? `no answer within ${CONTENT_READ_MS} ms` : err.message}`)
      }
    }
    return failed
  }))
  return failures.flat()
}

/** The CID the daemon gives each prompt it stores, as `add` computes it. */
async function promptCIDs (node: ChaosNode, prompts: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (const prompt of prompts) {
    const form = new FormData()
    form.append('file', new Blob([prompt]), 'prompt')
    const res = await call(node, '/api/v0/add?only-hash=true&pin=false', { method: 'POST', body: form })
    if (res.status !== 200) throw new Error(`add?only-hash on ${node.host.name}: ${res.status} ${JSON.stringify(res.body)}`)
    out.set(prompt, res.body.Hash)
  }
  return out
}

export async function runChaos (opts: ChaosOptions, signal?: AbortSignal): Promise<ChaosSummary> {
  const log = opts.log ?? (() => {})
  for (const ns of sweepStale()) log(`swept ${ns}, left by a run that died`)
  const faketime = faketimeLibrary()
  const notes = faketime == null ? ['no clock faults: libfaketime is not installed (Debian package libfaketime)'] : []
  const dir = await mkdtemp(join(tmpdir(), 'node-daemon-chaos-'))
  const net = new ChaosNet()
  // Heartbeats and timeouts of the integration tests; snapshots often, so that followers catch up from them too.
  const cluster = new ChaosCluster(net, { ...FAST, snapshot_every: 500 }, dir, faketime)
  // should the process go down without unwinding, nothing stays behind
  const emergency = (): void => {
    cluster.killAll()
    net.destroy()
    rmSync(dir, { recursive: true, force: true })
  }
  process.on('exit', emergency)
  try {
    await net.create(opts.nodes)
    log(`network ${net.subnet}.0/24: ${net.hosts.map(h => `${h.name} ${h.ip}`).join(', ')}`)
    await cluster.start()
    const first = cluster.nodes[0]
    const base = await waitFor('the default model registered', async () => {
      const models = (await call(first, '/api/models')).body.models as Array<{ id: string, cid: string }>
      return models.find(m => m.id === `${DEFAULT_MODEL}:latest`)
    }, 120_000)
    const before = (await call(first, '/api/tasks?limit=1')).body.tasks as Array<{ jobId: number }>
    const firstJobId = (before[0]?.jobId ?? 0) + 1
    const startIndex = (await get(first, '/api/v1/consensus/status')).commit_index as number
    log(`cluster of ${opts.nodes} up: ${cluster.nodes.map(n => `${n.host.name} ${n.peerId.slice(-6)}`).join(', ')}`)

    const runId = `${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`
    const workload = new Workload(cluster.nodes, { runId, clients: opts.clients ?? 2 * opts.nodes, rate: opts.rate, firstJobId })
    const nemesis = new Nemesis(net, cluster, { ...opts.pace, clock: faketime != null, now: () => workload.now(), log })
    const stop = new AbortController()
    const timer = setTimeout(() => stop.abort(), opts.seconds * 1000)
    const onAbort = (): void => stop.abort()
    signal?.addEventListener('abort', onAbort)
    const progress = setInterval(() => {
      const counts = { ok: 0, fail: 0, info: 0 }
      for (const op of workload.history) if (op.type !== 'pending') counts[op.type]++
      log(`${(workload.now() / 1000).toFixed(0)}s: ${workload.history.length} ops (${counts.ok} ok, ${counts.fail} fail, ${counts.info} info), ${nemesis.faults.length} faults`)
    }, 30_000)
    try {
      // the nemesis failing (a daemon that will not restart) ends the run too
      await Promise.all([workload.run(stop.signal), nemesis.run(stop.signal).catch((err: Error) => { stop.abort(); throw err })])
    } finally {
      clearTimeout(timer)
      clearInterval(progress)
      signal?.removeEventListener('abort', onAbort)
    }
    signal?.throwIfAborted()
    const seconds = workload.now() / 1000

    log('healing, and waiting for the cluster to recover')
    await nemesis.healAll()
    await recovered(cluster.nodes)
    // final linearizable reads through every node, part of the history
    for (const node of cluster.nodes) {
      for (const kind of ['pin.read', 'model.read'] as const) {
        const op = await workload.invoke(-1, node, kind)
        if (op.type !== 'ok') throw new Error(`the final ${kind} through ${node.host.name} failed: ${op.error}`)
      }
    }
    await recovered(cluster.nodes)
    const finals = await Promise.all(cluster.nodes.map(async n => finalState(n, workload, startIndex)))
    const prompts = workload.history.flatMap(op => op.kind === 'job.submit' && op.args?.prompt != null ? [op.args.prompt] : [])
    const cids = await promptCIDs(first, prompts)
    for (const op of workload.history) {
      if (op.result?.kind === 'job.submit' && cids.get(op.args?.prompt ?? '') !== op.result.promptCID) throw new Error(`add computes ${cids.get(op.args?.prompt ?? '')} for the prompt of op ${op.index}, the daemon stored ${op.result.promptCID}`)
    }
    log(`checking ${workload.history.length} operations`)
    const report = checkHistory({ history: workload.history, pinKeys: workload.pinKeys, modelIds: workload.modelIds, registerCID: base.cid, firstJobId, promptCIDs: cids, finals })
    const unreadable = await unreadablePrompts(cluster.nodes, workload.history)

    const ops = Object.fromEntries(OP_KINDS.map(k => [k, { ok: 0, fail: 0, info: 0 }])) as ChaosSummary['ops']
    for (const op of workload.history) if (op.type !== 'pending') ops[op.kind][op.type]++
    if (opts.out != null) {
      await mkdir(opts.out, { recursive: true })
      await writeFile(join(opts.out, 'history.txt'), workload.history.map(describe).join('\n') + '\n')
      await writeFile(join(opts.out, 'faults.txt'), nemesis.faults.map(f => `${(f.start / 1000).toFixed(1)}-${((f.end ?? f.start) / 1000).toFixed(1)}s ${f.kind} ${f.detail}`).join('\n') + '\n')
    }
    return { seconds, nodes: opts.nodes, ops, faults: nemesis.faults, report, unreadable, notes }
  } finally {
    if (opts.out != null) {
      await mkdir(opts.out, { recursive: true }).catch(() => {})
      for (const n of cluster.nodes) await writeFile(join(opts.out, `${n.host.name}.log`), [...n.past, n.alive ? n.proc.stderr() : ''].join('\n--- restart ---\n')).catch(() => {})
    }
    await cluster.stop()
    await net.heal().catch(() => {})
    net.destroy()
    await rm(dir, { recursive: true, force: true })
    process.off('exit', emergency)
  }
}

/** Whether the run found anything: violations, lost writes, or prompts a node could not read. */
export function failed (s: ChaosSummary): boolean {
  return s.report.violations.length > 0 || s.report.lost.length > 0 || s.unreadable.length > 0
}

export function formatSummary (s: ChaosSummary): string {
  const lines: string[] = []
  const total = Object.values(s.ops).reduce((n, c) => n + c.ok + c.fail + c.info, 0)
  lines.push(`chaos: ${s.nodes} daemons, ${s.seconds.toFixed(0)} s, ${total} operations`)
  lines.push(`  ${'operation'.padEnd(16)}${'ok'.padStart(7)}${'fail'.padStart(7)}${'info'.padStart(7)}`)
  for (const [kind, c] of Object.entries(s.ops)) lines.push(`  ${kind.padEnd(16)}${String(c.ok).padStart(7)}${String(c.fail).padStart(7)}${String(c.info).padStart(7)}`)
  const byKind = new Map<FaultKind, number>(FAULT_KINDS.map(k => [k, 0]))
  for (const f of s.faults) byKind.set(f.kind, (byKind.get(f.kind) ?? 0) + 1)
  lines.push(`faults: ${s.faults.length} (${[...byKind].map(([k, n]) => `${k} ${n}`).join(', ')})`)
  for (const f of s.faults.filter(f => f.kind === 'clock')) lines.push(`  clock: ${f.detail}`)
  for (const note of s.notes) lines.push(`  note: ${note}`)
  const r = s.report
  lines.push(`linearizability: ${r.checked.pins} pins, ${r.checked.models} models, the job table; ${r.inconclusive.length} inconclusive`)
  for (const i of r.inconclusive) lines.push(`  inconclusive: ${i}`)
  lines.push(`violations: ${r.violations.length}`)
  for (const v of r.violations) lines.push(`  ${v.what}${v.detail === '' ? '' : `\n    ${v.detail.replaceAll('\n', '\n    ')}`}`)
  lines.push(`lost acknowledged writes: ${r.lost.length}`)
  for (const l of r.lost) lines.push(`  ${l.what}: ${l.detail}`)
  const prompts = s.ops['job.submit'].ok
  lines.push(`unreadable prompts: ${s.unreadable.length} (${prompts} read through each of ${s.nodes} nodes)`)
  for (const u of s.unreadable) lines.push(`  ${u}`)
  return lines.join('\n')
}
