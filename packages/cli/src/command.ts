/**
 * What every thin-client command shares: the options that find and
 * authenticate to a running daemon, `--json`, tables for people, JSON
 * requests, and progress bars. Each command file under commands/ builds on
 * these, so that every verb finds the daemon and prints alike.
 */
import cliProgress from 'cli-progress'
import { Option } from 'commander'
import { defaultRepo } from '@node-daemon/daemon/settings'
import { post, resolveApi } from './client.ts'
import type { Api } from './client.ts'
import type { Command } from 'commander'

/** The options of a client command, as commander parses them. */
export interface ClientOptions {
  repo?: string
  api?: string
  token?: string
  apiKey?: string
  json?: boolean
  [option: string]: any
}

export function repoOf (opts: { repo?: string }): string {
  return opts.repo ?? defaultRepo()
}

export const repoOption = (): Option => new Option('--repo <dir>', 'repo directory (env NODE_DAEMON_REPO)')

/** --repo, --api, --token and --api-key: how a client finds and authenticates to a daemon. */
export function clientOptions (): Option[] {
  return [
    repoOption(),
    new Option('--api <url>', 'API of a running daemon (env NODE_DAEMON_API; default: the one the repo names, else http://127.0.0.1:8000)'),
    new Option('--token <token>', 'an API key or a login token (env NODE_DAEMON_TOKEN; default: the daemon of the repo takes the repo\'s cookie)'),
    new Option('--api-key <key>', 'an API key, sent as x-api-key (env NODE_DAEMON_API_KEY)').hideHelp()
  ]
}

/** A subcommand `name` of `parent` that talks to a daemon, with `--json` for scripts. */
export function clientCommand (parent: Command, name: string): Command {
  const cmd = parent.command(name)
  for (const option of clientOptions()) cmd.addOption(option)
  return cmd.option('--json', 'print JSON for scripts instead of text')
}

export async function apiOf (opts: ClientOptions): Promise<Api> {
  return resolveApi(opts, repoOf(opts))
}

/** A JSON request to any route of the daemon; an error status fails with the API's message. */
export async function request<T = any> (api: Api, method: string, path: string, body?: unknown): Promise<T> {
  const res = await post(api, new URL(`${api.base}${path}`), {
    method,
    headers: body == null ? {} : { 'content-type': 'application/json' },
    body: body == null ? undefined : JSON.stringify(body)
  })
  const text = await res.text()
  return (text === '' ? undefined : JSON.parse(text)) as T
}

/** Prints `value` as JSON with --json, else what `human` makes of it (a line per string). */
export function print<T> (opts: ClientOptions, value: T, human: (value: T) => string | string[]): void {
  if (opts.json === true) {
    process.stdout.write(`${JSON.stringify(value, null, 2)}\n`)
    return
  }
  const text = human(value)
  const lines = Array.isArray(text) ? text : [text]
  if (lines.length > 0) process.stdout.write(`${lines.join('\n')}\n`)
}

/** Rows as aligned columns under a header, as `ollama list` and `ipfs-cluster-ctl` print them. */
export function table (head: string[], rows: Array<Array<string | number | undefined>>): string[] {
  const cells = [head, ...rows.map(r => r.map(c => c == null ? '' : String(c)))]
  const widths = head.map((_, i) => Math.max(...cells.map(r => (r[i] ?? '').length)))
  return cells.map(r => r.map((c, i) => i === r.length - 1 ? c : c.padEnd(widths[i])).join('   ').trimEnd())
}

/** Progress bars only pay off on long work. */
const PROGRESS_MIN_BYTES = 8 * 1_048_576

export interface Progress {
  /** Advances the bar by `n`. */
  add: (n: number) => void
  /** Sets the bar to `value` (and its total, when it changes). */
  set: (value: number, total?: number) => void
  stop: () => void
}

/**
 * A progress bar on stderr, when stderr is a terminal and the work is long
 * enough: bytes (shown in MiB) from PROGRESS_MIN_BYTES up, or any count of
 * items. Off with --no-progress or --json.
 */
export function progressBar (label: string, total: number, opts: ClientOptions & { progress?: boolean }, unit: 'bytes' | 'items' = 'bytes'): Progress {
  const wanted = process.stderr.isTTY === true && opts.progress !== false && opts.json !== true && (unit === 'items' || total >= PROGRESS_MIN_BYTES)
  const mb = (n: number): string => (n / 1_048_576).toFixed(1)
  const shown = (n: number): string => unit === 'bytes' ? `${mb(n)} MiB` : String(n)
  const bar = wanted
    ? new cliProgress.SingleBar({ stream: process.stderr, format: `${label} [{bar}] {percentage}% {shown}/{total_shown}` }, cliProgress.Presets.shades_classic)
    : undefined
  let value = 0
  bar?.start(total, 0, { shown: shown(0), total_shown: shown(total) })
  const set = (v: number, t?: number): void => {
    value = v
    if (t != null && t !== total) {
      total = t
      bar?.setTotal(t)
    }
    bar?.update(value, { shown: shown(value), total_shown: shown(total) })
  }
  return { add: (n) => set(value + n), set, stop: () => bar?.stop() }
}
