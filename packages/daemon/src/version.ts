import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface VersionInfo {
  version: string
  commit: string
  buildDate: string
  node: string
  system: string
  repo: string
}

const here = dirname(fileURLToPath(import.meta.url))

function gitCommit (): string {
  if (process.env.NODE_DAEMON_COMMIT != null) return process.env.NODE_DAEMON_COMMIT
  try {
    return execFileSync('git', ['-C', here, 'log', '-1', '--format=%h %cs'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return 'unknown'
  }
}

/** This build's version, from package.json: what `--version` prints, without asking git. */
export const VERSION: string = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version

let cached: VersionInfo | undefined

/** What this build is: read once, from package.json and git when the source is a checkout. */
export function versionInfo (repoVersion: string): VersionInfo {
  if (cached != null) return cached
  const [commit, date] = gitCommit().split(' ')
  cached = {
    version: VERSION,
    commit,
    buildDate: process.env.NODE_DAEMON_BUILD_DATE ?? date ?? 'unknown',
    node: process.version,
    system: `${process.arch}/${process.platform}`,
    repo: repoVersion
  }
  return cached
}
