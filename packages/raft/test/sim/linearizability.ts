/**
 * A linearizability checker in the manner of Wing & Gong as refined by Lowe
 * and by porcupine: the history is cut into independent parts (one per key),
 * and each part is searched depth first for an order of linearization points
 * that respects real time and the sequential model.
 *
 * The history of a part is a doubly linked list of call and return events in
 * time order. The search walks it from the head: a call whose operation the
 * model accepts in the current state is "lifted" out of the list (it and its
 * return) and the walk restarts; meeting a return means that operation
 * returned before being linearized, so the last choice is undone. That walk
 * is the just-in-time pruning: only calls before the earliest pending return
 * are candidates. Visited (set of linearized operations, model state) pairs
 * are cached so that each is expanded once.
 *
 * An operation whose outcome is unknown (a write that timed out) has return
 * time Infinity: it may take effect at any point after its call, or never, so
 * the search succeeds as soon as every operation with a known return is
 * linearized.
 */

export interface Operation<I, O> {
  client: string
  input: I
  output: O
  /** Invocation time; real-time order is taken from these numbers. */
  call: number
  /** Response time, Infinity when the outcome is unknown. */
  ret: number
}

export interface Model<S, I, O> {
  /** Splits a history into parts that are checked independently. */
  partition: (ops: Array<Operation<I, O>>) => Map<string, Array<Operation<I, O>>>
  init: () => S
  /** The state after `input`, or undefined when the model cannot produce `output` from `state`. */
  step: (state: S, input: I, output: O) => S | undefined
  /** A string naming the state, for the cache. */
  stateKey: (state: S) => string
  describe: (op: Operation<I, O>) => string
}

export interface CheckResult {
  ok: boolean
  /** The part (key) that is not linearizable, or whose search ran out of budget. */
  key?: string
  explanation?: string
  /** The search hit its step budget: neither proven nor refuted. */
  inconclusive?: boolean
}

export interface CheckOptions {
  /** Cap on search steps per part, so a pathological history cannot hang a test. */
  maxSteps?: number
}

interface Ev {
  /** Index of the operation in the part. */
  id: number
  isCall: boolean
  time: number
  /** The call's return event (for call events). */
  match: Ev | undefined
  prev: Ev | undefined
  next: Ev | undefined
}

export function checkLinearizable<S, I, O> (model: Model<S, I, O>, history: Array<Operation<I, O>>, opts: CheckOptions = {}): CheckResult {
  const parts = model.partition(history)
  let inconclusive: CheckResult | undefined
  for (const key of [...parts.keys()].sort()) {
    const r = checkPart(model, parts.get(key) ?? [], opts.maxSteps ?? 2_000_000)
    if (r.inconclusive === true) inconclusive ??= { ok: true, inconclusive: true, key, explanation: r.explanation }
    else if (!r.ok) return { ok: false, key, explanation: r.explanation }
  }
  return inconclusive ?? { ok: true }
}

function buildList<I, O> (ops: Array<Operation<I, O>>): Ev {
  const evs: Ev[] = []
  ops.forEach((op, id) => {
    if (!(op.ret > op.call)) throw new Error(`operation ${id} returns (${op.ret}) before its call (${op.call})`)
    const ret: Ev = { id, isCall: false, time: op.ret, match: undefined, prev: undefined, next: undefined }
    evs.push({ id, isCall: true, time: op.call, match: ret, prev: undefined, next: undefined }, ret)
  })
  // at equal times calls come first: treating the two operations as overlapping never invents a violation
  evs.sort((a, b) => a.time - b.time || Number(b.isCall) - Number(a.isCall))
  const head: Ev = { id: -1, isCall: false, time: -Infinity, match: undefined, prev: undefined, next: undefined }
  let last = head
  for (const e of evs) {
    last.next = e
    e.prev = last
    last = e
  }
  return head
}

/** Takes a call and its return out of the list. */
function lift (call: Ev): void {
  const ret = call.match as Ev
  ;(call.prev as Ev).next = call.next
  if (call.next !== undefined) call.next.prev = call.prev
  ;(ret.prev as Ev).next = ret.next
  if (ret.next !== undefined) ret.next.prev = ret.prev
}

/** Puts back what `lift` took out; must be undone in reverse order. */
function unlift (call: Ev): void {
  const ret = call.match as Ev
  ;(ret.prev as Ev).next = ret
  if (ret.next !== undefined) ret.next.prev = ret
  ;(call.prev as Ev).next = call
  if (call.next !== undefined) call.next.prev = call
}

function checkPart<S, I, O> (model: Model<S, I, O>, ops: Array<Operation<I, O>>, maxSteps: number): CheckResult {
  const head = buildList(ops)
  let knownLeft = ops.filter(op => op.ret !== Infinity).length
  let state = model.init()
  let linearized = 0n
  const stack: Array<{ call: Ev, state: S }> = []
  const seen = new Set<string>()
  // the deepest linearization reached, to explain a failure
  let best: number[] = []
  let blockedAt: Ev | undefined
  let entry = head.next
  for (let steps = 0; knownLeft > 0; steps++) {
    if (steps >= maxSteps) return { ok: true, inconclusive: true, explanation: `search budget of ${maxSteps} steps exhausted` }
    if (entry === undefined) throw new Error('checker walked off the history')
    if (entry.isCall) {
      const op = ops[entry.id]
      const next = model.step(state, op.input, op.output)
      if (next !== undefined) {
        const bits = linearized | (1n << BigInt(entry.id))
        const key = `${bits.toString(36)}|${model.stateKey(next)}`
        if (!seen.has(key)) {
          seen.add(key)
          stack.push({ call: entry, state })
          state = next
          linearized = bits
          if (op.ret !== Infinity) knownLeft--
          lift(entry)
          entry = head.next
          continue
        }
      }
      entry = entry.next
    } else {
      // an operation returned without being linearized: undo the last choice
      if (stack.length >= best.length) {
        best = stack.map(s => s.call.id)
        blockedAt = entry
      }
      const top = stack.pop()
      if (top === undefined) return { ok: false, explanation: explain(model, ops, best, blockedAt) }
      unlift(top.call)
      state = top.state
      linearized &= ~(1n << BigInt(top.call.id))
      if (ops[top.call.id].ret !== Infinity) knownLeft++
      entry = top.call.next
    }
  }
  return { ok: true }
}

function explain<S, I, O> (model: Model<S, I, O>, ops: Array<Operation<I, O>>, best: number[], blockedAt: Ev | undefined): string {
  const lines = ['no linearization exists; the longest found:']
  for (const id of best) lines.push(`  ${model.describe(ops[id])}`)
  if (blockedAt !== undefined) {
    lines.push(`after which this operation cannot take effect before it returns: ${model.describe(ops[blockedAt.id])}`)
  }
  return lines.join('\n')
}

/** The key-value store of the simulator: each key an independent register. */
export type KvInput = { kind: 'put', key: string, value: string } | { kind: 'get', key: string }
/** What a get saw (null: the key was never written); ignored for puts. */
export type KvOutput = string | null
export type KvOperation = Operation<KvInput, KvOutput>

function fmtTime (t: number): string {
  return t === Infinity ? '∞' : String(t)
}

/** Splits a history of operations on keys into one part per key, each key an independent register. */
export function partitionByKey<I extends { key: string }, O> (ops: Array<Operation<I, O>>): Map<string, Array<Operation<I, O>>> {
  const parts = new Map<string, Array<Operation<I, O>>>()
  for (const op of ops) {
    const part = parts.get(op.input.key)
    if (part === undefined) parts.set(op.input.key, [op])
    else part.push(op)
  }
  return parts
}

export const kvModel: Model<string | null, KvInput, KvOutput> = {
  partition: partitionByKey,
  init: () => null,
  step (state, input, output) {
    if (input.kind === 'put') return input.value
    return output === state ? state : undefined
  },
  stateKey: state => state === null ? '' : `=${state}`,
  describe (op) {
    const what = op.input.kind === 'put'
      ? `put(${op.input.key}, ${op.input.value})`
      : `get(${op.input.key}) -> ${op.output ?? 'nil'}`
    return `${op.client}: ${what} [${fmtTime(op.call)}, ${fmtTime(op.ret)}]`
  }
}

/**
 * Checks a KV history. A put of unknown outcome whose value no get returned
 * is left out first: where it could take
 * effect no read sees it, so any linearization with it stays one without it,
 * and each such put would otherwise double the search.
 */
export function checkKv (history: KvOperation[], opts?: CheckOptions): CheckResult {
  const seen = new Set<string | null>()
  for (const op of history) if (op.input.kind === 'get') seen.add(op.output)
  const relevant = history.filter(op => op.ret !== Infinity || op.input.kind !== 'put' || seen.has(op.input.value))
  return checkLinearizable(kvModel, relevant, opts)
}
