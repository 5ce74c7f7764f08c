/**
 * Timed phases of a bench: how long each took, the CPU each daemon and the
 * bench used meanwhile, and where it lies on the monotonic clock in
 * microseconds (the clock V8 stamps its CPU profiles with), so that
 * `node bench/cpu-profile.ts <label>-<bench pid>.cpuprofile --phase <name>`
 * keeps only the samples of one phase.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { cpuSecondsOf } from './daemon.ts'

export interface PhaseWindow { phase: string, daemons: string[], startUs: number, endUs: number }

export interface Timed<T> {
  value: T
  seconds: number
  /** CPU cores each daemon used on average over the phase (1.0 = one core busy), in the order given. */
  daemonCores: number[]
  benchCores: number
}

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n)

export interface PhaseLog {
  timed<T> (phase: string, daemons: Array<{ label: string, pid: number }>, fn: () => Promise<T>): Promise<Timed<T>>
  /** Writes `phases-<bench pid>.json` into `dir`, next to the profiles; returns its path. */
  write (dir: string): Promise<string>
}

export function createPhaseLog (): PhaseLog {
  const phases: PhaseWindow[] = []
  return {
    async timed (phase, daemons, fn) {
      const cpu0 = await Promise.all(daemons.map(async d => cpuSecondsOf(d.pid)))
      const bench0 = process.cpuUsage()
      const startUs = nowUs()
      const t0 = performance.now()
      const value = await fn()
      const seconds = (performance.now() - t0) / 1000
      phases.push({ phase, daemons: daemons.map(d => d.label), startUs, endUs: nowUs() })
      const bench = process.cpuUsage(bench0)
      // A daemon that died meanwhile counts as idle rather than failing the phase.
      const cpu1 = await Promise.all(daemons.map(async (d, i) => cpuSecondsOf(d.pid).catch(() => cpu0[i])))
      return {
        value,
        seconds,
        daemonCores: cpu1.map((c, i) => (c - cpu0[i]) / seconds),
        benchCores: (bench.user + bench.system) / 1e6 / seconds
      }
    },
    async write (dir) {
      const file = join(dir, `phases-${process.pid}.json`)
      await writeFile(file, `${JSON.stringify(phases, null, 2)}\n`)
      return file
    }
  }
}
