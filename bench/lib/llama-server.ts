/**
 * llama.cpp's own HTTP server, the inference bench's peer: what a user who
 * picks llama.cpp over the daemon runs; and llama.cpp's own batched bench,
 * its decode loop with nothing around it. They are built at bench time, once, from
 * the llama.cpp source node-llama-cpp ships (its gitRelease.bundle), so that
 * they are the llama.cpp the daemon's GGUF engine runs, and kept under
 * ~/.cache for later runs; and so is node-llama-cpp's own build of that
 * source for this machine, which the daemon then runs, so that both sides
 * run llama.cpp compiled for this CPU. Never built or run by the test suite.
 */
import { execFile, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile, rm } from 'node:fs/promises'
import { cpus, homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { framesOf } from './frames.ts'
import { freePort } from './host.ts'
import type { ChildProcess } from 'node:child_process'

const run = promisify(execFile)
const READY_TIMEOUT_MS = 120_000
/** Compiling llama.cpp on two busy cores: generous. */
const BUILD_TIMEOUT_MS = 60 * 60_000

/** node-llama-cpp's directory. */
function llamaPackage (): string {
  // The package exports no package.json: its root is found above its entry point.
  let root = dirname(fileURLToPath(import.meta.resolve('node-llama-cpp')))
  while (!existsSync(join(root, 'package.json')) && dirname(root) !== root) root = dirname(root)
  return root
}

/** Where node-llama-cpp keeps the llama.cpp source it was built from, and that source's tag. */
async function llamaSource (): Promise<{ bundle: string, tag: string }> {
  const dir = join(llamaPackage(), 'llama')
  const { tag } = JSON.parse(await readFile(join(dir, 'llama.cpp.info.json'), 'utf8')) as { tag: string }
  return { bundle: join(dir, 'gitRelease.bundle'), tag }
}

/** llama.cpp's programs the bench runs beside the daemon. */
export type LlamaProgram = 'llama-server' | 'llama-batched-bench'

/**
 * One of llama.cpp's programs, built from node-llama-cpp's llama.cpp on
 * first use (git, cmake and a C++ compiler needed; `say` tells that it is
 * building). Throws with the reason when it cannot be had.
 */
export async function llamaProgram (program: LlamaProgram, say: (line: string) => void, signal?: AbortSignal): Promise<string> {
  const { bundle, tag } = await llamaSource()
  const dir = join(homedir(), '.cache', 'node-daemon-bench', `llama.cpp-${tag}`)
  const bin = join(dir, 'build', 'bin', program)
  if (existsSync(bin)) return bin
  for (const tool of ['git', 'cmake', 'c++']) {
    await run('sh', ['-c', `command -v ${tool}`]).catch(() => { throw new Error(`${tool} is missing, which building ${program} needs`) })
  }
  if (!existsSync(bundle)) throw new Error(`node-llama-cpp ships no llama.cpp source to build ${program} from`)
  say(`building ${program} from node-llama-cpp's llama.cpp ${tag} into ${dir} (once; minutes on two cores)`)
  const options = { signal, timeout: BUILD_TIMEOUT_MS, maxBuffer: 64 * 1_048_576 }
  if (!existsSync(join(dir, 'build', 'CMakeCache.txt'))) {
    await rm(dir, { recursive: true, force: true })
    await run('git', ['clone', '-q', bundle, dir], options)
    // Static: one binary, which runs wherever the cache goes.
    await run('cmake', ['-S', dir, '-B', join(dir, 'build'), '-DCMAKE_BUILD_TYPE=Release', '-DLLAMA_CURL=OFF', '-DLLAMA_BUILD_TESTS=OFF', '-DLLAMA_BUILD_EXAMPLES=OFF', '-DLLAMA_BUILD_SERVER=ON', '-DBUILD_SHARED_LIBS=OFF'], options)
  }
  await run('cmake', ['--build', join(dir, 'build'), '--target', program, '-j', String(cpus().length)], options)
  if (!existsSync(bin)) throw new Error(`the llama.cpp build made no ${bin}`)
  return bin
}

/**
 * llama.cpp's own decode loop, llama-batched-bench, on `model`: a prompt of
 * `prompt` tokens in each of `sequences` sequences, then `tokens` steps
 * decoding one token of each, with `threads` threads and a context of
 * `contextPerSlot` positions a sequence, as the daemon's; its rate over the
 * steps (tokens of all sequences). Its tokens are random and it samples
 * none: llama.cpp's decode alone, the bare loop at its barest.
 */
export async function batchedBench (bin: string, model: string, options: { threads: number, contextPerSlot: number, prompt: number, tokens: number, sequences: number }, signal?: AbortSignal): Promise<number> {
  const args = ['-m', model, '-c', String(options.sequences * options.contextPerSlot), '-b', '512', '-ub', '512', '-npp', String(options.prompt), '-ntg', String(options.tokens),
    '-npl', String(options.sequences), '-t', String(options.threads), '-tb', String(options.threads), '--output-format', 'jsonl']
  // Once, under a CPU-profiled daemon, it exited 0 having printed nothing: one more run before the bench gives up on the figure.
  let stdout = ''
  for (let attempt = 0; attempt < 2; attempt++) {
    ({ stdout } = await run(bin, args, { signal, timeout: 10 * 60_000, maxBuffer: 16 * 1_048_576 }))
    const line = stdout.split('\n').find(l => l.startsWith('{') && l.includes('"speed_tg"'))
    if (line != null) return (JSON.parse(line) as { speed_tg: number }).speed_tg
  }
  throw new Error(`llama-batched-bench printed no result, twice: ${stdout.slice(-400)}`)
}

/**
 * Makes node-llama-cpp's build of llama.cpp for this machine when it has
 * none, as a user who wants GGUF speed does (`npx --no node-llama-cpp source
 * download --gpu false`): offline, from the source it ships, into its own
 * package, where every later getLlama (the daemon's, the bare loop's) loads
 * it instead of the prebuilt binaries, which are compiled for any CPU of a
 * family and decoded the default model about half as fast here. Says what it
 * does, and goes on with the prebuilt binaries when it cannot build.
 */
export async function llamaBuiltHere (say: (line: string) => void, signal?: AbortSignal): Promise<void> {
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp')
  // Barred from its prebuilt binaries and from building, getLlama loads a build of its own or throws.
  const built = await getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: false, progressLogs: false, logLevel: LlamaLogLevel.error })
    .then(async llama => { await llama.dispose(); return true }, () => false)
  if (built) return
  say('building llama.cpp for this machine with node-llama-cpp (once, into its package; minutes on two cores)')
  await run(process.execPath, [join(llamaPackage(), 'dist', 'cli', 'cli.js'), 'source', 'download', '--gpu', 'false', '--noUsageExample'], { signal, timeout: BUILD_TIMEOUT_MS, maxBuffer: 64 * 1_048_576 })
    .catch((err: Error & { stderr?: string }) => { say(`llama.cpp for this machine: not built, so the prebuilt binaries run: ${(err.stderr ?? err.message).trim().split('\n').slice(-3).join(' ')}`) })
}

export interface LlamaServer {
  url: string
  pid: number
  stop (): Promise<void>
}

/**
 * llama-server on 127.0.0.1 with `model`: `slots` sequences decoding together
 * (its continuous batching), each holding `contextPerSlot` positions, on
 * `threads` threads for decoding and prompts alike, as the daemon's context.
 */
export async function startLlamaServer (bin: string, model: string, options: { threads: number, slots: number, contextPerSlot: number }): Promise<LlamaServer> {
  const port = await freePort()
  const args = ['-m', model, '--host', '127.0.0.1', '--port', String(port), '-t', String(options.threads), '-tb', String(options.threads),
    '-np', String(options.slots), '-c', String(options.slots * options.contextPerSlot), '--no-webui', '--log-disable']
  const child: ChildProcess = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  let tail = ''
  child.stderr?.on('data', (chunk: Buffer) => { tail = (tail + chunk.toString()).slice(-4000) })
  const exited = new Promise<void>(resolve => { child.once('exit', () => { resolve() }) })
  const stop = async (): Promise<void> => {
    if (child.exitCode != null || child.signalCode != null) return
    child.kill('SIGTERM')
    await Promise.race([exited, sleep(10_000)])
    if (child.exitCode == null && child.signalCode == null) child.kill('SIGKILL')
    await exited
  }
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + READY_TIMEOUT_MS
  while (Date.now() < deadline) {
    if (child.exitCode != null) throw new Error(`llama-server exited with ${child.exitCode}: ${tail}`)
    const ok = await fetch(`${url}/health`).then(res => res.ok, () => false)
    if (ok) return { url, pid: child.pid as number, stop }
    await sleep(100)
  }
  await stop()
  throw new Error(`llama-server was not ready in ${READY_TIMEOUT_MS} ms: ${tail}`)
}

export interface ServerStream {
  /** From the request sent to the first token's text, to the last token's, and to the final event. */
  ttftMs: number
  lastChunkMs: number
  wallMs: number
  text: string
  /** The server's own count and time of the decoded tokens (its timings.predicted_n and predicted_ms). */
  evalCount: number
  evalMs: number
}

/**
 * One streamed /completion of `tokens` tokens from the prompt's token ids,
 * greedy (temperature 0), past any end token, with no cached prefix: what the
 * bench asks of the daemon.
 */
export async function serverCompletion (server: LlamaServer, prompt: number[], tokens: number, signal: AbortSignal): Promise<ServerStream> {
  const t0 = performance.now()
  const body = { prompt, n_predict: tokens, temperature: 0, stream: true, cache_prompt: false, ignore_eos: true, repeat_penalty: 1 }
  const res = await fetch(`${server.url}/completion`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal })
  if (!res.ok || res.body == null) throw new Error(`llama-server: /completion answered ${res.status}: ${await res.text().catch(() => '')}`)
  let ttftMs = -1
  let lastChunkMs = -1
  let text = ''
  for await (const { frame, atMs } of framesOf(res.body, '\n\n', t0)) {
    if (!frame.startsWith('data: ')) continue
    const msg = JSON.parse(frame.slice(6))
    if (msg.content !== '' && msg.content != null) {
      if (ttftMs < 0) ttftMs = atMs
      lastChunkMs = atMs
      text += msg.content as string
    }
    if (msg.stop === true) return { ttftMs, lastChunkMs, wallMs: performance.now() - t0, text, evalCount: msg.timings.predicted_n, evalMs: msg.timings.predicted_ms }
  }
  throw new Error('llama-server: /completion ended without its final event')
}
