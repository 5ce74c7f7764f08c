/**
 * Training verbs over document 003's routes: `train start`, `train list`,
 * `train status [--follow]` with a live line of step, loss, samples/s and
 * ETA, and `train stop|pause|resume`.
 */
import { readFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { InvalidArgumentError } from 'commander'
import { apiOf, clientCommand, print, request, table } from '../command.ts'
import type { Api } from '../client.ts'
import type { ClientOptions } from '../command.ts'
import type { Command } from 'commander'

/** Document 003's status of a session, as far as these verbs read it. */
interface Session {
  session_id: string
  status: string
  progress: { epoch: number, total_epochs: number, loss: number | null, accuracy: number | null, step: number, total_steps: number | null, samples_per_second: number | null }
  nodes: Array<{ id: string, rank: number, status: string, coordinator: boolean }>
  model: string
  model_id: string | null
  dataset: string
  checkpoint_cid: string | null
  error: string | null
  created_at: string
}

/** Statuses a session does not leave. */
const FINAL = new Set(['completed', 'failed', 'stopped'])

function positiveInt (value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a positive integer is expected')
  return n
}

function positiveNumber (value: string): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('a positive number is expected')
  return n
}

function integer (value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n)) throw new InvalidArgumentError('an integer is expected')
  return n
}

/** --nodes: how many, or which peers (comma-separated). */
function nodesOf (value: string): number | string[] {
  return /^\d+$/.test(value) ? positiveInt(value) : value.split(',').map(v => v.trim()).filter(v => v !== '')
}

/** --model: a name or CID, or an architecture's config.json, inline or as a file. */
async function modelOf (value: string | undefined): Promise<unknown> {
  if (value == null) return undefined
  const json = value.trimStart().startsWith('{') ? value : value.endsWith('.json') ? await readFile(value, 'utf8') : undefined
  if (json == null) return value
  try {
    return JSON.parse(json)
  } catch (err: any) {
    throw new Error(`--model: not a JSON config (${err.message})`)
  }
}

const fixed = (n: number | null | undefined, digits: number): string | undefined => n == null ? undefined : n.toFixed(digits)

/** 0:42, 1:02:03. */
function clock (seconds: number): string {
  const s = Math.round(seconds)
  const [h, m, r] = [Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60]
  const pad = (n: number): string => String(n).padStart(2, '0')
  return h > 0 ? `${h}:${pad(m)}:${pad(r)}` : `${m}:${pad(r)}`
}

/** Where the session is, how fast, and how long until it ends. */
function progressText (s: Session, etaSeconds?: number): string {
  const p = s.progress
  return [
    p.total_epochs > 0 ? `epoch ${p.epoch}/${p.total_epochs}` : undefined,
    `step ${p.step}${p.total_steps == null ? '' : `/${p.total_steps}`}`,
    p.loss == null ? undefined : `loss ${fixed(p.loss, 4) as string}`,
    p.accuracy == null ? undefined : `accuracy ${fixed(p.accuracy, 3) as string}`,
    p.samples_per_second == null ? undefined : `${fixed(p.samples_per_second, 1) as string} samples/s`,
    etaSeconds == null || FINAL.has(s.status) ? undefined : `ETA ${clock(etaSeconds)}`
  ].filter(x => x != null).join('  ')
}

const liveLine = (s: Session, etaSeconds?: number): string => `${s.session_id}  ${s.status}  ${progressText(s, etaSeconds)}`

function summary (s: Session): string[] {
  const rows: Array<[string, string | undefined]> = [
    ['status', s.status],
    ['model', s.model_id ?? s.model],
    ['dataset', s.dataset],
    ['progress', progressText(s)],
    ['checkpoint', s.checkpoint_cid ?? undefined],
    ['error', s.error ?? undefined]
  ]
  const nodes = s.nodes.length === 0 ? [] : ['', ...table(['NODE', 'RANK', 'STATUS', 'COORDINATOR'], s.nodes.map(n => [n.id, n.rank, n.status, n.coordinator ? 'yes' : '']))]
  return [...table(['session', s.session_id], rows.filter(([, v]) => v != null && v !== '')), ...nodes]
}

const statusPath = (id?: string): string => `/api/v1/training/status${id == null ? '' : `?session_id=${encodeURIComponent(id)}`}`

/**
 * Polls a session until it ends or `timeout` seconds pass: one line redrawn
 * in place on a terminal, a line per step otherwise, NDJSON with --json. A
 * failed session fails the command.
 */
async function follow (api: Api, id: string, opts: ClientOptions): Promise<void> {
  const tty = process.stdout.isTTY === true && opts.json !== true
  const interval = opts.interval as number
  const deadline = opts.timeout == null ? Infinity : Date.now() + (opts.timeout as number) * 1000
  let first: { at: number, step: number } | undefined
  let shown = ''
  let s: Session
  for (;;) {
    s = await request<Session>(api, 'GET', statusPath(id))
    const now = Date.now()
    const { step, total_steps: total } = s.progress
    // The ETA is from the rate seen while following, which excludes the start-up.
    if (first == null && s.status === 'running') first = { at: now, step }
    const rate = first != null && step > first.step ? (step - first.step) / ((now - first.at) / 1000) : undefined
    const eta = rate != null && total != null ? (total - step) / rate : undefined
    const key = `${s.status} ${step}`
    if (tty) {
      process.stdout.write(`\r\x1b[K${liveLine(s, eta)}`)
    } else if (key !== shown) {
      process.stdout.write(opts.json === true ? `${JSON.stringify(s)}\n` : `${liveLine(s, eta)}\n`)
    }
    shown = key
    if (FINAL.has(s.status)) break
    if (now >= deadline) {
      if (tty) process.stdout.write('\n')
      throw new Error(`${s.session_id} is still ${s.status} after ${opts.timeout as number}s`)
    }
    await sleep(Math.min(interval, Math.max(0, deadline - now)))
  }
  if (tty) process.stdout.write('\n')
  if (s.status === 'failed') throw new Error(`${s.session_id} failed: ${s.error ?? 'no reason given'}`)
  if (opts.json !== true && s.model_id != null) process.stdout.write(`model: ${s.model_id}\n`)
}

/** --follow's options, on `start` and `status`. */
function followOptions (cmd: Command): Command {
  return cmd
    .option('--follow', 'follow the session until it ends, on one live line')
    .option('--interval <ms>', 'how often --follow asks', positiveInt, 1000)
    .option('--timeout <seconds>', 'give --follow up (and fail) after this long', positiveNumber)
}

async function start (opts: ClientOptions): Promise<void> {
  const api = await apiOf(opts)
  const body = {
    dataset: opts.dataset,
    model: await modelOf(opts.model),
    nodes: opts.nodes,
    epochs: opts.epochs,
    batch_size: opts.batchSize,
    learning_rate: opts.learningRate,
    optimizer: opts.optimizer,
    schedule: opts.schedule,
    warmup_steps: opts.warmupSteps,
    seed: opts.seed,
    sequence_length: opts.sequenceLength,
    checkpoint_every: opts.checkpointEvery,
    strategy: opts.strategy,
    name: opts.name
  }
  const started = await request<Session>(api, 'POST', '/api/v1/training/start', body)
  if (opts.follow === true) {
    if (opts.json !== true) process.stdout.write(`started ${started.session_id}\n`)
    await follow(api, started.session_id, opts)
    return
  }
  print(opts, started, s => `started ${s.session_id} (${s.status})`)
}

/** Adds `train` and its verbs to `program`. */
export function trainCommands (program: Command): void {
  const train = program.command('train').description('distributed training sessions')

  followOptions(clientCommand(train, 'start'))
    .description('start training a model on a dataset, on this node or across nodes')
    .requiredOption('--dataset <cid>', 'the dataset: a CID (of `add` or ai/dataset/add) or its registered name')
    .option('--model <model>', 'a registered model, a model directory\'s CID, or a config.json (a file or inline JSON) of an architecture to train from scratch (default: the node\'s language model for text, an MLP for tensors)')
    .option('--nodes <n|peer-ids>', 'how many nodes, or which (peer ids, comma-separated); default 1, this node', nodesOf)
    .option('--epochs <n>', 'passes over the dataset', positiveInt)
    .option('--batch-size <n>', 'the global batch size', positiveInt)
    .option('--learning-rate <x>', 'the learning rate', positiveNumber)
    .option('--optimizer <name>', 'adamw (default) or sgd')
    .option('--schedule <name>', 'constant (default) or cosine')
    .option('--warmup-steps <n>', 'steps of learning-rate warm-up', integer)
    .option('--seed <n>', 'the seed of initialization and shuffling', integer)
    .option('--sequence-length <n>', 'tokens per sample, for text', positiveInt)
    .option('--checkpoint-every <n>', 'steps between checkpoints', positiveInt)
    .option('--strategy <name>', 'data_parallel (default) or cooperative_sgd')
    .option('--name <name>', 'the name the trained model is registered under')
    .action(start)

  clientCommand(train, 'list')
    .alias('ls')
    .description('every training session, newest first')
    .action(async (opts: ClientOptions) => {
      const { sessions } = await request<{ sessions: Session[] }>(await apiOf(opts), 'GET', '/api/v1/training/sessions')
      print(opts, { sessions }, () => table(['SESSION', 'STATUS', 'MODEL', 'STEP', 'LOSS', 'CREATED'], sessions.map(s => [
        s.session_id, s.status, s.model_id ?? s.model, `${s.progress.step}${s.progress.total_steps == null ? '' : `/${s.progress.total_steps}`}`, fixed(s.progress.loss, 4), s.created_at
      ])))
    })

  followOptions(clientCommand(train, 'status'))
    .description('a training session (default the latest): status, progress and nodes')
    .argument('[id]', 'the session: training_3, or 3')
    .action(async (id: string | undefined, opts: ClientOptions) => {
      const api = await apiOf(opts)
      const s = await request<Session>(api, 'GET', statusPath(id))
      if (opts.follow === true) await follow(api, s.session_id, opts)
      else print(opts, s, summary)
    })

  for (const [action, target] of [['stop', 'stopped'], ['pause', 'paused'], ['resume', 'running']] as const) {
    clientCommand(train, action)
      .description(`${action} a training session, and wait until it is ${target}`)
      .argument('<id>', 'the session: training_3, or 3')
      .option('--timeout <seconds>', `fail if it is not ${target} after this long`, positiveNumber, 30)
      .action(async (id: string, opts: ClientOptions) => {
        const api = await apiOf(opts)
        let s = await request<Session>(api, 'POST', `/api/v1/training/${action}`, { session_id: id })
        // The nodes act on the request a moment later; the command returns once they have.
        const deadline = Date.now() + (opts.timeout as number) * 1000
        while (s.status !== target && !FINAL.has(s.status)) {
          if (Date.now() >= deadline) throw new Error(`${s.session_id} is still ${s.status} after ${opts.timeout as number}s`)
          await sleep(200)
          s = await request<Session>(api, 'GET', statusPath(s.session_id))
        }
        print(opts, s, () => `${s.session_id} ${s.status}`)
      })
  }
}
