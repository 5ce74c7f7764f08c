import { pino } from 'pino'
import type { Logger } from 'pino'

export type { Logger }

/** JSON lines on stderr, so that stdout stays for what the user asked to print. */
export function createLogger (level: string): Logger {
  return pino({ level, base: { name: 'node-daemon' } }, pino.destination({ dest: 2, sync: false }))
}
