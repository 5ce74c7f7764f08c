/**
 * The replicated state machine of the driver simulation: keys holding a value
 * and a version, written unconditionally or compare-and-set on the version
 * (as the cluster's model registry takes `expected_version`). It does not
 * deduplicate: every client operation carries an id of its own, and one
 * applied twice in a node's state is reported as a violation, since neither
 * a client retry the driver called safe nor a restart replaying its log may
 * apply an operation again. A ledger shared by all nodes checks that they
 * apply the same command at each index and hold the same state at each.
 */
import type { StateMachine } from '../../src/driver.ts'
import type { ConfChange, ConfState } from '@node-daemon/raft'
import { partitionByKey } from '../../../raft/test/sim/linearizability.ts'
import type { Model, Operation } from '../../../raft/test/sim/linearizability.ts'

export interface KvCommand {
  /** The client operation's id, unique in the run. */
  id: string
  key: string
  value: string
  /** Compare-and-set: applied only if the key is at this version (0: never written). */
  expect?: number
}

/** A compare-and-set found another version; every node throws it alike, and the proposer hears it. */
export class VersionMismatchError extends Error {
  static name = 'VersionMismatchError'
  name = 'VersionMismatchError'
  readonly version: number

  constructor (key: string, version: number, expected: number) {
    super(`${key} is at version ${version}, not ${expected}`)
    this.version = version
  }
}

const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder()

export function encodeCommand (cmd: KvCommand): Uint8Array {
  return utf8.encode(JSON.stringify(cmd))
}

export interface Versioned {
  value: string | null
  version: number
}

/** What every node applied, shared between them: the first to apply or snapshot at an index sets what the others must match. */
export class ApplyLedger {
  readonly violations: string[] = []
  /** Command text by index. */
  private readonly commands = new Map<number, string>()
  /** State by the index of the last command applied. */
  private readonly states = new Map<number, string>()
  /** Where each operation was first applied, and what it answered. */
  readonly outcomes = new Map<string, { index: number, version: number, ok: boolean }>()

  violation (what: string): void {
    this.violations.push(what)
  }

  command (node: string, index: number, text: string): void {
    const known = this.commands.get(index)
    if (known === undefined) this.commands.set(index, text)
    else if (known !== text) this.violation(`${node} applied ${text} at index ${index}, where ${known} was applied before`)
  }

  state (node: string, index: number, text: string): void {
    const known = this.states.get(index)
    if (known === undefined) this.states.set(index, text)
    else if (known !== text) this.violation(`${node}'s state after index ${index} differs from another's: ${text} vs ${known}`)
  }
}

export class VersionedKv implements StateMachine {
  private readonly node: string
  private readonly ledger: ApplyLedger
  private values = new Map<string, Versioned>()
  /** Operation id → the index it was applied at. */
  private applied = new Map<string, number>()
  private last = 0
  /** The membership, as the driver reports it with each change: part of the state, so that snapshots carry it. */
  private members = ''

  constructor (node: string, ledger: ApplyLedger) {
    this.node = node
    this.ledger = ledger
  }

  get (key: string): Versioned {
    return this.values.get(key) ?? { value: null, version: 0 }
  }

  /** Where operation `id` was applied in this state, if it was. */
  appliedAt (id: string): number | undefined {
    return this.applied.get(id)
  }

  get lastIndex (): number {
    return this.last
  }

  apply (command: Uint8Array, index: number): unknown {
    const text = fromUtf8.decode(command)
    if (index <= this.last) this.ledger.violation(`${this.node} applied index ${index} after ${this.last}`)
    this.ledger.command(this.node, index, text)
    this.last = index
    const cmd = JSON.parse(text) as KvCommand
    const before = this.applied.get(cmd.id)
    if (before !== undefined) this.ledger.violation(`${this.node} applied operation ${cmd.id} twice, at index ${before} and at ${index}`)
    this.applied.set(cmd.id, index)
    const current = this.get(cmd.key)
    const ok = cmd.expect === undefined || cmd.expect === current.version
    const version = ok ? current.version + 1 : current.version
    if (!this.ledger.outcomes.has(cmd.id)) this.ledger.outcomes.set(cmd.id, { index, version, ok })
    if (!ok) throw new VersionMismatchError(cmd.key, current.version, cmd.expect as number)
    this.values.set(cmd.key, { value: cmd.value, version })
    return version
  }

  applyConfChange (cc: ConfChange, confState: ConfState, context: Uint8Array, index: number): void {
    if (index <= this.last) this.ledger.violation(`${this.node} applied conf change ${index} after ${this.last}`)
    this.ledger.command(this.node, index, JSON.stringify({ changes: cc.changes, transition: cc.transition, context: fromUtf8.decode(context) }))
    this.last = index
    this.members = JSON.stringify(confState)
  }

  snapshot (): Uint8Array {
    const text = this.serialize()
    this.ledger.state(this.node, this.last, text)
    return utf8.encode(text)
  }

  restore (data: Uint8Array): void {
    const text = fromUtf8.decode(data)
    const parsed = JSON.parse(text) as { last: number, members: string, values: Array<[string, Versioned]>, applied: Array<[string, number]> }
    this.last = parsed.last
    this.members = parsed.members
    this.values = new Map(parsed.values)
    this.applied = new Map(parsed.applied)
    this.ledger.state(this.node, this.last, text)
  }

  /** In insertion order, which is log order on every node and which restore keeps: equal states give equal text. */
  private serialize (): string {
    return JSON.stringify({ last: this.last, members: this.members, values: [...this.values], applied: [...this.applied] })
  }
}

// ---- the model for the linearizability checker

export type KvInput =
  | { kind: 'put', key: string, value: string }
  | { kind: 'cas', key: string, value: string, expect: number }
  | { kind: 'get', key: string }

/** A write's new version (or a failed compare-and-set's current one); a read's value and version. Undefined while unknown. */
export type KvOutput = { ok: boolean, version: number, value?: string | null } | undefined

export type KvOperation = Operation<KvInput, KvOutput>

function fmtTime (t: number): string {
  return t === Infinity ? '∞' : String(t)
}

export const versionedKvModel: Model<Versioned, KvInput, KvOutput> = {
  partition: partitionByKey,
  init: () => ({ value: null, version: 0 }),
  step (state, input, output) {
    if (input.kind === 'get') {
      return output !== undefined && output.value === state.value && output.version === state.version ? state : undefined
    }
    const ok = input.kind === 'put' || input.expect === state.version
    const next = ok ? { value: input.value, version: state.version + 1 } : state
    if (output !== undefined && (output.ok !== ok || output.version !== next.version)) return undefined
    return next
  },
  stateKey: state => `${state.version}=${state.value ?? ''}`,
  describe (op) {
    const i = op.input
    const what = i.kind === 'get' ? `get(${i.key})` : i.kind === 'put' ? `put(${i.key}, ${i.value})` : `cas(${i.key}, v${i.expect} -> ${i.value})`
    const o = op.output
    const out = o === undefined ? '?' : i.kind === 'get' ? `${o.value ?? 'nil'}@v${o.version}` : `${o.ok ? 'ok' : 'mismatch'} v${o.version}`
    return `${op.client}: ${what} -> ${out} [${fmtTime(op.call)}, ${fmtTime(op.ret)}]`
  }
}
