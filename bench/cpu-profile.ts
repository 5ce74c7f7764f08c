/**
 * Summarises a V8 .cpuprofile (as `--cpu-prof` writes it): self time by
 * function and by package, optionally only the samples inside one phase of a
 * bench run (the phases-<pid>.json that `BENCH_PROFILE_DIR` runs of
 * bench/content.ts write next to the profiles).
 *
 *   node bench/cpu-profile.ts <file.cpuprofile> [--phase <name>] [--top <n>] [--callers <function>]
 *
 * `--callers` adds, for functions whose name contains the text, their self
 * time split by their nearest callers outside Node's internals: who calls
 * `concat`, say.
 */
import { readFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number, columnNumber: number }
  children?: number[]
}

interface Profile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

/** How many callers `--callers` names, nearest first. */
const CALLER_DEPTH = 4

interface PhaseWindow { phase: string, daemons: string[], startUs: number, endUs: number }

function usage (): never {
  process.stderr.write('usage: node bench/cpu-profile.ts <file.cpuprofile> [--phase <name>] [--top <n>] [--callers <function>]\n')
  process.exit(2)
}

/** node_modules/<pkg> or node_modules/@scope/pkg of a script URL; our own packages by folder; node: internals. */
function packageOf (url: string): string {
  if (url === '') return '(native / vm)'
  if (url.startsWith('node:')) return 'node internals'
  const nm = url.lastIndexOf('/node_modules/')
  if (nm >= 0) {
    const parts = url.slice(nm + '/node_modules/'.length).split('/')
    return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]
  }
  const own = /\/(packages\/[^/]+|bin|bench|test)\//.exec(url)
  return own != null ? own[1] : url
}

function shortUrl (url: string): string {
  const nm = url.lastIndexOf('/node_modules/')
  if (nm >= 0) return url.slice(nm + '/node_modules/'.length)
  return url.replace(/^file:\/\/\/work\/main\//, '').replace(/^file:\/\//, '')
}

async function main (): Promise<void> {
  const args = process.argv.slice(2)
  let file: string | undefined
  let phase: string | undefined
  let top = 25
  let callers: string | undefined
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--phase') phase = args[++i] ?? usage()
    else if (args[i] === '--callers') callers = args[++i] ?? usage()
    else if (args[i] === '--top') top = Number(args[++i] ?? usage())
    else if (file == null) file = args[i]
    else usage()
  }
  if (file == null || !Number.isInteger(top) || top <= 0) usage()
  const profile = JSON.parse(await readFile(file, 'utf8')) as Profile

  // Which sample times to keep: all, or those inside the phase windows this daemon took part in.
  let windows: Array<[number, number]> | undefined
  if (phase != null) {
    const m = /^(.*)-(\d+)\.cpuprofile$/.exec(basename(file))
    if (m == null) throw new Error(`${file}: expected a name <daemon>-<bench pid>.cpuprofile to find its phases`)
    const all = JSON.parse(await readFile(join(dirname(file), `phases-${m[2]}.json`), 'utf8')) as PhaseWindow[]
    windows = all.filter(w => w.phase === phase && w.daemons.includes(m[1])).map(w => [w.startUs, w.endUs])
    if (windows.length === 0) {
      const known = [...new Set(all.filter(w => w.daemons.includes(m[1])).map(w => w.phase))]
      throw new Error(`daemon ${m[1]} has no phase ${JSON.stringify(phase)}; it has: ${known.join(', ')}`)
    }
  }

  const byId = new Map(profile.nodes.map(n => [n.id, n]))
  const parentOf = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id)
  const selfUs = new Map<number, number>()
  let t = profile.startTime
  let total = 0
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i]
    // A sample stands for the time until the next one.
    const dt = i + 1 < profile.timeDeltas.length ? profile.timeDeltas[i + 1] : 0
    if (windows != null && !windows.some(([a, b]) => t >= a && t < b)) continue
    selfUs.set(profile.samples[i], (selfUs.get(profile.samples[i]) ?? 0) + dt)
    total += dt
  }
  if (total === 0) throw new Error('no samples in the selected time')

  const byFunction = new Map<string, number>()
  const byPackage = new Map<string, number>()
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)?.callFrame
    if (frame == null) continue
    const name = frame.functionName === '' ? '(anonymous)' : frame.functionName
    const key = frame.url === '' ? name : `${name}  ${shortUrl(frame.url)}:${frame.lineNumber + 1}`
    byFunction.set(key, (byFunction.get(key) ?? 0) + us)
    const pkg = frame.url === '' && name.startsWith('(') ? name : packageOf(frame.url)
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us)
  }
  const byCaller = new Map<string, number>()
  if (callers != null) {
    for (const [id, us] of selfUs) {
      const frame = byId.get(id)?.callFrame
      if (frame == null || !frame.functionName.includes(callers)) continue
      // Up the stack, naming the first CALLER_DEPTH frames in scripts of ours or of packages; at most the tree's depth.
      const chain: string[] = []
      let up = parentOf.get(id)
      for (let hops = 0; up != null && hops < profile.nodes.length && chain.length < CALLER_DEPTH; hops++) {
        const f = byId.get(up)?.callFrame
        if (f != null && f.url !== '' && !f.url.startsWith('node:')) chain.push(`${f.functionName === '' ? '(anonymous)' : f.functionName} ${shortUrl(f.url)}:${f.lineNumber + 1}`)
        up = parentOf.get(up)
      }
      const key = `${frame.functionName} <- ${chain.length === 0 ? '(event loop)' : chain.join(' <- ')}`
      byCaller.set(key, (byCaller.get(key) ?? 0) + us)
    }
  }
  const pct = (us: number): string => `${(100 * us / total).toFixed(1).padStart(5)}%`
  const ms = (us: number): string => `${(us / 1000).toFixed(0).padStart(7)} ms`
  const rows = (m: Map<string, number>, n: number): string => [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, us]) => `${pct(us)} ${ms(us)}  ${k}`).join('\n')

  process.stdout.write(`${basename(file)}${phase != null ? `, phase ${phase}` : ''}: ${(total / 1e6).toFixed(2)} s of main-thread samples\n`)
  process.stdout.write(`\nself time by package:\n${rows(byPackage, 15)}\n`)
  process.stdout.write(`\nself time by function (top ${top}):\n${rows(byFunction, top)}\n`)
  if (callers != null) process.stdout.write(`\nself time of *${callers}* by the nearest callers outside Node's internals:\n${byCaller.size > 0 ? rows(byCaller, top) : '(none)'}\n`)
}

main().catch((err: any) => {
  process.stderr.write(`${err?.message ?? String(err)}\n`)
  process.exitCode = 1
})
