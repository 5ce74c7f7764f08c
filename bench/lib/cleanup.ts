/**
 * Undo steps run last-in first-out, once, whether the bench finishes, throws
 * or is interrupted by SIGINT or SIGTERM.
 */
export interface Cleanup {
  /** Registers a step; returns a function that runs it early (and only once). */
  defer (step: () => Promise<void>): () => Promise<void>
  /**
   * Runs every step still registered, one at a time: a second call waits for
   * the first, so a daemon is always stopped before its directory goes. A
   * failing step does not stop the others.
   */
  run (): Promise<void>
  /** Aborted on SIGINT or SIGTERM: pass it to long operations, and start nothing new once it fired. */
  signal: AbortSignal
}

export interface CleanupController extends Cleanup {
  /** Aborts `signal`: what a SIGINT or SIGTERM does. */
  interrupt (reason: Error): void
}

export function createCleanup (): CleanupController {
  const steps: Array<() => Promise<void>> = []
  const interrupted = new AbortController()
  let chain: Promise<void> = Promise.resolve()
  const once = (step: () => Promise<void>): () => Promise<void> => {
    let done: Promise<void> | undefined
    return async () => { done ??= step(); return done }
  }
  const drain = async (): Promise<void> => {
    while (steps.length > 0) {
      const step = steps.pop() as () => Promise<void>
      try {
        await step()
      } catch (err: any) {
        process.stderr.write(`bench: cleanup step failed: ${err?.message ?? String(err)}\n`)
      }
    }
  }
  return {
    signal: interrupted.signal,
    interrupt: (reason) => interrupted.abort(reason),
    defer (step) {
      const wrapped = once(step)
      steps.push(wrapped)
      return async () => {
        const i = steps.indexOf(wrapped)
        if (i >= 0) steps.splice(i, 1)
        await wrapped()
      }
    },
    async run () {
      chain = chain.then(drain)
      return chain
    }
  }
}

/**
 * Runs `body` with a cleanup list; on SIGINT or SIGTERM the cleanup signal
 * aborts, the list runs and the process exits with 128 + signal number, as a
 * shell would report it.
 */
export async function withCleanup<T> (body: (cleanup: Cleanup) => Promise<T>): Promise<T> {
  const cleanup = createCleanup()
  const onSignal = (signal: NodeJS.Signals): void => {
    process.stderr.write(`\nbench: ${signal}: stopping daemons and removing temp dirs\n`)
    cleanup.interrupt(new Error(`interrupted by ${signal}`))
    cleanup.run().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    return await body(cleanup)
  } finally {
    await cleanup.run()
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}
