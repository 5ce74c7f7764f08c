import { Session } from 'node:inspector/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { ProfileBusyError } from './errors.ts'
import type { AbortOptions } from '@libp2p/interface'

export interface ProfileOptions extends AbortOptions {
  /** How long the samplers run. */
  durationMs: number
  /** V8's CPU profile, as `node --cpu-prof` writes it (Kubo's cpu collector). */
  cpu: boolean
  /** V8's sampling heap profile of what is still live at the end (Kubo's heap collector, inuse). */
  heap: boolean
}

const HEAP_SAMPLING_BYTES = 4096

/** The profiles in the JSON forms Chrome DevTools and `node --cpu-prof`/`--heap-prof` read. */
export interface Profiles {
  cpu?: object
  heap?: object
}

/** V8 has one CPU profiler per process, as Go's runtime has; Kubo refuses a second profile the same way. */
let running = false

/**
 * Samples this process through its own inspector for `durationMs`, the
 * Node counterpart of the profiles Kubo's diag/profile takes with pprof.
 * Disconnecting the session stops whatever sampler a failure or an abort left running.
 */
export async function collectProfiles (options: ProfileOptions): Promise<Profiles> {
  if (running) throw new ProfileBusyError('a profile is being collected already')
  running = true
  const session = new Session()
  session.connect()
  try {
    if (options.cpu) {
      await session.post('Profiler.enable')
      await session.post('Profiler.start')
    }
    if (options.heap) {
      await session.post('HeapProfiler.enable')
      // One sample per 4 KiB rather than V8's 32: a profile of seconds on a quiet node would otherwise often hold nothing it kept.
      await session.post('HeapProfiler.startSampling', { samplingInterval: HEAP_SAMPLING_BYTES })
    }
    await sleep(options.durationMs, undefined, { signal: options.signal })
    const profiles: Profiles = {}
    if (options.cpu) profiles.cpu = (await session.post('Profiler.stop')).profile
    if (options.heap) profiles.heap = (await session.post('HeapProfiler.stopSampling')).profile
    return profiles
  } finally {
    session.disconnect()
    running = false
  }
}
