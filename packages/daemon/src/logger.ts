import { pino } from 'pino'
import type { Logger } from 'pino'

export type { Logger }

/** The operator log's root, as Kubo's log/level names its default. */
export const DEFAULT_SUBSYSTEM = '(default)'
/** Kubo's levels beyond pino's: zap's dpanic and panic are pino's fatal. */
const LEVEL_ALIASES: Record<string, string> = { dpanic: 'fatal', panic: 'fatal' }
/** Subscribers of log/tail whose reader stalls lose lines past this many, rather than holding the node's memory. */
const MAX_TAIL_BACKLOG = 10_000

/** A log level that is neither Kubo's nor pino's. */
export class InvalidLogLevelError extends Error {
  static name = 'InvalidLogLevelError'
  name = 'InvalidLogLevelError'
}

/** A subsystem the operator log does not have. */
export class UnknownSubsystemError extends Error {
  static name = 'UnknownSubsystemError'
  name = 'UnknownSubsystemError'
}

/**
 * Kubo's log/level, log/ls and log/tail over the operator log: its root is
 * the default subsystem and each child made with a `component` binding (the
 * API's, `api`) is a subsystem of that name.
 */
export interface LogControl {
  subsystems(): string[]
  /** The level of a subsystem, or of every one with `*`. */
  levels(subsystem: string): Record<string, string>
  /** Sets a subsystem's level, or every one's with `*`; `default` is the root's. */
  setLevel(subsystem: string, level: string): void
  /** The lines logged from now on, at `level` or above, as JSON objects, until `signal` aborts; a bad level throws at once. */
  tail(options: { level?: string, signal: AbortSignal }): AsyncGenerator<object>
}

const controls = new WeakMap<Logger, LogControl>()

/** JSON lines on stderr, so that stdout stays for what the user asked to print. */
export function createLogger (level: string): Logger {
  const components = new Map<string, Logger>()
  const destination = pino.destination({ dest: 2, sync: false })
  const taps = new Set<(line: string) => void>()
  // stderr with log/tail's readers beside it; flush stays stderr's, so that the last lines are out before an exit.
  const output = {
    write: (line: string) => {
      destination.write(line)
      for (const tap of taps) tap(line)
    },
    flush: (cb?: (err?: Error) => void) => { destination.flush(cb) },
    flushSync: () => { destination.flushSync() }
  }
  const logger = pino({
    level,
    base: { name: 'node-daemon' },
    // The first child with a component binding is that component's logger; its own children (the API's per request) inherit it.
    onChild: (child) => {
      const component = child.bindings().component
      if (typeof component === 'string' && !components.has(component)) components.set(component, child)
    }
  }, output)
  controls.set(logger, logControl(logger, components, taps))
  return logger
}

/** The control of a logger made by createLogger; others have none. */
export function logControlOf (logger: Logger): LogControl | undefined {
  return controls.get(logger)
}

function pinoLevel (level: string): string {
  const name = LEVEL_ALIASES[level] ?? level
  if (!(name in pino.levels.values) && name !== 'silent') throw new InvalidLogLevelError(`invalid log level ${JSON.stringify(level)}: one of debug, info, warn, error, dpanic, panic, fatal, trace, silent or default`)
  return name
}

function logControl (root: Logger, components: Map<string, Logger>, taps: Set<(line: string) => void>): LogControl {
  const loggerOf = (subsystem: string): Logger => {
    if (subsystem === DEFAULT_SUBSYSTEM) return root
    const logger = components.get(subsystem)
    if (logger == null) throw new UnknownSubsystemError(`unknown subsystem ${JSON.stringify(subsystem)}: log/ls lists them`)
    return logger
  }
  const all = (): Array<[string, Logger]> => [[DEFAULT_SUBSYSTEM, root], ...components]
  return {
    subsystems: () => all().map(([name]) => name),
    levels: (subsystem) => subsystem === '*'
      ? Object.fromEntries(all().map(([name, logger]) => [name, logger.level]))
      : { [subsystem]: loggerOf(subsystem).level },
    setLevel: (subsystem, level) => {
      const name = level === 'default' ? root.level : pinoLevel(level)
      const targets = subsystem === '*' ? all().map(([, logger]) => logger) : [loggerOf(subsystem)]
      for (const logger of targets) logger.level = name
    },
    tail: ({ level = 'trace', signal }) => {
      // Checked before the first line is asked for, so that a bad level fails the request, not its stream.
      const least = pino.levels.values[pinoLevel(level)] ?? Infinity
      return (async function * () {
        const lines: object[] = []
        let wake: (() => void) | undefined
        const tap = (line: string): void => {
          const parsed = JSON.parse(line) as { level?: number }
          if ((parsed.level ?? 0) < least || lines.length >= MAX_TAIL_BACKLOG) return
          lines.push(parsed)
          wake?.()
        }
        taps.add(tap)
        const stop = (): void => { wake?.() }
        signal.addEventListener('abort', stop, { once: true })
        try {
          while (!signal.aborted) {
            const line = lines.shift()
            if (line != null) {
              yield line
              continue
            }
            await new Promise<void>(resolve => { wake = resolve })
            wake = undefined
          }
        } finally {
          signal.removeEventListener('abort', stop)
          taps.delete(tap)
        }
      })()
    }
  }
}
