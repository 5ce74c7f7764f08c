/**
 * The parent's side of the Raft bench's member processes: each member
 * (bench/lib/raft-member.ts) is a Node process of its own, as in a
 * deployment, driven over the IPC channel with the commands below.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { daemonNodeFlags } from './daemon.ts'
import type { LoadResult } from './raft-load.ts'
import type { ChildProcess } from 'node:child_process'

export interface PeerInfo {
  id: string
  /** Its listen multiaddrs, as strings. */
  addrs: string[]
}

/** What a member answers to, and with what. */
export interface MemberCommands {
  /** Learns every member's addresses (its own included), then opens its log (or reopens it, after a restart) and starts Raft with them as the voters. */
  join: { params: { peers: PeerInfo[] }, result: null }
  /** The leader it knows, empty when none. */
  status: { params: Record<string, never>, result: { leader: string } }
  /** A closed-loop load on this member: `concurrency` proposers of `bytes`-byte commands for `seconds`. */
  closed: { params: { concurrency: number, seconds: number, bytes: number }, result: LoadResult }
  /** An open-loop load on this member: `perSecond` proposals on a fixed schedule for `seconds`. */
  open: { params: { perSecond: number, seconds: number, bytes: number }, result: LoadResult }
  /** Proposes one command, retrying every `retryMs`, until it commits or `deadlineMs` passed. */
  commit: { params: { retryMs: number, deadlineMs: number }, result: { leader: string } }
  /** Starts a V8 CPU profile, or, given `file`, stops it and writes it there. */
  profile: { params: { file?: string }, result: null }
}

export type MemberRequest = { [K in keyof MemberCommands]: { id: number, cmd: K, params: MemberCommands[K]['params'] } }[keyof MemberCommands]
/** A member's messages: once `ready` when its libp2p listens, then one reply per request. */
export type MemberMessage = { ready: PeerInfo } | { id: number, ok: true, value: unknown } | { id: number, ok: false, error: string }

export interface MemberProcess {
  label: string
  /** Where its log and key live: a member started again on it is the same peer. */
  dir: string
  pid: number
  peer: PeerInfo
  /** The TCP port its libp2p listens on. */
  port: number
  /** Runs a command in the member; rejects after `timeoutMs`, or at once if the member dies. */
  call<K extends keyof MemberCommands>(cmd: K, params: MemberCommands[K]['params'], timeoutMs: number): Promise<MemberCommands[K]['result']>
  /** SIGKILL now, as a crash would end it; returns at once. */
  crash(): void
  /** SIGKILL, and waits (bounded) for the exit. Safe to call twice. */
  kill(): Promise<void>
}

const MEMBER_SCRIPT = fileURLToPath(new URL('./raft-member.ts', import.meta.url))
const READY_TIMEOUT_MS = 30_000
const EXIT_TIMEOUT_MS = 5_000
/** How much of a member's output to keep for error messages. */
const TAIL_CHARS = 8_000
/** Flags of the bench's own Node that a member must not share: it is no test runner, debuggee or second profile writer. */
const NOT_INHERITED = /^--(test|watch|inspect|debug|cpu-prof|heap-prof|prof)/

/** Every member still running: killed synchronously if the bench exits without killing them. */
const live = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of live) {
    try { child.kill('SIGKILL') } catch {}
  }
})

/** The bench's Node flags (heap sizes, loaders, warnings) minus NOT_INHERITED ones and their separate values. */
function inheritedFlags (): string[] {
  const flags: string[] = []
  for (let i = 0; i < process.execArgv.length; i++) {
    const flag = process.execArgv[i]
    if (!NOT_INHERITED.test(flag)) {
      flags.push(flag)
      continue
    }
    const next = process.execArgv[i + 1]
    if (!flag.includes('=') && next != null && !next.startsWith('-')) i++
  }
  return flags
}

function exited (child: ChildProcess): boolean {
  return child.exitCode != null || child.signalCode != null
}

/**
 * Starts a member with its log and key in `dir`, with the flags a daemon
 * runs with, and waits until its libp2p listens on 127.0.0.1 at `port` (any
 * when 0; a restarted member takes its old one, where the others dial it).
 */
export async function spawnMember (label: string, dir: string, port = 0): Promise<MemberProcess> {
  const child = spawn(process.execPath, [...daemonNodeFlags(), ...inheritedFlags(), MEMBER_SCRIPT, dir, String(port)], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    // Its own process group: a Ctrl-C reaches only the bench, which then kills the member itself.
    detached: true
  })
  live.add(child)
  let tail = ''
  const keep = (chunk: Buffer): void => { tail = (tail + chunk.toString('utf8')).slice(-TAIL_CHARS) }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  child.on('error', (err) => { keep(Buffer.from(`bench: ${err.message}\n`)) })
  const failure = (what: string): Error => new Error(`${label} ${what}${tail === '' ? '' : `\n--- ${label} output ---\n${tail}`}`)

  const pending = new Map<number, { resolve: (value: any) => void, reject: (err: Error) => void }>()
  let nextId = 0
  let ready: ((peer: PeerInfo) => void) | undefined
  child.on('message', (m: MemberMessage) => {
    if ('ready' in m) {
      ready?.(m.ready)
      return
    }
    const call = pending.get(m.id)
    pending.delete(m.id)
    if (m.ok) call?.resolve(m.value)
    else call?.reject(failure(m.error))
  })
  const exit = new Promise<void>(resolve => {
    child.once('exit', (code, signal) => {
      live.delete(child)
      for (const call of pending.values()) call.reject(failure(`exited (code ${code}, signal ${signal})`))
      pending.clear()
      resolve()
    })
  })
  let killing: Promise<void> | undefined
  const crash = (): void => {
    if (!exited(child)) child.kill('SIGKILL')
  }
  const kill = async (): Promise<void> => {
    killing ??= (async () => {
      crash()
      let timer: ReturnType<typeof setTimeout> | undefined
      await Promise.race([exit, new Promise(resolve => { timer = setTimeout(resolve, EXIT_TIMEOUT_MS) })])
      clearTimeout(timer)
    })()
    return killing
  }

  try {
    const peer = await new Promise<PeerInfo>((resolve, reject) => {
      const timer = setTimeout(() => { reject(failure(`was not ready within ${READY_TIMEOUT_MS} ms`)) }, READY_TIMEOUT_MS)
      ready = (p) => { clearTimeout(timer); resolve(p) }
      exit.then(() => { clearTimeout(timer); reject(failure(`exited before it was ready (code ${child.exitCode}, signal ${child.signalCode})`)) }, () => {})
    })
    if (child.pid == null) throw failure('has no pid')
    return {
      label,
      dir,
      pid: child.pid,
      peer,
      port: Number(peer.addrs[0].split('/')[4]),
      crash,
      kill,
      async call (cmd, params, timeoutMs) {
        if (exited(child)) throw failure('is not running')
        const id = ++nextId
        let timer: ReturnType<typeof setTimeout> | undefined
        return new Promise<any>((resolve, reject) => {
          timer = setTimeout(() => { pending.delete(id); reject(failure(`did not answer ${cmd} within ${timeoutMs} ms`)) }, timeoutMs)
          pending.set(id, { resolve, reject })
          child.send({ id, cmd, params } as MemberRequest)
        }).finally(() => { clearTimeout(timer) })
      }
    }
  } catch (err) {
    await kill()
    throw err
  }
}
