/**
 * The pieces that the GPT decoder and the BERT encoder share: linear layers,
 * LayerNorm, the GELU MLP, multi-head attention, masks and a seeded
 * initialisation. Each takes the names of its weights, so that one model's
 * inference graph (weights as initializers) and its training graph (weights
 * as inputs) run the same construction code.
 */
import type { GraphBuilder, ParameterShape } from '../builder.ts'
import { attr } from '../graph.ts'
import { seededRandom } from '../random.ts'

/** Opset 20 is the first with Gelu; onnxruntime reads it in an IR version 8 model. */
export const TRANSFORMER_OPSET = 20

/** Added to the attention scores of masked keys: exp() of it underflows to 0, without the NaNs of -Infinity. */
const MASKED = -1e9

export interface Affine {
  weight: string
  bias: string
}

/** The weight and bias of `prefix`, as Hugging Face names them. */
export function affine (prefix: string): Affine {
  return { weight: `${prefix}.weight`, bias: `${prefix}.bias` }
}

/** The shapes of an affine pair: the weight's `dims`, and a bias of `out` values. */
export function affineShapes (w: Affine, dims: number[], out: number): ParameterShape[] {
  return [{ name: w.weight, dims }, { name: w.bias, dims: [out] }]
}

export interface MlpWeights {
  up: Affine
  down: Affine
}

export interface AttentionWeights {
  /** The fused query, key and value projection, [hidden, 3 * hidden], as GPT-2's c_attn. */
  qkv: Affine
  out: Affine
}

/** The static shape of a training batch: the autodiff may rely on concrete shapes. */
export interface LossShape {
  batchSize: number
  sequenceLength: number
}

export type GeluApproximation = 'tanh' | 'none'

/** x · W + b, with W stored [in, out] as GPT-2's Conv1D does, so no transpose is needed. */
export function linear (b: GraphBuilder, x: string, w: Affine): string {
  return b.op('Add', [b.op('MatMul', [x, w.weight]), w.bias])
}

export function layerNorm (b: GraphBuilder, x: string, w: Affine, epsilon: number): string {
  return b.op('LayerNormalization', [x, w.weight, w.bias], { axis: attr.int(-1), epsilon: attr.float(epsilon) })
}

export function mlp (b: GraphBuilder, x: string, w: MlpWeights, approximate: GeluApproximation): string {
  const up = b.op('Gelu', [linear(b, x, w.up)], { approximate: attr.string(approximate) })
  return linear(b, up, w.down)
}

export interface AttentionOptions {
  heads: number
  hidden: number
  /** Additive bias broadcastable to the scores [batch, heads, query, key]: 0 where allowed, MASKED elsewhere. */
  mask: string
  /** Cached keys and values [batch, heads, past, head_dim], to which this step's are appended. */
  past?: { key: string, value: string }
}

export interface AttentionResult {
  output: string
  /** All keys and values [batch, heads, past + sequence, head_dim], the `present.*` outputs of a decoder. */
  key: string
  value: string
}

/** Multi-head scaled dot-product attention over x [batch, sequence, hidden]. */
export function attention (b: GraphBuilder, x: string, w: AttentionWeights, options: AttentionOptions): AttentionResult {
  const { heads, hidden, mask, past } = options
  const headDim = hidden / heads
  const qkv = linear(b, x, w.qkv)
  // [batch, sequence, hidden] → [batch, heads, sequence, head_dim]
  const part = (i: number): string => {
    const slice = b.op('Slice', [qkv, b.ints([i * hidden]), b.ints([(i + 1) * hidden]), b.ints([2])])
    return b.op('Transpose', [b.op('Reshape', [slice, b.ints([0, 0, heads, headDim])])], { perm: attr.ints([0, 2, 1, 3]) })
  }
  const query = part(0)
  let key = part(1)
  let value = part(2)
  if (past != null) {
    key = b.op('Concat', [past.key, key], { axis: attr.int(2) })
    value = b.op('Concat', [past.value, value], { axis: attr.int(2) })
  }
  const keyT = b.op('Transpose', [key], { perm: attr.ints([0, 1, 3, 2]) })
  const scores = b.op('Mul', [b.op('MatMul', [query, keyT]), b.scalar(1 / Math.sqrt(headDim))])
  const probs = b.op('Softmax', [b.op('Add', [scores, mask])], { axis: attr.int(-1) })
  const context = b.op('Transpose', [b.op('MatMul', [probs, value])], { perm: attr.ints([0, 2, 1, 3]) })
  const merged = b.op('Reshape', [context, b.ints([0, 0, hidden])])
  return { output: linear(b, merged, w.out), key, value }
}

/** The length of axis 1 of x (the sequence, in [batch, sequence, ...]) as an int64 scalar. */
export function sequenceLength (b: GraphBuilder, x: string): string {
  return b.op('Squeeze', [b.op('Shape', [x], { start: attr.int(1), end: attr.int(2) })])
}

/** [length, length] additive mask letting each position attend to itself and earlier ones. */
export function causalMask (b: GraphBuilder, length: number): string {
  const data = new Float32Array(length * length)
  for (let q = 0; q < length; q++) data.fill(MASKED, q * length + q + 1, (q + 1) * length)
  return b.constant({ type: 'float32', dims: [length, length], data })
}

/**
 * attention_mask [batch, keys] (int64, 1 = token, 0 = padding) → additive
 * mask [batch, 1, 1, keys]. Looking the mask up in [MASKED, 0] needs no
 * Cast, an op the training graphs would otherwise need only for this.
 */
export function paddingMask (b: GraphBuilder, attentionMask: string): string {
  const table = b.constant({ type: 'float32', dims: [2], data: Float32Array.of(MASKED, 0) })
  return b.op('Reshape', [b.op('Gather', [table, attentionMask]), b.ints([0, 1, 1, -1])])
}

/** `allowed` (bool) → the additive mask of the same shape. */
export function maskFromAllowed (b: GraphBuilder, allowed: string): string {
  return b.op('Where', [allowed, b.scalar(0), b.scalar(MASKED)])
}

/** Logits over the vocabulary from hidden states, with the head tied to the token embedding [vocab, hidden]. */
export function tiedHead (b: GraphBuilder, hidden: string, embedding: string): string {
  return b.op('MatMul', [hidden, b.op('Transpose', [embedding], { perm: attr.ints([1, 0]) })])
}

/**
 * Mean cross-entropy of logits [..., vocab] against labels [...] (int64),
 * ignoring labels of -100 as Hugging Face does.
 */
export function crossEntropy (b: GraphBuilder, logits: string, labels: string, vocab: number): string {
  const flatLogits = b.op('Reshape', [logits, b.ints([-1, vocab])])
  const flatLabels = b.op('Reshape', [labels, b.ints([-1])])
  return b.op('SoftmaxCrossEntropyLoss', [flatLogits, flatLabels], {
    reduction: attr.string('mean'),
    ignore_index: attr.int(-100)
  })
}

/**
 * How many positions' argmax over the last axis of logits equals the label,
 * as a float32 scalar (summed, so that data-parallel workers can add their
 * counts). A label of -100 matches no index, so ignored positions never count.
 */
export function correctCount (b: GraphBuilder, logits: string, labels: string): string {
  const predicted = b.op('ArgMax', [logits], { axis: attr.int(-1), keepdims: attr.int(0) })
  // `to` 1 is TensorProto's FLOAT.
  const hits = b.op('Cast', [b.op('Equal', [predicted, labels])], { to: attr.int(1) })
  return b.op('ReduceSum', [hits], { keepdims: attr.int(0) })
}

/** How to initialise one parameter: constant 0 or 1, or a normal distribution of this standard deviation. */
export type Init = 'zeros' | 'ones' | number

/** Deterministic weights: the same shapes, seed and rule give the same bytes on every machine. */
export function initParameters (shapes: ParameterShape[], seed: number, rule: (name: string) => Init): Record<string, Float32Array> {
  const random = seededRandom(seed)
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random())
  const weights: Record<string, Float32Array> = {}
  for (const { name, dims } of shapes) {
    const data = new Float32Array(dims.reduce((a, b) => a * b, 1))
    const init = rule(name)
    if (init === 'ones') data.fill(1)
    else if (typeof init === 'number') for (let i = 0; i < data.length; i++) data[i] = normal() * init
    weights[name] = data
  }
  return weights
}
