/**
 * Training on real daemons over loopback, against PyTorch (Debian's
 * python3-torch with OpenBLAS, installed from apt here when missing) on the
 * same model, batch and optimizer in the same run. Prints:
 * - samples/s of a one-node job at 1 and at 2 onnxruntime threads, against
 *   a PyTorch loop at as many threads, and against a plain onnxruntime
 *   training-step loop (the same training graph, feeds and optimizer, no
 *   job) in this process;
 * - the fraction of step time spent exchanging gradients (time beyond the
 *   coordinator's own compute) for MLPs of about 1M and 10M parameters on
 *   two daemons, against PyTorch DistributedDataParallel's over gloo with two
 *   processes (its step with the all-reduce against its step under
 *   no_sync()), both sides at 1 thread a process, and the samples/s of both;
 * - the time from kill -9 of a worker in a three-node job to the next step
 *   made without it.
 * Figures come from the coordinator's training_progress events on
 * /api/v1/ws. Env: BENCH_TRAINING_STEPS (40) steps measured per figure;
 * BENCH_ONLY, some of one,exchange,resume; BENCH_DAEMON_NODE_OPTIONS, extra
 * Node flags for the daemons (--cpu-prof, say).
 */
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import * as ort from 'onnxruntime-node'
import { buildMlpLoss, buildTrainingGraph, createAdamW, clipGradNorm, gradientName, initMlpWeights, mlpParameterShapes, seededRandom, writeModel } from '@node-daemon/onnx'
import { encodeTensorDataset } from '@node-daemon/training'
import { withCleanup } from './lib/cleanup.ts'
import { ensureTorch, torchDdp, torchSamplesPerSecond } from './lib/torch-peer.ts'
import { numberFromEnv, onlyFromEnv, say } from './lib/cli.ts'
import { spawnDaemon } from './lib/daemon.ts'
import type { MlpConfig } from '@node-daemon/onnx'
import type { DaemonProcess } from './lib/daemon.ts'
import type { Cleanup } from './lib/cleanup.ts'
import type { TorchShape } from './lib/torch-peer.ts'

const PARTS = ['one', 'exchange', 'resume'] as const
const BATCH = 64
const ROWS = 1024
const CLASSES = 10
/** A daemon's config, onnxruntime at `threads` a session. */
const config = (threads: number): string => `cluster:\n  heartbeat_ms: 250\n  node_timeout_ms: 4000\n  voter_timeout_ms: 6000\ninference:\n  default_models: false\n  threads: ${threads}\n`
/** Threads of each process when two train side by side on the machine's two cores. */
const PAIR_THREADS = 1

interface Step { step: number, samples_per_second: number, step_ms: number, exchange_ms: number, workers: number, at: number }

function dataset (inputs: number): Uint8Array {
  const random = seededRandom(1)
  const features = new Float32Array(ROWS * inputs).map(() => random() * 2 - 1)
  const labels = new Int32Array(ROWS).map((_, i) => i % CLASSES)
  return encodeTensorDataset({ features, labels, featureCount: inputs })
}

async function post (d: DaemonProcess, path: string, body: unknown): Promise<any> {
  const response = await fetch(`${d.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const json = await response.json()
  if (!response.ok) throw new Error(`${path}: ${response.status} ${JSON.stringify(json)}`)
  return json
}

async function addDataset (d: DaemonProcess, bytes: Uint8Array): Promise<string> {
  const form = new FormData()
  form.append('file', new Blob([bytes as Uint8Array<ArrayBuffer>]), 'data')
  const response = await fetch(`${d.url}/api/v0/ai/dataset/add`, { method: 'POST', body: form })
  const json: any = await response.json()
  if (!response.ok) throw new Error(`dataset/add: ${JSON.stringify(json)}`)
  return json.cid
}

/** Runs a job at `d` and collects its steps; `during` may act on the steps seen so far. */
async function job (d: DaemonProcess, request: Record<string, unknown>, during?: (steps: Step[]) => Promise<void>): Promise<Step[]> {
  const steps: Step[] = []
  const ws = new WebSocket(`${d.url.replace('http', 'ws')}/api/v1/ws`)
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  ws.on('message', data => {
    const event = JSON.parse(String(data))
    if (event.type === 'training_progress') steps.push({ ...event.data, at: performance.now() })
  })
  try {
    const { session_id: session } = await post(d, '/api/v1/training/start', request)
    for (let i = 0; i < 6000; i++) {
      await during?.(steps)
      const status: any = await (await fetch(`${d.url}/api/v1/training/status?session_id=${session}`)).json()
      if (status.status === 'failed') throw new Error(`training failed: ${status.error}`)
      if (status.status === 'completed') {
        // A worker dropped is no failure of the job's, but a figure of it would measure fewer nodes.
        const dropped = status.nodes?.filter((n: any) => n.drops > 0) ?? []
        if (dropped.length > 0) say(`workers dropped: ${JSON.stringify(dropped)}`)
        return steps
      }
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    throw new Error('the job did not finish in 10 minutes')
  } finally {
    ws.close()
  }
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

/** The plain loop: one session of the training graph, feeds, run, clip, AdamW. */
async function plainLoop (config: MlpConfig, steps: number, threads: number): Promise<number> {
  const shapes = mlpParameterShapes(config)
  const graph = buildTrainingGraph(buildMlpLoss(config, { batchSize: BATCH }), { loss: 'loss', params: shapes.map(s => s.name), keep: ['correct'] })
  // The replica's options: spinning threads, onnxruntime's default, ran 3 to 4 times slower on two busy cores.
  const session = await ort.InferenceSession.create(writeModel(graph).model, { graphOptimizationLevel: 'all', intraOpNumThreads: threads, extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } } })
  const weights = initMlpWeights(config, 0)
  const optimizer = createAdamW({ lr: 1e-3 })
  const random = seededRandom(2)
  const features = new Float32Array(BATCH * config.inputs).map(() => random())
  const labels = BigInt64Array.from({ length: BATCH }, (_, i) => BigInt(i % CLASSES))
  let t0 = 0
  for (let step = -3; step < steps; step++) {
    if (step === 0) t0 = performance.now()
    const feeds: Record<string, ort.Tensor> = { features: new ort.Tensor('float32', features, [BATCH, config.inputs]), labels: new ort.Tensor('int64', labels, [BATCH]) }
    for (const s of shapes) feeds[s.name] = new ort.Tensor('float32', weights[s.name], s.dims)
    const out = await session.run(feeds)
    const grads = Object.fromEntries(shapes.map(s => [s.name, out[gradientName(s.name)].data as Float32Array]))
    clipGradNorm(grads, 1)
    optimizer.step(weights, grads)
  }
  const seconds = (performance.now() - t0) / 1000
  await session.release()
  return steps * BATCH / seconds
}

async function start (cleanup: Cleanup, label: string, threads: number, bootstrap?: DaemonProcess): Promise<DaemonProcess> {
  const d = await spawnDaemon({ label, repo: await mkdtemp(join(tmpdir(), `bench-training-${label}-`)), config: config(threads), args: bootstrap == null ? [] : ['--bootstrap', bootstrap.swarmAddr], nodeOptions: process.env.BENCH_DAEMON_NODE_OPTIONS, signal: cleanup.signal })
  cleanup.defer(async () => d.stop())
  return d
}

export async function main (): Promise<number> {
  const steps = numberFromEnv('BENCH_TRAINING_STEPS', 40, 10_000, { whole: true })
  const small: MlpConfig = { inputs: 512, hidden: [1024, 512], classes: CLASSES }
  const large: MlpConfig = { inputs: 1024, hidden: [2048, 2048, 2048], classes: CLASSES }
  const params = (c: MlpConfig): number => mlpParameterShapes(c).reduce((n, s) => n + s.dims.reduce((a, b) => a * b, 1), 0)
  const only = onlyFromEnv(PARTS, 'part')
  const torchShape = (c: MlpConfig, threads: number): TorchShape => ({ inputs: c.inputs, hidden: c.hidden, classes: c.classes, batch: BATCH, steps, threads })
  const epochs = Math.ceil((steps + 3) * BATCH / ROWS)
  const request = (config: MlpConfig, cid: string, nodes: number | string[]): Record<string, unknown> => ({ dataset: cid, model: { model_type: 'mlp-classifier', ...config }, batch_size: BATCH, epochs, learning_rate: 1e-3, checkpoint_every: 100_000, nodes })
  if (only.has('one') || only.has('exchange')) await ensureTorch()
  return withCleanup(async (cleanup) => {
    // The first node; the one at the pair's threads serves the two-node parts too.
    let a: DaemonProcess | undefined
    if (only.has('one')) {
      // Each daemon runs alone, its sessions at that many threads; the one kept for the pair comes last.
      for (const threads of [2, 1]) {
        const node = await start(cleanup, threads === PAIR_THREADS ? 'a' : `one-${threads}`, threads)
        const cid = await addDataset(node, dataset(small.inputs))
        // The peers run before and after the job, so that a neighbour's load that comes or goes weighs on both sides alike.
        const plainBefore = await plainLoop(small, steps, threads)
        const torchBefore = await torchSamplesPerSecond(torchShape(small, threads))
        const one = await job(node, request(small, cid, 1))
        const plain = (plainBefore + await plainLoop(small, steps, threads)) / 2
        const torch = (torchBefore + await torchSamplesPerSecond(torchShape(small, threads))) / 2
        const ours = median(one.slice(3).map(s => s.samples_per_second))
        say(`samples/s on one node, ${params(small)} parameters, batch ${BATCH}, ${threads} thread${threads > 1 ? 's' : ''}: ${ours.toFixed(0)} = ${(ours / torch).toFixed(2)} x PyTorch's ${torch.toFixed(0)} (target >= 1.0); ${(ours / plain).toFixed(2)} x the plain onnxruntime loop's ${plain.toFixed(0)}`)
        if (threads === PAIR_THREADS) a = node
        else await node.stop()
      }
    }
    a ??= await start(cleanup, 'a', PAIR_THREADS)
    const smallData = await addDataset(a, dataset(small.inputs))

    // The other nodes start once the one-node figure is taken: an idle daemon still takes a share of two cores.
    const b = only.has('exchange') || only.has('resume') ? await start(cleanup, 'b', PAIR_THREADS, a) : undefined
    const c = only.has('resume') ? await start(cleanup, 'c', PAIR_THREADS, a) : undefined
    await new Promise(resolve => setTimeout(resolve, 3000))

    if (only.has('exchange') && b != null) {
      for (const [name, config] of [['1M', small], ['10M', large]] as const) {
        const cid = config === small ? smallData : await addDataset(a, dataset(config.inputs))
        const two = (await job(a, request(config, cid, [a.peerId, b.peerId]))).slice(3)
        // A step the other node dropped out of measures one node, not an exchange.
        const alone = two.filter(s => s.workers !== 2).length
        if (alone > 0) throw new Error(`${alone} of ${two.length} steps of the two-node ${name} job ran without the second node; its error is in /api/v1/training/status`)
        const exchange = two.reduce((n, s) => n + s.exchange_ms, 0) / two.reduce((n, s) => n + s.step_ms, 0)
        const ddp = await torchDdp(torchShape(config, PAIR_THREADS))
        const ddpExchange = Math.max(0, ddp.stepMs - ddp.computeMs) / ddp.stepMs
        const ours = median(two.map(s => s.samples_per_second))
        say(`gradient exchange on two nodes, ${name} (${params(config)} parameters): ${(exchange * 100).toFixed(1)}% of step time = ${ddpExchange > 0 ? `${(exchange / ddpExchange).toFixed(2)} x` : 'no ratio to'} DDP's ${(ddpExchange * 100).toFixed(1)}% (target <= 1.2); median step ${median(two.map(s => s.step_ms)).toFixed(0)} ms against DDP's ${ddp.stepMs.toFixed(0)} ms (${ddp.computeMs.toFixed(0)} ms without the all-reduce); ${ours.toFixed(0)} samples/s = ${(ours / ddp.samplesPerSecond).toFixed(2)} x DDP's ${ddp.samplesPerSecond.toFixed(0)}`)
      }
    }

    if (only.has('resume') && b != null && c != null) {
      let killedAt = 0
      const three = await job(a, { ...request(small, smallData, [a.peerId, b.peerId, c.peerId]), epochs: epochs * 2 }, async (seen) => {
        if (killedAt === 0 && seen.length >= 10) {
          await c.kill()
          killedAt = performance.now()
        }
      })
      const before = three.filter(s => s.at < killedAt)
      if (before.some(s => s.workers !== 3)) throw new Error('the three-node job ran without all three nodes before the kill')
      const next = three.find(s => s.at > killedAt && s.workers === 2)
      say(`resume after kill -9 of a worker: the next step without it ${next == null ? 'never came' : `${(next.at - killedAt).toFixed(0)} ms later`}; median step ${median(three.map(s => s.step_ms)).toFixed(0)} ms`)
    }
    return 0
  })
}
