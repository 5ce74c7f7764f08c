/**
 * A plain training loop for the default models, on one node: onnxruntime
 * runs the training graph that packages/onnx's autodiff makes from the loss
 * graph (loss and every gradient in one pass), and AdamW updates the
 * weights in place. The training issue replaces this with the cluster's
 * data-parallel training; this loop only has to make the defaults write text.
 */
import * as ort from 'onnxruntime-node'
import { buildEncoderLoss, buildGptLoss, buildTrainingGraph, clipGradNorm, createAdamW, decaysMatrices, encoderParameterShapes, gptParameterShapes, gradientName, initEncoderWeights, initGptWeights, seededRandom, warmupCosineSchedule, writeModel } from '@node-daemon/onnx'
import type { EncoderConfig, GptConfig, Model, ParameterShape } from '@node-daemon/onnx'

export interface TrainSettings {
  batchSize: number
  sequenceLength: number
  steps: number
  /** Peak learning rate, reached after `warmup` steps and decayed by a cosine to a tenth of it. */
  learningRate: number
  warmup: number
  seed: number
  /** Called every `every` steps with the mean loss since the last call. */
  progress?: (report: { step: number, loss: number, lr: number, tokensPerSecond: number }) => void
  every?: number
  signal?: AbortSignal
}

const int64 = (values: ArrayLike<number>, dims: number[]): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(Array.from(values, v => BigInt(v))), dims)

/** The causal LM objective: windows of the token stream, each predicting its next token. */
export async function trainDecoder (config: GptConfig, stream: Int32Array, settings: TrainSettings): Promise<Record<string, Float32Array>> {
  const { batchSize: B, sequenceLength: T } = settings
  const random = seededRandom(settings.seed)
  return train(buildGptLoss(config, { batchSize: B, sequenceLength: T }), gptParameterShapes(config), initGptWeights(config, settings.seed), settings, () => {
    const ids = new Int32Array(B * T)
    const labels = new Int32Array(B * T)
    for (let b = 0; b < B; b++) {
      const at = Math.floor(random() * (stream.length - T - 1))
      ids.set(stream.subarray(at, at + T), b * T)
      labels.set(stream.subarray(at + 1, at + T + 1), b * T)
    }
    return { input_ids: int64(ids, [B, T]), labels: int64(labels, [B, T]) }
  })
}

/**
 * BERT's masked-LM objective: 15% of the tokens of each window are to be
 * predicted, shown as the mask token 80% of the time, a random token 10%,
 * and themselves 10%.
 */
export async function trainEncoder (config: EncoderConfig, stream: Int32Array, maskId: number, settings: TrainSettings): Promise<Record<string, Float32Array>> {
  const { batchSize: B, sequenceLength: T } = settings
  const random = seededRandom(settings.seed)
  const weights = await train(buildEncoderLoss(config, { batchSize: B, sequenceLength: T }), encoderParameterShapes(config), initEncoderWeights(config, settings.seed), settings, () => {
    const ids = new Int32Array(B * T)
    const labels = new Int32Array(B * T).fill(-100)
    for (let b = 0; b < B; b++) {
      const at = Math.floor(random() * (stream.length - T))
      for (let t = 0; t < T; t++) {
        const id = stream[at + t]
        const i = b * T + t
        ids[i] = id
        if (random() >= 0.15) continue
        labels[i] = id
        const r = random()
        if (r < 0.8) ids[i] = maskId
        else if (r < 0.9) ids[i] = Math.floor(random() * config.vocabSize)
      }
    }
    return {
      input_ids: int64(ids, [B, T]),
      attention_mask: int64(new Int32Array(B * T).fill(1), [B, T]),
      token_type_ids: int64(new Int32Array(B * T), [B, T]),
      labels: int64(labels, [B, T])
    }
  })
  // The MLM head is for training only; the encoder graph has no use for it.
  return Object.fromEntries(Object.entries(weights).filter(([name]) => !name.startsWith('cls.')))
}

async function train (lossGraph: Model, shapes: ParameterShape[], weights: Record<string, Float32Array>, settings: TrainSettings, batch: () => Record<string, ort.Tensor>): Promise<Record<string, Float32Array>> {
  const names = shapes.map(s => s.name)
  const graph = buildTrainingGraph(lossGraph, { loss: 'loss', params: names })
  const session = await ort.InferenceSession.create(writeModel(graph).model, { graphOptimizationLevel: 'all' })
  const optimizer = createAdamW({
    lr: warmupCosineSchedule({ peak: settings.learningRate, warmupSteps: settings.warmup, totalSteps: settings.steps, final: settings.learningRate / 10 }),
    weightDecay: 0.1,
    decays: decaysMatrices(shapes)
  })
  const every = settings.every ?? 50
  let sum = 0
  let count = 0
  let t0 = performance.now()
  try {
    for (let step = 1; step <= settings.steps; step++) {
      settings.signal?.throwIfAborted()
      const feeds = batch()
      for (const s of shapes) feeds[s.name] = new ort.Tensor('float32', weights[s.name], s.dims)
      const out = await session.run(feeds)
      const grads: Record<string, Float32Array> = {}
      for (const name of names) grads[name] = out[gradientName(name)].data as Float32Array
      clipGradNorm(grads, 1)
      const lr = optimizer.step(weights, grads)
      sum += (out.loss.data as Float32Array)[0]
      count++
      if (step % every === 0 || step === settings.steps) {
        const seconds = (performance.now() - t0) / 1000
        settings.progress?.({ step, loss: sum / count, lr, tokensPerSecond: count * settings.batchSize * settings.sequenceLength / seconds })
        sum = 0
        count = 0
        t0 = performance.now()
      }
    }
  } finally {
    await session.release()
  }
  return weights
}
