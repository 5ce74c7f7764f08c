import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { statfs } from 'node:fs/promises'
import { createRequire } from 'node:module'
import os from 'node:os'
import { dirname, join } from 'node:path'
import type { GpuInfo, Resources } from './types.ts'

/** GPUs and execution providers change rarely and cost a process or a native load to find. */
const SLOW_PROBE_TTL_MS = 60_000
const NVIDIA_SMI_TIMEOUT_MS = 2_000
const MIB = 1_048_576
/** Shorter windows give noisy usage, e.g. an API read right after a heartbeat's measurement. */
const MIN_CPU_WINDOW_MS = 250

/** Providers that need an NVIDIA GPU, which nvidia-smi finds. */
const NVIDIA_PROVIDERS = new Set(['cuda', 'tensorrt'])

interface CpuSample { idle: number, total: number }

let lastCpu: { sample: CpuSample, usage: number } | undefined
let slowProbe: { at: number, value: Promise<{ gpus: GpuInfo[], executionProviders: string[] }> } | undefined

/**
 * Measures this machine: CPU, memory, the disk that holds `repoDir`, GPUs and
 * the onnxruntime execution providers it can run. CPU usage is the busy share
 * since the previous call (the 1-minute load per core on the first); GPUs and
 * providers are probed at most once a minute.
 */
/** `auto` takes CUDA where onnxruntime can run it on a GPU of this node, else the CPU. */
export function chooseExecutionProvider (preference: 'auto' | 'cpu' | 'cuda', available: string[]): 'cpu' | 'cuda' {
  if (preference !== 'auto') return preference
  return available.includes('cuda') ? 'cuda' : 'cpu'
}

export async function measureResources (repoDir: string, options: { signal?: AbortSignal, executionProvider?: 'auto' | 'cpu' | 'cuda' } = {}): Promise<Resources> {
  options.signal?.throwIfAborted()
  const [disk, slow] = await Promise.all([
    diskOf(repoDir),
    abortable(slowResources(), options.signal)
  ])
  options.signal?.throwIfAborted()
  return {
    cpu: cpuNow(),
    memory: memoryNow(),
    gpus: slow.gpus,
    disk,
    executionProviders: slow.executionProviders,
    executionProvider: chooseExecutionProvider(options.executionProvider ?? 'auto', slow.executionProviders)
  }
}

function cpuNow (): Resources['cpu'] {
  const cpus = os.cpus()
  const cores = os.availableParallelism()
  // As a fraction of the cores, like usage, so that nodes of any size compare; above 1 when overloaded.
  const load1 = os.loadavg()[0] / cores
  const sample = cpus.reduce<CpuSample>((s, c) => {
    const { user, nice, sys, idle, irq } = c.times
    return { idle: s.idle + idle, total: s.total + user + nice + sys + idle + irq }
  }, { idle: 0, total: 0 })
  const elapsed = lastCpu == null ? 0 : sample.total - lastCpu.sample.total
  let usage: number
  if (lastCpu != null && elapsed >= MIN_CPU_WINDOW_MS * cpus.length) {
    usage = clamp(1 - (sample.idle - lastCpu.sample.idle) / elapsed)
    lastCpu = { sample, usage }
  } else if (lastCpu != null) {
    // Too soon after the last measurement: repeat it and keep the window open.
    usage = lastCpu.usage
  } else {
    usage = clamp(load1)
    lastCpu = { sample, usage }
  }
  return { cores, model: cpus[0]?.model.trim() || 'unknown', load1, usage }
}

function usedFraction (total: number, free: number): number {
  return total > 0 ? (total - free) / total : 0
}

/** What a machine uses, as fractions of 1; `gpu` is VRAM in use, null without GPUs. */
export function usageOf (r: Resources): { cpu: number, memory: number, gpu: number | null, disk: number } {
  const vramTotal = r.gpus.reduce((sum, g) => sum + g.vram.total, 0)
  const vramUsed = r.gpus.reduce((sum, g) => sum + g.vram.used, 0)
  return {
    cpu: r.cpu.usage,
    memory: usedFraction(r.memory.total, r.memory.free),
    gpu: vramTotal > 0 ? vramUsed / vramTotal : null,
    disk: usedFraction(r.disk.total, r.disk.free)
  }
}

function clamp (fraction: number): number {
  return Math.min(1, Math.max(0, fraction))
}

function memoryNow (): Resources['memory'] {
  // In a container the cgroup limit, not the host's memory, is what the node may use.
  const limit = process.constrainedMemory()
  const total = limit > 0 && limit < os.totalmem() ? limit : os.totalmem()
  return { total, free: Math.min(total, process.availableMemory()) }
}

async function diskOf (dir: string): Promise<Resources['disk']> {
  // Before the first start the repo may not exist yet: its nearest existing parent is on the same disk, usually.
  let path = dir
  while (!existsSync(path) && dirname(path) !== path) path = dirname(path)
  const s = await statfs(path)
  return { total: s.blocks * s.bsize, free: s.bavail * s.bsize }
}

/** Shared by concurrent callers, so it runs without their signals; each caller's own signal only stops its wait. */
async function slowResources (): Promise<{ gpus: GpuInfo[], executionProviders: string[] }> {
  if (slowProbe == null || Date.now() - slowProbe.at > SLOW_PROBE_TTL_MS) {
    const value = (async () => {
      const gpus = await nvidiaGpus()
      return { gpus, executionProviders: await executionProviders(gpus) }
    })()
    slowProbe = { at: Date.now(), value }
  }
  return slowProbe.value
}

/** NVIDIA GPUs by nvidia-smi; none when the tool is missing, fails or hangs. */
async function nvidiaGpus (): Promise<GpuInfo[]> {
  const out = await new Promise<string | undefined>((resolve) => {
    execFile('nvidia-smi', ['--query-gpu=index,name,memory.total,memory.used', '--format=csv,noheader,nounits'],
      { timeout: NVIDIA_SMI_TIMEOUT_MS, windowsHide: true },
      (err, stdout) => { resolve(err == null ? stdout : undefined) })
  })
  if (out == null) return []
  return parseNvidiaSmi(out)
}

/** Lines of `index, name, memory.total, memory.used` in MiB; lines that do not parse are skipped. */
export function parseNvidiaSmi (csv: string): GpuInfo[] {
  const gpus: GpuInfo[] = []
  for (const line of csv.split('\n')) {
    const fields = line.split(',').map(f => f.trim())
    if (fields.length < 4) continue
    // A name may hold commas: index first, the two sizes last.
    const id = Number(fields[0])
    const total = Number(fields.at(-2))
    const used = Number(fields.at(-1))
    if (!Number.isInteger(id) || !Number.isFinite(total) || !Number.isFinite(used)) continue
    gpus.push({ id, name: fields.slice(1, -2).join(', '), vram: { total: total * MIB, used: used * MIB } })
  }
  return gpus
}

/**
 * The onnxruntime execution providers this node can run: those built into
 * onnxruntime-node, plus those whose provider library was installed beside it
 * (CUDA's is downloaded by its postinstall); GPU providers only with a GPU.
 */
async function executionProviders (gpus: GpuInfo[]): Promise<string[]> {
  let backends: Array<{ name: string, bundled: boolean }>
  let binDir: string
  try {
    const ort = await import('onnxruntime-node')
    backends = ort.listSupportedBackends()
    binDir = join(dirname(createRequire(import.meta.url).resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch)
  } catch {
    // No runtime means no local inference, which is a fact to report, not a failure.
    return []
  }
  const providerLib = (name: string): string => process.platform === 'win32' ? `onnxruntime_providers_${name}.dll` : `libonnxruntime_providers_${name}.so`
  const names = backends
    .filter(b => b.bundled || existsSync(join(binDir, providerLib(b.name))))
    .map(b => b.name.toLowerCase())
    .filter(name => !NVIDIA_PROVIDERS.has(name) || gpus.length > 0)
    // nvidia-smi sees no other GPUs, so WebGPU is trusted only where every machine has one (macOS) or a GPU was found.
    .filter(name => name !== 'webgpu' || process.platform === 'darwin' || gpus.length > 0)
  return [...new Set(names)]
}

async function abortable<T> (promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (signal == null) return promise
  signal.throwIfAborted()
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => { reject(signal.reason) }
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(resolve, reject).finally(() => { signal.removeEventListener('abort', onAbort) })
  })
}
