/**
 * Content benchmark: add, cat and block transfer through the daemon's Kubo
 * HTTP API, and the daemon's memory while it moves a big file. Add is a ratio
 * to Helia's own importer (ipfs-unixfs-importer with Kubo's defaults into
 * blockstore-fs, in a process of its own) run just before and just after it,
 * and `node-daemon add` (the CLI) a ratio to that HTTP add; the transfer is a
 * ratio to a bare libp2p stream with the daemon's swarm stack and to plain TCP
 * over loopback, both measured in the same run (bench/lib/stream-peer.ts); the
 * other figures are ratios to single-core SHA-256 measured in the same run
 * (the bound every byte of a verified transfer has to pass through).
 *
 * Daemons run as their own processes (`node bin/node-daemon.ts start`), so
 * their RSS can be sampled and so that the bench's own file IO and HTTP client
 * do not share a thread with them. Everything runs on 127.0.0.1.
 *
 * Env: BENCH_ADD_MB (200), BENCH_TRANSFER_MB (100), BENCH_RSS_MB (1024) size
 * the files; BENCH_ONLY=add,transfer,rss picks measurements (add includes cat);
 * BENCH_VERIFY=1 also hashes what cat returns; BENCH_PROFILE_DIR=<dir> writes
 * a --cpu-prof profile per daemon there; BENCH_DAEMON_NODE_OPTIONS adds Node
 * flags to the daemons only.
 */
import { execFile } from 'node:child_process'
import { randomUUID, createHash } from 'node:crypto'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { DEFAULT_MODELS } from '@node-daemon/models'
import { withCleanup } from './lib/cleanup.ts'
import { numberFromEnv, onlyFromEnv, profileDirFromEnv, say } from './lib/cli.ts'
import { memoryOf, nodeBinary, resetPeakRss, ROOT, sampleRssDuring, spawnDaemon, untilModelsListed } from './lib/daemon.ts'
import { MB, multipartFile, sha256Baseline, sha256Throughput, writeRandomFile } from './lib/files.ts'
import { http } from './lib/http.ts'
import { createPhaseLog } from './lib/phases.ts'
import { measureStreamPeer } from './lib/stream-peer.ts'
import type { Cleanup } from './lib/cleanup.ts'
import type { DaemonProcess } from './lib/daemon.ts'
import type { HttpAnswer, HttpOptions } from './lib/http.ts'

/** The daemon's HTTP add against Helia's importer into blockstore-fs, and the CLI's add against the HTTP add. */
const TARGET_ADD = 1.5
const TARGET_CLI_ADD = 0.9
/** Transfer between daemons against a bare libp2p stream on the daemon's own swarm stack, and against plain TCP. */
const TARGET_TRANSFER_LIBP2P = 0.8
const TARGET_TRANSFER_TCP = 0.3
const TARGET_RSS_MB = 300
const BASELINE_RUNS = 3
const BASELINE_MIN_MB = 100
/**
 * Added before the timed add, by the daemon and by Helia's importer alike, so that both are timed
 * with their code compiled. After 4 MB the daemon's 200 MB add read a median of ~135 MB/s, after
 * 64 MB ~165. A daemon's second 200 MB add is faster still (by a quarter, its heap grown).
 */
const WARMUP_MB = 64
/** A request slower than this is taken as hung, and aborted. */
const FLOOR_MBPS = 1
const REQUEST_SLACK_MS = 60_000
/** How long a new daemon may take to register its default models, which the measurements wait out. */
const SETTLE_TIMEOUT_MS = 120_000
const RSS_SAMPLE_MS = 50
/** The largest file size, in MB, the env may ask for. */
const MAX_MB = 65_536

/** Aborted when the bench is interrupted, so that requests in flight end at once. */
let interrupted: AbortSignal = new AbortController().signal

const AREAS = ['add', 'transfer', 'rss'] as const
type Area = typeof AREAS[number]

interface Settings {
  addMB: number
  transferMB: number
  rssMB: number
  only: Set<Area>
  verify: boolean
  profileDir?: string
  daemonNodeOptions?: string
}

function settingsFromEnv (): Settings {
  return {
    addMB: numberFromEnv('BENCH_ADD_MB', 200, MAX_MB),
    transferMB: numberFromEnv('BENCH_TRANSFER_MB', 100, MAX_MB),
    rssMB: numberFromEnv('BENCH_RSS_MB', 1024, MAX_MB),
    only: onlyFromEnv(AREAS, 'measurement'),
    verify: process.env.BENCH_VERIFY === '1',
    profileDir: profileDirFromEnv(),
    daemonNodeOptions: process.env.BENCH_DAEMON_NODE_OPTIONS
  }
}

const bytesOf = (mb: number): number => Math.round(mb * MB)
const fmtMB = (mb: number): string => Number.isInteger(mb) ? String(mb) : mb.toFixed(1)
const timeoutFor = (bytes: number): number => REQUEST_SLACK_MS + Math.ceil(bytes / MB / FLOOR_MBPS) * 1000

/** POSTs to a Kubo RPC route; a non-2xx status becomes an error carrying the daemon's message. Answers the body's text, unless `onData` took it. */
async function rpc (d: DaemonProcess, path: string, params: Record<string, string>, options: Omit<HttpOptions, 'signal'> & { timeoutMs: number }): Promise<string> {
  const url = new URL(`${d.url}/api/v0/${path}`)
  for (const [k, v] of Object.entries(params)) url.searchParams.append(k, v)
  let answer: HttpAnswer
  try {
    answer = await http(url, { ...options, signal: interrupted })
  } catch (err: any) {
    throw new Error(`${d.label}: ${path} failed: ${err.cause?.message ?? err.message}${d.exited() ? `\n--- ${d.label} output ---\n${d.tail()}` : ''}`)
  }
  if (answer.status < 200 || answer.status > 299) throw new Error(`${d.label}: ${path} answered ${answer.status}: ${answer.text}`)
  return answer.text
}

/** Adds one file with Kubo's defaults (CIDv0, 256 KiB chunks, pin=true); returns the root CID. */
async function addFile (d: DaemonProcess, file: string, bytes: number): Promise<string> {
  const boundary = `bench-${randomUUID()}`
  const text = await rpc(d, 'add', { pin: 'true' }, {
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
    body: multipartFile(file, 'bench.bin', boundary),
    timeoutMs: timeoutFor(bytes)
  })
  // Kubo streams NDJSON and reports a late failure as a line with a Message.
  const lines = text.split('\n').filter(l => l.trim() !== '').map(l => JSON.parse(l) as { Hash?: string, Size?: string, Message?: string })
  const failed = lines.find(l => l.Message != null)
  if (failed != null) throw new Error(`${d.label}: add failed: ${failed.Message}`)
  const root = lines.at(-1)
  if (root?.Hash == null) throw new Error(`${d.label}: add returned no CID`)
  return root.Hash
}

/** Reads a file fully with cat; checks its length, and with `sha256` its digest. */
async function catFile (d: DaemonProcess, cid: string, bytes: number, sha256?: string): Promise<void> {
  const hash = sha256 != null ? createHash('sha256') : undefined
  let got = 0
  // Ends when the daemon ends the body, or when the request's timeout aborts it.
  await rpc(d, 'cat', { arg: cid }, {
    timeoutMs: timeoutFor(bytes),
    onData: (chunk) => {
      got += chunk.byteLength
      hash?.update(chunk)
    }
  })
  if (got !== bytes) throw new Error(`${d.label}: cat returned ${got} bytes, expected ${bytes}`)
  if (hash != null && hash.digest('hex') !== sha256) throw new Error(`${d.label}: cat returned other bytes than were added`)
}

/** The daemon's own view of its memory from /metrics (best effort: a blank when unavailable), to tell heap from buffers in an RSS figure. */
async function heapOf (d: DaemonProcess): Promise<string> {
  try {
    const res = await fetch(`${d.url}/metrics`, { signal: AbortSignal.any([AbortSignal.timeout(10_000), interrupted]) })
    const text = await res.text()
    const metric = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) / MB
    const [used, total, external] = ['nodejs_heap_size_used_bytes', 'nodejs_heap_size_total_bytes', 'nodejs_external_memory_bytes'].map(metric)
    if ([used, total, external].some(Number.isNaN)) return ''
    return `heap ${used.toFixed(0)}/${total.toFixed(0)} MB used/total, external ${external.toFixed(0)} MB`
  } catch {
    return ''
  }
}

const run = promisify(execFile)

/**
 * Helia's importer into a fresh blockstore-fs, in a process of its own (see
 * lib/helia-import.ts); the seconds it reports leave out its start-up.
 */
async function heliaImport (root: string, file: string, bytes: number, warmup: string): Promise<{ cid: string, seconds: number }> {
  const dir = await mkdtemp(join(root, 'helia-blocks-'))
  try {
    const { stdout } = await run(nodeBinary(), [join(ROOT, 'bench', 'lib', 'helia-import.ts'), file, dir, warmup], { cwd: ROOT, timeout: timeoutFor(bytes + bytesOf(WARMUP_MB)), signal: interrupted })
    const out = JSON.parse(stdout) as { root: string, seconds: number }
    return { cid: out.root, seconds: out.seconds }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** `node-daemon add -q` of one file, as a user runs it: the wall time includes the command's start-up. */
async function cliAdd (d: DaemonProcess, file: string, bytes: number): Promise<string> {
  const { stdout } = await run(join(ROOT, 'bin', 'node-daemon'), ['add', '-q', '--api', d.url, file], { cwd: ROOT, timeout: timeoutFor(bytes), signal: interrupted })
  return stdout.trim()
}

/** Unpins a root and collects it, so that the next add of the same bytes writes every block again. */
async function dropAdd (d: DaemonProcess, cid: string): Promise<void> {
  await rpc(d, 'pin/rm', { arg: cid }, { timeoutMs: REQUEST_SLACK_MS })
  await rpc(d, 'repo/gc', {}, { timeoutMs: REQUEST_SLACK_MS })
}

/** Every timed phase of the run, written next to the daemons' CPU profiles for bench/cpu-profile.ts. */
const phases = createPhaseLog()

const cores = (n: number): string => n.toFixed(2)

interface Result {
  name: string
  ok: boolean
  figure: string
}

async function startDaemon (cleanup: Cleanup, root: string, s: Settings, label: string): Promise<{ d: DaemonProcess, stop: () => Promise<void> }> {
  const extra = [s.daemonNodeOptions ?? '']
  if (s.profileDir != null) extra.push('--cpu-prof', `--cpu-prof-dir=${s.profileDir}`, `--cpu-prof-name=${label}-${process.pid}.cpuprofile`)
  cleanup.signal.throwIfAborted()
  const spawning = spawnDaemon({ label, repo: join(root, `repo-${label}`), nodeOptions: extra.join(' ').trim(), signal: cleanup.signal })
  // Registered before the daemon is ready, so that an interrupt during its start still stops it.
  const stop = cleanup.defer(async () => { await (await spawning.catch(() => undefined))?.stop() })
  const d = await spawning
  await untilModelsListed(d, Object.values(DEFAULT_MODELS), { timeoutMs: SETTLE_TIMEOUT_MS, signal: cleanup.signal })
  return { d, stop }
}

async function makeFile (cleanup: Cleanup, root: string, name: string, bytes: number): Promise<{ path: string, remove: () => Promise<void> }> {
  cleanup.signal.throwIfAborted()
  const path = join(root, name)
  const remove = cleanup.defer(async () => rm(path, { force: true }))
  await writeRandomFile(path, bytes)
  return { path, remove }
}

async function benchAddCat (cleanup: Cleanup, root: string, s: Settings, file: { path: string, bytes: number, hex: string }, sha: number, results: Result[]): Promise<void> {
  const { d, stop } = await startDaemon(cleanup, root, s, 'add')
  // Warm-up: the first request loads modules and compiles the hot paths. The peer imports the same file first.
  const warm = await makeFile(cleanup, root, 'warmup.bin', bytesOf(WARMUP_MB))
  await catFile(d, await addFile(d, warm.path, bytesOf(WARMUP_MB)), bytesOf(WARMUP_MB))

  const label = `${fmtMB(s.addMB)} MB`
  // The peer runs just before and just after the daemon, and the daemon is held to their mean.
  const peerBefore = await heliaImport(root, file.path, file.bytes, warm.path)
  const { value: add, ...addRss } = await sampleRssDuring(d.pid, async () => phases.timed('add', [d], async () => addFile(d, file.path, file.bytes)), RSS_SAMPLE_MS)
  const peerAfter = await heliaImport(root, file.path, file.bytes, warm.path)
  await warm.remove()
  for (const peer of [peerBefore, peerAfter]) {
    if (peer.cid !== add.value) throw new Error(`Helia's importer made ${peer.cid} of the file, the daemon ${add.value}`)
  }
  const addMbps = file.bytes / MB / add.seconds
  const peerMbps = [peerBefore, peerAfter].map(p => file.bytes / MB / p.seconds)
  const peerMean = (peerMbps[0] + peerMbps[1]) / 2
  const addRatio = addMbps / peerMean
  say(`add ${label}: ${addMbps.toFixed(1)} MB/s = ${addRatio.toFixed(2)} x Helia's importer into blockstore-fs at ${peerMean.toFixed(1)} MB/s (${peerMbps.map(m => m.toFixed(1)).join(' before, ')} after) (target >= ${TARGET_ADD})  [${add.seconds.toFixed(2)} s, daemon cpu ${cores(add.daemonCores[0])} cores, bench cpu ${cores(add.benchCores)}, daemon peak rss ${(Math.max(addRss.peak, addRss.hwm) / MB).toFixed(0)} MB, ${add.value}]`)
  results.push({ name: 'add', ok: addRatio >= TARGET_ADD, figure: `add ${addRatio.toFixed(2)} x helia (target >= ${TARGET_ADD})` })

  const cat = await phases.timed('cat', [d], async () => catFile(d, add.value, file.bytes, s.verify ? file.hex : undefined))
  const catMbps = file.bytes / MB / cat.seconds
  say(`cat ${label}: ${catMbps.toFixed(1)} MB/s = ${(catMbps / sha).toFixed(2)} x sha256 (no target)  [${cat.seconds.toFixed(2)} s, daemon cpu ${cores(cat.daemonCores[0])} cores, bench cpu ${cores(cat.benchCores)}${s.verify ? ', bytes verified' : ''}]`)

  await dropAdd(d, add.value)
  const cli = await phases.timed('cli-add', [d], async () => cliAdd(d, file.path, file.bytes))
  if (cli.value !== add.value) throw new Error(`node-daemon add printed ${cli.value}, the HTTP add answered ${add.value}`)
  const cliMbps = file.bytes / MB / cli.seconds
  const cliRatio = cliMbps / addMbps
  say(`node-daemon add ${label}: ${cliMbps.toFixed(1)} MB/s = ${cliRatio.toFixed(2)} x the HTTP add (target >= ${TARGET_CLI_ADD})  [${cli.seconds.toFixed(2)} s with the command's start-up, daemon cpu ${cores(cli.daemonCores[0])} cores]`)
  results.push({ name: 'cli add', ok: cliRatio >= TARGET_CLI_ADD, figure: `cli add ${cliRatio.toFixed(2)} x http add (target >= ${TARGET_CLI_ADD})` })
  await stop()
}

async function benchTransfer (cleanup: Cleanup, root: string, s: Settings, sha: number, results: Result[]): Promise<void> {
  const bytes = bytesOf(s.transferMB)
  const file = await makeFile(cleanup, root, 'transfer.bin', bytes)
  const [{ d: a, stop: stopA }, { d: b, stop: stopB }] = await Promise.all([
    startDaemon(cleanup, root, s, 'transfer-a'),
    startDaemon(cleanup, root, s, 'transfer-b')
  ])
  const add = await phases.timed('transfer-add', [a], async () => addFile(a, file.path, bytes))
  const hex = s.verify ? (await sha256Throughput(file.path)).hex : undefined
  await file.remove()
  const cid = add.value
  await rpc(b, 'swarm/connect', { arg: a.swarmAddr }, { timeoutMs: 30_000 })
  const cat = await phases.timed('transfer', [a, b], async () => catFile(b, cid, bytes, hex))
  await Promise.all([stopA(), stopB()])
  // The peers run once the daemons are gone, each end its own process as the daemons are.
  const peer = async (kind: 'libp2p' | 'tcp'): Promise<{ mbps: number, detail: string }> => {
    const m = await measureStreamPeer(kind, bytes, cleanup.signal)
    return { mbps: bytes / MB / m.seconds, detail: `${m.seconds.toFixed(2)} s, cpu sender ${cores(m.senderCores)} receiver ${cores(m.receiverCores)} cores` }
  }
  const libp2p = await peer('libp2p')
  const tcp = await peer('tcp')
  const mbps = bytes / MB / cat.seconds
  const toLibp2p = mbps / libp2p.mbps
  const toTcp = mbps / tcp.mbps
  say(`transfer ${fmtMB(s.transferMB)} MB (cat on B of a file added on A: block streams on sealed channels, bitswap as fallback): ${mbps.toFixed(1)} MB/s = ${toLibp2p.toFixed(2)} x a bare libp2p stream (target >= ${TARGET_TRANSFER_LIBP2P}), ${toTcp.toFixed(2)} x plain TCP (target >= ${TARGET_TRANSFER_TCP}), ${(mbps / sha).toFixed(2)} x sha256  [${cat.seconds.toFixed(2)} s, cpu A ${cores(cat.daemonCores[0])} B ${cores(cat.daemonCores[1])} cores, bench cpu ${cores(cat.benchCores)}${s.verify ? ', bytes verified' : ''}; add on A took ${add.seconds.toFixed(2)} s]`)
  say(`  bare libp2p stream (the daemon's swarm options: pnet + noise + yamux, 256 KiB writes): ${libp2p.mbps.toFixed(1)} MB/s [${libp2p.detail}]; plain TCP over loopback: ${tcp.mbps.toFixed(1)} MB/s [${tcp.detail}]`)
  results.push({ name: 'transfer', ok: toLibp2p >= TARGET_TRANSFER_LIBP2P, figure: `transfer ${toLibp2p.toFixed(2)} x libp2p stream (target >= ${TARGET_TRANSFER_LIBP2P})` })
  results.push({ name: 'transfer', ok: toTcp >= TARGET_TRANSFER_TCP, figure: `transfer ${toTcp.toFixed(2)} x TCP (target >= ${TARGET_TRANSFER_TCP})` })
}

async function benchRss (cleanup: Cleanup, root: string, s: Settings, results: Result[]): Promise<void> {
  const bytes = bytesOf(s.rssMB)
  const file = await makeFile(cleanup, root, 'rss.bin', bytes)
  const { d, stop } = await startDaemon(cleanup, root, s, 'rss')
  const idle = await memoryOf(d.pid)
  const idleHeap = await heapOf(d)
  const canReset = await resetPeakRss(d.pid)
  const label = `${fmtMB(s.rssMB)} MB`
  // VmHWM counts from the last reset, or from the start when resetting is refused, which still bounds the add.
  const peakOf = (m: { peak: number, hwm: number }, sinceStartOk: boolean): number => Math.max(m.peak, canReset || sinceStartOk ? m.hwm : 0)

  const { value: add, ...addRss } = await sampleRssDuring(d.pid, async () => phases.timed('rss-add', [d], async () => addFile(d, file.path, bytes)), RSS_SAMPLE_MS)
  const addPeak = peakOf(addRss, true)
  const addHeap = await heapOf(d)
  await file.remove()
  say(`rss add ${label}: peak ${(addPeak / MB).toFixed(0)} MB (target < ${TARGET_RSS_MB} MB)  [idle ${(idle.rss / MB).toFixed(0)} MB${idleHeap !== '' ? ` (${idleHeap})` : ''}, after add: ${addHeap}, add at ${(bytes / MB / add.seconds).toFixed(1)} MB/s, daemon cpu ${cores(add.daemonCores[0])} cores]`)
  results.push({ name: 'rss add', ok: addPeak / MB < TARGET_RSS_MB, figure: `rss add ${(addPeak / MB).toFixed(0)} MB (target < ${TARGET_RSS_MB})` })

  await resetPeakRss(d.pid)
  const { value: cat, ...catRss } = await sampleRssDuring(d.pid, async () => phases.timed('rss-cat', [d], async () => catFile(d, add.value, bytes)), RSS_SAMPLE_MS)
  const catPeak = peakOf(catRss, false)
  const catHeap = await heapOf(d)
  say(`rss cat ${label}: peak ${(catPeak / MB).toFixed(0)} MB (target < ${TARGET_RSS_MB} MB)  [after cat: ${catHeap}${canReset ? '' : ', VmHWM not resettable: sampled every 50 ms only'}, cat at ${(bytes / MB / cat.seconds).toFixed(1)} MB/s, daemon cpu ${cores(cat.daemonCores[0])} cores]`)
  results.push({ name: 'rss cat', ok: catPeak / MB < TARGET_RSS_MB, figure: `rss cat ${(catPeak / MB).toFixed(0)} MB (target < ${TARGET_RSS_MB})` })
  await stop()
}

export async function main (): Promise<number> {
  const s = settingsFromEnv()
  if (s.profileDir != null) await mkdir(s.profileDir, { recursive: true })
  say(`content bench: ${[...s.only].join(', ')}; add ${fmtMB(s.addMB)} MB, transfer ${fmtMB(s.transferMB)} MB, rss ${fmtMB(s.rssMB)} MB (MB = 2^20 bytes); node ${process.version}, ${cpus().length} cpus${s.profileDir != null ? `; cpu profiles in ${s.profileDir}` : ''}`)
  return withCleanup(async (cleanup) => {
    interrupted = cleanup.signal
    const root = await mkdtemp(join(tmpdir(), 'node-daemon-bench-'))
    cleanup.defer(async () => rm(root, { recursive: true, force: true, maxRetries: 3 }))
    const results: Result[] = []

    // The baseline hashes the add file when there is one, else a file of the transfer size.
    const baseMB = s.only.has('add') ? s.addMB : s.only.has('transfer') ? s.transferMB : Math.min(s.rssMB, 200)
    const baseFile = await makeFile(cleanup, root, 'add.bin', bytesOf(baseMB))
    const base = await sha256Baseline(baseFile.path, BASELINE_RUNS, BASELINE_MIN_MB * MB)
    say(`sha256 baseline: ${base.mbps.toFixed(1)} MB/s (single core, node:crypto createHash, median of ${BASELINE_RUNS} runs over the ${fmtMB(baseMB)} MB file)`)

    if (s.only.has('add')) await benchAddCat(cleanup, root, s, { path: baseFile.path, bytes: bytesOf(baseMB), hex: base.hex }, base.mbps, results)
    if (s.only.has('transfer')) await benchTransfer(cleanup, root, s, base.mbps, results)
    if (s.only.has('rss')) await benchRss(cleanup, root, s, results)

    // The machine is shared: a baseline that moved much means the ratios are noisy too.
    const again = await sha256Throughput(baseFile.path, BASELINE_MIN_MB * MB)
    await baseFile.remove()
    const drift = (again.mbps / base.mbps - 1) * 100
    say(`sha256 re-check: ${again.mbps.toFixed(1)} MB/s (${drift >= 0 ? '+' : ''}${drift.toFixed(1)}% against the baseline)`)

    if (s.profileDir != null) {
      const file = await phases.write(s.profileDir)
      say(`cpu profiles: ${s.profileDir}/<daemon>-${process.pid}.cpuprofile; phases in ${file}; summarise with node bench/cpu-profile.ts <profile> [--phase <name>]`)
    }

    const missed = results.filter(r => !r.ok)
    say(`summary: ${results.length - missed.length} of ${results.length} targets met${missed.length > 0 ? `; missed: ${missed.map(r => r.figure).join(', ')}` : ''}; sha256 ${base.mbps.toFixed(1)} MB/s`)
    return 0
  })
}
