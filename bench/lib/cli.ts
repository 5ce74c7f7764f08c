/**
 * What every bench reads from its environment and how it prints: one place,
 * so that the benches validate `BENCH_*` variables alike and print alike.
 */
import { resolve } from 'node:path'

/** Prints one line of the bench's report on stdout. */
export function say (line: string): void {
  process.stdout.write(`${line}\n`)
}

/**
 * A positive number from `name`, `fallback` when unset or empty; anything
 * else, above `max`, or with `whole` not an integer, is an error naming the
 * variable, so that a typo fails the run rather than benching something else.
 */
export function numberFromEnv (name: string, fallback: number, max: number, options: { whole?: boolean } = {}): number {
  const raw = process.env[name]
  if (raw == null || raw === '') return fallback
  const n = Number(raw)
  if (options.whole === true) {
    if (!Number.isInteger(n) || n <= 0 || n > max) throw new Error(`${name}=${raw}: expected a whole number, 0 < n <= ${max}`)
  } else if (!Number.isFinite(n) || n <= 0 || n > max) {
    throw new Error(`${name}=${raw}: expected a number, 0 < n <= ${max}`)
  }
  return n
}

/**
 * The parts of a bench that `BENCH_ONLY` (comma-separated) picks, all of
 * `known` when it is unset; `noun` names a part in the errors.
 */
export function onlyFromEnv<T extends string> (known: readonly T[], noun: string): Set<T> {
  const only = new Set<T>()
  for (const name of (process.env.BENCH_ONLY ?? known.join(',')).split(',').map(s => s.trim()).filter(Boolean)) {
    if (!(known as readonly string[]).includes(name)) throw new Error(`BENCH_ONLY: unknown ${noun} ${JSON.stringify(name)}; known: ${known.join(', ')}`)
    only.add(name as T)
  }
  if (only.size === 0) throw new Error(`BENCH_ONLY names no ${noun}; known: ${known.join(', ')}`)
  return only
}

/** `BENCH_PROFILE_DIR` as an absolute path, or undefined when unset or empty. */
export function profileDirFromEnv (): string | undefined {
  const dir = process.env.BENCH_PROFILE_DIR
  return dir != null && dir !== '' ? resolve(dir) : undefined
}
