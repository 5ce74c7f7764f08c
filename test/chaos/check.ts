/**
 * Checks a chaos history: linearizability with the Raft simulation's
 * checker (one sequential model per kind of state: the pinset as a set of
 * independent keys, each model's version and CID as a compare-and-set
 * register, the job table as a counter of ids), and that every acknowledged
 * write is in the final state that every node holds.
 */
import { checkLinearizable } from '../../packages/raft/test/sim/linearizability.ts'
import type { CheckResult, Model, Operation } from '../../packages/raft/test/sim/linearizability.ts'
import type { Op } from './workload.ts'

/** What one node holds at the end. */
export interface FinalState {
  node: string
  pins: string[]
  models: Record<string, { version: number, cid: string, versions: Array<{ version: number, cid: string }> }>
  /** Each job with its prompt; a prompt with two jobs is listed with both. */
  jobs: Array<{ jobId: number, promptCID: string }>
  /** How many jobs its job table holds. */
  jobTable: number
}

export interface Violation {
  what: string
  detail: string
}

export interface CheckReport {
  violations: Violation[]
  /** Acknowledged writes missing from some node's final state. */
  lost: Violation[]
  inconclusive: string[]
  /** Keys checked per kind of state. */
  checked: Record<string, number>
}

// ---- the pinset: each CID present or absent

type PinInput = { f: 'add', rejected?: boolean } | { f: 'rm', absent?: boolean } | { f: 'read', present: boolean }

const pinModel: Model<boolean, PinInput, undefined> = {
  partition: () => { throw new Error('partitioned by the caller') },
  init: () => false,
  step (present, input) {
    switch (input.f) {
      case 'add': return input.rejected === true ? present : true
      case 'rm':
        if (input.absent === true) return present ? undefined : false
        // an rm of unknown outcome that found nothing changed nothing: absent either way
        return false
      case 'read': return input.present === present ? present : undefined
    }
  },
  stateKey: present => present ? '1' : '0',
  describe: op => `${op.client}: ${JSON.stringify(op.input)} [${op.call.toFixed(0)}, ${op.ret === Infinity ? '∞' : op.ret.toFixed(0)}]`
}

// ---- a model of the registry: absent, or at a version with a CID

type Registered = { version: number, cid: string } | null
type ModelInput =
  | { f: 'register', outcome?: 'ok' | 'exists', cid: string }
  | { f: 'vote', expected: number, cid: string, outcome?: 'ok' | 'conflict' | 'missing', version?: number }
  | { f: 'read', cid: string | null }

const registryModel: Model<Registered, ModelInput, undefined> = {
  partition: () => { throw new Error('partitioned by the caller') },
  init: () => null,
  step (state, input) {
    switch (input.f) {
      case 'register':
        // /api/copy registers a new name, or makes a new version of a registered one
        if (input.outcome === 'exists') return state == null ? undefined : state
        return { version: (state?.version ?? 0) + 1, cid: input.cid }
      case 'vote':
        if (input.outcome === 'missing') return state == null ? state : undefined
        if (input.outcome === 'conflict') return state != null && state.version !== input.expected ? state : undefined
        if (state == null || state.version !== input.expected) return input.outcome === 'ok' ? undefined : state
        if (input.version != null && input.version !== input.expected + 1) return undefined
        return { version: input.expected + 1, cid: input.cid }
      case 'read':
        return (state?.cid ?? null) === input.cid ? state : undefined
    }
  },
  stateKey: s => s == null ? '' : `${s.version}:${s.cid}`,
  describe: op => `${op.client}: ${JSON.stringify(op.input)} [${op.call.toFixed(0)}, ${op.ret === Infinity ? '∞' : op.ret.toFixed(0)}]`
}

// ---- the job table: ids handed out in order, never taken back

type JobInput = { f: 'submit', jobId: number } | { f: 'read', jobId: number, exists: boolean }

function jobModel (firstJobId: number): Model<number, JobInput, undefined> {
  return {
    partition: () => { throw new Error('partitioned by the caller') },
    init: () => firstJobId,
    step (next, input) {
      if (input.f === 'submit') return input.jobId === next ? next + 1 : undefined
      return (input.jobId < next) === input.exists ? next : undefined
    },
    stateKey: next => String(next),
    describe: op => `${op.client}: ${JSON.stringify(op.input)} [${op.call.toFixed(0)}, ${op.ret === Infinity ? '∞' : op.ret.toFixed(0)}]`
  }
}

function operation<I> (op: Op, input: I): Operation<I, undefined> {
  return { client: `p${op.process}@${op.node}#${op.index}`, input, output: undefined, call: op.call, ret: op.ret }
}

function push<K, V> (map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key)
  if (list == null) map.set(key, [value])
  else list.push(value)
}

export interface CheckInput {
  history: Op[]
  pinKeys: string[]
  modelIds: string[]
  /** The CID /api/copy registers a model with. */
  registerCID: string
  firstJobId: number
  /** The prompt CID of every submitted prompt (known from the answer or computed after). */
  promptCIDs: Map<string, string>
  finals: FinalState[]
  maxSteps?: number
}

export function checkHistory (input: CheckInput): CheckReport {
  const report: CheckReport = { violations: [], lost: [], inconclusive: [], checked: {} }
  const { history, finals } = input
  const judge = (what: string, r: CheckResult): void => {
    if (r.inconclusive === true) report.inconclusive.push(`${what}: ${r.explanation ?? ''}`)
    else if (!r.ok) report.violations.push({ what: `${what} is not linearizable`, detail: r.explanation ?? '' })
  }
  const done = history.filter(op => op.type === 'ok' || op.type === 'info')

  // pins
  const pins = new Map<string, Array<Operation<PinInput, undefined>>>(input.pinKeys.map(k => [k, []]))
  for (const op of done) {
    const r = op.result
    if (op.kind === 'pin.add' && op.key != null) push(pins, op.key, operation(op, { f: 'add', rejected: r?.kind === 'pin.add' ? r.rejected : undefined }))
    if (op.kind === 'pin.rm' && op.key != null) push(pins, op.key, operation(op, { f: 'rm', absent: r?.kind === 'pin.rm' ? r.absent : undefined }))
    if (r?.kind === 'pin.read') for (const key of input.pinKeys) push(pins, key, operation(op, { f: 'read', present: r.pins.includes(key) }))
  }
  for (const [key, ops] of pins) judge(`pin ${key}`, checkLinearizable({ ...pinModel, partition: () => new Map([[key, ops]]) }, ops, { maxSteps: input.maxSteps }))
  report.checked.pins = pins.size

  // models
  const models = new Map<string, Array<Operation<ModelInput, undefined>>>(input.modelIds.map(k => [k, []]))
  for (const op of done) {
    const r = op.result
    if (op.kind === 'model.register' && op.key != null) push(models, op.key, operation(op, { f: 'register', outcome: r?.kind === 'model.register' ? r.outcome : undefined, cid: input.registerCID }))
    if (op.kind === 'model.vote' && op.key != null && op.args?.expected != null && op.args.cid != null) {
      push(models, op.key, operation(op, { f: 'vote', expected: op.args.expected, cid: op.args.cid, ...(r?.kind === 'model.vote' ? { outcome: r.outcome, version: r.version } : {}) }))
    }
    if (r?.kind === 'model.read') for (const key of input.modelIds) push(models, key, operation(op, { f: 'read', cid: r.cids[key] ?? null }))
  }
  for (const [key, ops] of models) judge(`model ${key}`, checkLinearizable({ ...registryModel, partition: () => new Map([[key, ops]]) }, ops, { maxSteps: input.maxSteps }))
  report.checked.models = models.size

  // jobs: a submit of unknown outcome took the id the final state gives its prompt, or never happened
  const finalIds = new Map<string, Set<number>>()
  for (const f of finals) for (const j of f.jobs) if (j.jobId >= input.firstJobId) finalIds.set(j.promptCID, new Set([...finalIds.get(j.promptCID) ?? [], j.jobId]))
  const jobs: Array<Operation<JobInput, undefined>> = []
  for (const op of done) {
    const r = op.result
    if (op.kind === 'job.submit') {
      const cid = r?.kind === 'job.submit' ? r.promptCID : input.promptCIDs.get(op.args?.prompt ?? '')
      const ids = cid == null ? undefined : finalIds.get(cid)
      const jobId = r?.kind === 'job.submit' ? r.jobId : ids == null ? undefined : Math.min(...ids)
      if (jobId != null) jobs.push(operation(op, { f: 'submit', jobId }))
    }
    if (r?.kind === 'job.read' && op.args?.jobId != null) jobs.push(operation(op, { f: 'read', jobId: op.args.jobId, exists: r.exists }))
  }
  judge('the job table', checkLinearizable({ ...jobModel(input.firstJobId), partition: () => new Map([['jobs', jobs]]) }, jobs, { maxSteps: input.maxSteps }))
  report.checked.jobs = 1

  checkFinal(input, report)
  return report
}

/** Every node holds the same state, with every acknowledged write in it, and nothing twice. */
function checkFinal (input: CheckInput, report: CheckReport): void {
  const { history, finals } = input
  const ok = history.filter(op => op.type === 'ok')
  const known = new Set(input.promptCIDs.values())
  for (const f of finals) {
    // pins: an acknowledged add with no remove invoked after it must be there; and conversely
    for (const key of input.pinKeys) {
      // writes that may have changed the key: rejected adds and removes that found nothing did not
      const writes = history.filter(op => op.key === key && (op.kind === 'pin.add' || op.kind === 'pin.rm') && (op.type === 'ok' || op.type === 'info') &&
        !(op.result?.kind === 'pin.add' && op.result.rejected) && !(op.result?.kind === 'pin.rm' && op.result.absent))
      for (const w of writes.filter(op => op.type === 'ok')) {
        const later = writes.some(o => o !== w && o.kind !== w.kind && !(o.ret < w.call))
        if (later) continue
        const present = f.pins.includes(key)
        if (w.kind === 'pin.add' && !present) report.lost.push({ what: `pin ${key} added (op ${w.index}) is missing on ${f.node}`, detail: describe(w) })
        if (w.kind === 'pin.rm' && present) report.lost.push({ what: `pin ${key} removed (op ${w.index}) is back on ${f.node}`, detail: describe(w) })
      }
    }
    // models: every acknowledged version, with its CID, in the model's versions
    for (const op of ok) {
      if (op.result?.kind !== 'model.vote' || op.result.outcome !== 'ok' || op.key == null) continue
      const m = f.models[op.key]
      const version = op.result.version
      if (m == null || !m.versions.some(v => v.version === version && v.cid === op.args?.cid)) {
        report.lost.push({ what: `model ${op.key} version ${version} (op ${op.index}) is missing on ${f.node}`, detail: describe(op) })
      }
    }
    for (const op of ok) {
      if (op.result?.kind === 'model.register' && op.result.outcome === 'ok' && op.key != null && f.models[op.key] == null) {
        report.lost.push({ what: `model ${op.key} registered (op ${op.index}) is missing on ${f.node}`, detail: describe(op) })
      }
    }
    // jobs: every acknowledged submit under its id; no prompt twice; no job the workload did not submit
    const byCID = new Map<string, number[]>()
    for (const j of f.jobs) if (j.jobId >= input.firstJobId) byCID.set(j.promptCID, [...byCID.get(j.promptCID) ?? [], j.jobId])
    for (const op of ok) {
      if (op.result?.kind !== 'job.submit') continue
      const ids = byCID.get(op.result.promptCID) ?? []
      if (!ids.includes(op.result.jobId)) report.lost.push({ what: `job ${op.result.jobId} (op ${op.index}) is missing on ${f.node}`, detail: describe(op) })
    }
    if (f.jobTable !== f.jobs.length) report.violations.push({ what: `${f.node}'s job table holds ${f.jobTable} jobs, its decisions made ${f.jobs.length}`, detail: '' })
    for (const [cid, ids] of byCID) {
      if (ids.length > 1) report.violations.push({ what: `one submission became jobs ${ids.join(', ')} on ${f.node}`, detail: `prompt ${cid}` })
      if (!known.has(cid)) report.violations.push({ what: `job ${ids.join(', ')} on ${f.node} was never submitted`, detail: `prompt ${cid}` })
    }
  }
  // the nodes agree
  const [first, ...rest] = finals
  for (const f of rest) {
    const diff: string[] = []
    if ([...f.pins].sort().join() !== [...first.pins].sort().join()) diff.push('pins')
    const models = (s: FinalState): string => Object.entries(s.models).sort().map(([id, m]) => `${id}@${m.version}=${m.cid}`).join()
    if (models(f) !== models(first)) diff.push('models')
    const jobs = (s: FinalState): string => s.jobs.map(j => `${j.jobId}=${j.promptCID}`).sort().join()
    if (jobs(f) !== jobs(first)) diff.push('jobs')
    if (diff.length > 0) report.violations.push({ what: `${f.node} and ${first.node} hold different ${diff.join(', ')}`, detail: '' })
  }
}

export function describe (op: Op): string {
  const end = op.ret === Infinity ? '∞' : op.ret.toFixed(0)
  return `#${op.index} p${op.process} ${op.node} ${op.kind}${op.key == null ? '' : ` ${op.key}`}${op.args == null ? '' : ` ${JSON.stringify(op.args)}`} ${op.type}${op.result == null ? '' : ` ${JSON.stringify(op.result)}`}${op.error == null ? '' : ` (${op.error})`} [${op.call.toFixed(0)}, ${end}] ms`
}
