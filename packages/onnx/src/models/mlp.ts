/**
 * A multilayer perceptron classifier: linear layers with an activation
 * between them, then a linear classifier to class logits. Small enough to
 * train on any node, it is the model that distributed training is tested
 * with. Weights are stored [out, in] under Hugging Face-style names
 * (layers.<i>.weight, classifier.bias), as PyTorch's nn.Linear keeps them,
 * so that a PyTorch state dict maps onto them as it is.
 */
import { GraphBuilder } from '../builder.ts'
import type { ParameterShape } from '../builder.ts'
import { InvalidConfigError } from '../errors.ts'
import { attr } from '../graph.ts'
import type { Model } from '../graph.ts'
import { TRANSFORMER_OPSET, affine, affineShapes, correctCount, crossEntropy, initParameters } from './transformer.ts'
import type { Affine, LossShape } from './transformer.ts'

const ACTIVATIONS = { relu: 'Relu', gelu: 'Gelu', tanh: 'Tanh' } as const

export type MlpActivation = keyof typeof ACTIVATIONS

export interface MlpConfig {
  inputs: number
  /** Widths of the hidden layers, the input side first; [] makes a linear classifier. */
  hidden: number[]
  classes: number
  /** 'relu' by default; 'gelu' is the exact (erf) GELU, as Hugging Face's 'gelu'. */
  activation?: MlpActivation
}

const MODEL_TYPE = 'mlp-classifier'
const CLASSIFIER = affine('classifier')

interface Linear {
  w: Affine
  fanIn: number
  fanOut: number
}

/** The linear layers, the input side first, the classifier last. */
function linears (config: MlpConfig): Linear[] {
  validateMlpConfig(config)
  const widths = [config.inputs, ...config.hidden, config.classes]
  return widths.slice(1).map((fanOut, i) => ({ w: i < config.hidden.length ? affine(`layers.${i}`) : CLASSIFIER, fanIn: widths[i], fanOut }))
}

export function mlpParameterShapes (config: MlpConfig): ParameterShape[] {
  return linears(config).flatMap(({ w, fanIn, fanOut }) => affineShapes(w, [fanOut, fanIn], fanOut))
}

/**
 * He initialisation (std √(2/fan_in)) before Relu and Gelu; Xavier
 * (std √(2/(fan_in + fan_out))) before Tanh and for the classifier, which no
 * activation follows; biases 0.
 */
export function initMlpWeights (config: MlpConfig, seed: number): Record<string, Float32Array> {
  const he = (config.activation ?? 'relu') !== 'tanh'
  const std = new Map(linears(config).map(({ w, fanIn, fanOut }) =>
    [w.weight, he && w !== CLASSIFIER ? Math.sqrt(2 / fanIn) : Math.sqrt(2 / (fanIn + fanOut))]))
  return initParameters(mlpParameterShapes(config), seed, name => std.get(name) ?? 'zeros')
}

/** From features [batch, inputs] to logits [batch, classes], shared by the inference and the training graph. */
function mlpBody (b: GraphBuilder, config: MlpConfig, features: string): string {
  const activation = ACTIVATIONS[config.activation ?? 'relu']
  const layers = linears(config)
  return layers.reduce((x, { w }, i) => {
    // transB: the weights are [out, in], as nn.Linear's.
    const y = b.op('Gemm', [x, w.weight, w.bias], { transB: attr.int(1) })
    return i < layers.length - 1 ? b.op(activation, [y]) : y
  }, features)
}

/** The inference graph: `features` float32 [batch_size, inputs] → `logits` float32 [batch_size, classes]. */
export function buildMlpClassifier (config: MlpConfig, weights: Record<string, Float32Array>): Model {
  // Opset 20 for Gelu; the other activations need no more than that either.
  const b = new GraphBuilder({ name: 'mlp', opset: TRANSFORMER_OPSET })
  const features = b.input('features', 'float32', ['batch_size', config.inputs])
  b.parameters(mlpParameterShapes(config), weights)
  b.output(mlpBody(b, config, features), 'logits', 'float32', ['batch_size', config.classes])
  return b.build()
}

/**
 * The training forward graph: the weights are inputs (named as in the
 * classifier), with features [batchSize, inputs] and labels [batchSize]
 * (int64, -100 to leave a row out). Outputs: `loss`, the mean softmax
 * cross-entropy; `correct`, how many rows' argmax is the label (float32
 * scalar); and the `logits`. buildTrainingGraph drops the last two unless
 * kept.
 */
export function buildMlpLoss (config: MlpConfig, shape: Pick<LossShape, 'batchSize'>): Model {
  const { batchSize } = shape
  const b = new GraphBuilder({ name: 'mlp_loss', opset: TRANSFORMER_OPSET })
  b.parameters(mlpParameterShapes(config))
  const features = b.input('features', 'float32', [batchSize, config.inputs])
  const labels = b.input('labels', 'int64', [batchSize])
  const logits = mlpBody(b, config, features)
  b.output(crossEntropy(b, logits, labels, config.classes), 'loss', 'float32', [])
  b.output(correctCount(b, logits, labels), 'correct', 'float32', [])
  // Last: output() renames the value, and the two above read it under its first name.
  b.output(logits, 'logits', 'float32', [batchSize, config.classes])
  return b.build()
}

/** The config.json of the model directory. */
export function mlpHfConfig (config: MlpConfig): Record<string, unknown> {
  validateMlpConfig(config)
  return {
    model_type: MODEL_TYPE,
    architectures: ['MlpClassifier'],
    inputs: config.inputs,
    hidden: [...config.hidden],
    classes: config.classes,
    activation: config.activation ?? 'relu'
  }
}

/** The MlpConfig of a config.json that mlpHfConfig wrote; InvalidConfigError when it describes no MLP classifier. */
export function mlpConfigFromHf (json: unknown): MlpConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new InvalidConfigError('config.json is not an object')
  const c = json as Record<string, unknown>
  if (c.model_type !== MODEL_TYPE) throw new InvalidConfigError(`model_type is ${JSON.stringify(c.model_type)}, not ${MODEL_TYPE}`)
  // Typed as wished for, then checked: validateMlpConfig guards against what JSON can hold.
  const config = { inputs: c.inputs, hidden: c.hidden, classes: c.classes, activation: c.activation ?? 'relu' } as MlpConfig
  validateMlpConfig(config)
  return { ...config, hidden: [...config.hidden] }
}

const isSize = (n: unknown): boolean => Number.isSafeInteger(n) && (n as number) > 0

function validateMlpConfig (config: MlpConfig): void {
  const { inputs, hidden, classes, activation } = config
  if (!isSize(inputs)) throw new InvalidConfigError(`inputs must be a positive integer, not ${JSON.stringify(inputs)}`)
  if (!Array.isArray(hidden) || !hidden.every(isSize)) throw new InvalidConfigError(`hidden must be an array of positive integers, not ${JSON.stringify(hidden)}`)
  if (!isSize(classes) || classes < 2) throw new InvalidConfigError(`classes must be an integer of at least 2, not ${JSON.stringify(classes)}`)
  if (activation !== undefined && !Object.hasOwn(ACTIVATIONS, activation)) {
    throw new InvalidConfigError(`activation must be one of ${Object.keys(ACTIVATIONS).join(', ')}, not ${JSON.stringify(activation)}`)
  }
}
