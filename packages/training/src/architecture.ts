/**
 * What training needs to know of a model: its parameters, the loss graph
 * for a batch of a given size, how samples of a dataset become that graph's
 * inputs, and the inference graph to export the trained weights as. Read
 * from a model directory's config.json, so that a registered model, a CID
 * or a fresh architecture all train the same way.
 */
import * as ort from 'onnxruntime-node'
import { buildGptDecoder, buildGptLoss, buildMlpClassifier, buildMlpLoss, gptParameterShapes, initGptWeights, initMlpWeights, mlpConfigFromHf, mlpHfConfig, mlpParameterShapes } from '@node-daemon/onnx'
import { UnsupportedTrainingModelError, InvalidTrainingRequestError } from './errors.ts'
import type { GptConfig, MlpConfig, Model, ParameterShape } from '@node-daemon/onnx'
import type { Dataset } from './dataset.ts'

/** Samples of a dataset, ready for one architecture: token windows or feature rows. */
export interface Samples {
  readonly count: number
}

export interface Architecture {
  readonly kind: 'causal-lm' | 'classifier'
  /** config.json of the model, as the runtime and Hugging Face read it. */
  readonly config: Record<string, unknown>
  readonly parameters: ParameterShape[]
  /** Outputs `loss` (mean over the batch) and `correct` (matches of the argmax with the label). */
  lossGraph: (batchSize: number) => Model
  /** Turns a dataset into samples; text needs `encode`, the model's tokenizer. */
  samples: (dataset: Dataset, encode?: (text: string) => number[]) => Samples
  /** The loss graph's inputs other than the parameters for these samples, and how many labels they hold. */
  feeds: (samples: Samples, indices: ArrayLike<number>) => { feeds: Record<string, ort.Tensor>, labels: number }
  /** The inference graph with these weights: what is downloaded and served. */
  inferenceGraph: (weights: Record<string, Float32Array>) => Model
  initialWeights: (seed: number) => Record<string, Float32Array>
}

const int64 = (values: ArrayLike<number>, dims: number[]): ort.Tensor => {
  const data = new BigInt64Array(values.length)
  for (let i = 0; i < values.length; i++) data[i] = BigInt(values[i])
  return new ort.Tensor('int64', data, dims)
}

const positiveInt = (value: unknown, what: string): number => {
  if (!Number.isInteger(value) || (value as number) <= 0) throw new UnsupportedTrainingModelError(`config.json: ${what} must be a positive integer`)
  return value as number
}

/** The GptConfig of a gpt2 config.json that the project's decoder builder reproduces. */
export function gptConfigFromHf (json: Record<string, unknown>): GptConfig {
  if (json.n_inner != null || (json.activation_function ?? 'gelu_new') !== 'gelu_new' || json.tie_word_embeddings === false) {
    throw new UnsupportedTrainingModelError('only GPT-2 models with tied embeddings, gelu_new and a 4x MLP can be trained')
  }
  return {
    vocabSize: positiveInt(json.vocab_size, 'vocab_size'),
    hiddenSize: positiveInt(json.n_embd, 'n_embd'),
    layers: positiveInt(json.n_layer, 'n_layer'),
    heads: positiveInt(json.n_head, 'n_head'),
    maxPositions: positiveInt(json.n_positions, 'n_positions'),
    layerNormEps: typeof json.layer_norm_epsilon === 'number' ? json.layer_norm_epsilon : 1e-5
  }
}

interface TokenWindows extends Samples {
  /** The token stream: sample i is tokens[i*T .. i*T+T] predicting tokens[i*T+1 .. i*T+T+1]. */
  tokens: Int32Array
  sequenceLength: number
}

/** A GPT-2 decoder trained on windows of the token stream of a text dataset, each token predicting the next. */
export function causalLm (config: Record<string, unknown>, options: { sequenceLength?: number } = {}): Architecture {
  const gpt = gptConfigFromHf(config)
  const T = options.sequenceLength ?? Math.min(128, gpt.maxPositions)
  if (!Number.isInteger(T) || T < 2 || T > gpt.maxPositions) throw new InvalidTrainingRequestError(`sequence_length must be between 2 and the model's ${gpt.maxPositions}`)
  const eos = Array.isArray(config.eos_token_id) ? config.eos_token_id[0] : config.eos_token_id
  return {
    kind: 'causal-lm',
    config,
    parameters: gptParameterShapes(gpt),
    lossGraph: batchSize => buildGptLoss(gpt, { batchSize, sequenceLength: T }),
    samples (dataset, encode) {
      if (dataset.format !== 'text') throw new InvalidTrainingRequestError(`a language model trains on a text dataset, not ${dataset.format}`)
      if (encode == null) throw new UnsupportedTrainingModelError('the model has no tokenizer')
      // Documents are joined by the end-of-text token, as GPT-2 was trained.
      const stream: number[] = []
      for (const text of dataset.texts) {
        for (const id of encode(text)) stream.push(id)
        if (typeof eos === 'number') stream.push(eos)
      }
      const count = Math.floor((stream.length - 1) / T)
      if (count < 1) throw new InvalidTrainingRequestError(`the dataset has ${stream.length} tokens: fewer than one sequence of ${T + 1}`)
      const windows: TokenWindows = { count, tokens: Int32Array.from(stream), sequenceLength: T }
      return windows
    },
    feeds (samples, indices) {
      const { tokens } = samples as TokenWindows
      const ids = new Int32Array(indices.length * T)
      const labels = new Int32Array(indices.length * T)
      for (let b = 0; b < indices.length; b++) {
        const at = indices[b] * T
        ids.set(tokens.subarray(at, at + T), b * T)
        labels.set(tokens.subarray(at + 1, at + T + 1), b * T)
      }
      return { feeds: { input_ids: int64(ids, [indices.length, T]), labels: int64(labels, [indices.length, T]) }, labels: labels.length }
    },
    inferenceGraph: weights => buildGptDecoder(gpt, weights),
    initialWeights: seed => initGptWeights(gpt, seed)
  }
}

interface Rows extends Samples {
  features: Float32Array
  labels: Int32Array
}

/** An MLP over feature rows of a tensor dataset, predicting each row's class. */
export function classifier (config: Record<string, unknown>): Architecture {
  const mlp: MlpConfig = mlpConfigFromHf(config)
  const F = mlp.inputs
  return {
    kind: 'classifier',
    config: mlpHfConfig(mlp),
    parameters: mlpParameterShapes(mlp),
    lossGraph: batchSize => buildMlpLoss(mlp, { batchSize }),
    samples (dataset) {
      if (dataset.format !== 'tensors') throw new InvalidTrainingRequestError(`a classifier trains on a tensor dataset, not ${dataset.format}`)
      if (dataset.featureCount !== F) throw new InvalidTrainingRequestError(`the dataset has ${dataset.featureCount} features per row; the model takes ${F}`)
      if (dataset.classes > mlp.classes) throw new InvalidTrainingRequestError(`the dataset has ${dataset.classes} classes; the model predicts ${mlp.classes}`)
      const rows: Rows = { count: dataset.count, features: dataset.features, labels: dataset.labels }
      return rows
    },
    feeds (samples, indices) {
      const { features, labels } = samples as Rows
      const x = new Float32Array(indices.length * F)
      const y = new Int32Array(indices.length)
      for (let b = 0; b < indices.length; b++) {
        const i = indices[b]
        x.set(features.subarray(i * F, i * F + F), b * F)
        y[b] = labels[i]
      }
      return { feeds: { features: new ort.Tensor('float32', x, [indices.length, F]), labels: int64(y, [indices.length]) }, labels: indices.length }
    },
    inferenceGraph: weights => buildMlpClassifier(mlp, weights),
    initialWeights: seed => initMlpWeights(mlp, seed)
  }
}

/** The architecture a config.json describes. */
export function architectureOf (config: Record<string, unknown>, options: { sequenceLength?: number } = {}): Architecture {
  switch (config.model_type) {
    case 'gpt2': return causalLm(config, options)
    case 'mlp-classifier': return classifier(config)
    default: throw new UnsupportedTrainingModelError(`models of type ${JSON.stringify(config.model_type)} cannot be trained; gpt2 and mlp-classifier can`)
  }
}
