/**
 * Gradients of the neural-network ops with closed forms: softmax and
 * log-softmax, layer normalization (from the mean and inverse standard
 * deviation that the forward node saves) and the cross-entropy losses.
 */
import { attr } from '../graph.ts'
import { sumTo } from './emitter.ts'
import { UnsupportedOpError } from './errors.ts'
import { forInputs, outputGrad } from './gradient-rule.ts'
import type { GradContext, GradRule } from './gradient-rule.ts'
import { intAttr, normalizeAxis, optionalInput, product, stringAttr } from './op-params.ts'

function sumKeep (c: GradContext, x: string, axes: number[]): string {
  return c.e.op('ReduceSum', [x, c.e.ints(axes)], { keepdims: attr.int(1) })
}

function softmaxAxis (c: GradContext): number {
  return normalizeAxis(intAttr(c.node, 'axis', -1), c.s.shape(c.node.inputs[0]).length)
}

/** dx = y ⊙ (g − Σ g ⊙ y) along the axis. */
const softmax: GradRule = c => forInputs(c, () => {
  const { e } = c
  const y = c.node.outputs[0]
  const g = outputGrad(c)
  return e.op('Mul', [y, e.op('Sub', [g, sumKeep(c, e.op('Mul', [g, y]), [softmaxAxis(c)])])])
})

/** dx = g − softmax(x) · Σ g along the axis, softmax(x) being exp(y). */
const logSoftmax: GradRule = c => forInputs(c, () => {
  const { e } = c
  const g = outputGrad(c)
  return e.op('Sub', [g, e.op('Mul', [e.op('Exp', [c.node.outputs[0]]), sumKeep(c, g, [softmaxAxis(c)])])])
})

/**
 * With x̂ = (x − μ)·σ⁻¹ normalized over the trailing axes from `axis` on,
 * and ĝ = g·scale: dx = σ⁻¹·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)).
 */
const layerNormalization: GradRule = c => {
  const { e, s, node } = c
  if (c.dy[1] !== undefined || c.dy[2] !== undefined) throw new UnsupportedOpError('LayerNormalization', 'gradient through Mean or InvStdDev')
  const [x, scale] = node.inputs
  const bias = optionalInput(node, 2)
  const sx = s.shape(x)
  const axis = normalizeAxis(intAttr(node, 'axis', -1), sx.length)
  const axes = sx.slice(axis).map((_, i) => axis + i)
  const inverseCount = e.scalar(1 / product(sx.slice(axis)))
  const g = outputGrad(c)
  const invStd = c.output(2)
  const xhat = e.op('Mul', [e.op('Sub', [x, c.output(1)]), invStd])
  const mean = (v: string): string => e.op('Mul', [sumKeep(c, v, axes), inverseCount])
  return forInputs(c,
    () => {
      const gh = e.op('Mul', [g, scale])
      const centered = e.op('Sub', [e.op('Sub', [gh, mean(gh)]), e.op('Mul', [xhat, mean(e.op('Mul', [gh, xhat]))])])
      return e.op('Mul', [invStd, centered])
    },
    () => sumTo(e, e.op('Mul', [g, xhat]), sx, s.shape(scale)),
    bias === undefined ? undefined : () => sumTo(e, g, sx, s.shape(bias)))
}

interface LossTerms {
  /** The labels, with ignored ones replaced by class 0 so that OneHot and Gather stay in range. */
  labels: string
  /** Multiplies (probabilities − onehot): the incoming gradient, the label's class weight, 0 at ignore_index, over the total weight for 'mean'. */
  factor: string
  /** Whether the factor has the labels' shape rather than being a scalar. */
  perElement: boolean
}

function lossTerms (c: GradContext): LossTerms {
  const { e, s, node } = c
  if (c.needs[2]) throw new UnsupportedOpError(node.op, 'gradient into class weights')
  const labels = node.inputs[1]
  const type = s.type(labels) ?? 'int64'
  const intConstant = (v: number): string => e.constant({ type, dims: [], data: type === 'int32' ? new Int32Array([v]) : new BigInt64Array([BigInt(v)]) })
  const ignore = node.attributes?.ignore_index
  const ignored = ignore?.type === 'int' ? e.op('Equal', [labels, intConstant(ignore.value)]) : undefined
  const safe = ignored === undefined ? labels : e.op('Where', [ignored, intConstant(0), labels])
  const weights = optionalInput(node, 2)
  let w = weights === undefined ? undefined : e.op('Gather', [weights, safe])
  if (ignored !== undefined) {
    const valid = e.op('Cast', [e.op('Not', [ignored])], { to: attr.int(1) })
    w = w === undefined ? valid : e.op('Mul', [w, valid])
  }
  const g = outputGrad(c)
  const reduction = stringAttr(node, 'reduction', 'mean')
  const perElement = w !== undefined || reduction === 'none'
  if (reduction !== 'mean') return { labels: safe, factor: w === undefined ? g : e.op('Mul', [w, g]), perElement }
  const total = w === undefined ? e.scalar(product(s.shape(labels))) : e.op('ReduceSum', [w], { keepdims: attr.int(0) })
  const scaled = e.op('Div', [g, total])
  return { labels: safe, factor: w === undefined ? scaled : e.op('Mul', [w, scaled]), perElement }
}

/** The one-hot labels along the class axis 1, of the scores' shape. */
function oneHot (c: GradContext, labels: string): string {
  const { e } = c
  const values = e.constant({ type: 'float32', dims: [2], data: new Float32Array([0, 1]) })
  return e.op('OneHot', [labels, e.ints([c.s.shape(c.node.inputs[0])[1]]), values], { axis: attr.int(1) })
}

/** The loss factor, spread over the class axis 1 of the scores when it is per element. */
function classFactor (c: GradContext, terms: LossTerms): string {
  return terms.perElement ? c.e.op('Unsqueeze', [terms.factor, c.e.ints([1])]) : terms.factor
}

/** Scores [N, C, d…] and labels [N, d…]: d scores = (softmax − onehot)·factor, plus what flows back through log_prob. */
const softmaxCrossEntropy: GradRule = c => forInputs(c, () => {
  const { e } = c
  const p = e.op('Exp', [c.output(1)])
  const grads: string[] = []
  if (c.dy[0] !== undefined) {
    const terms = lossTerms(c)
    grads.push(e.op('Mul', [e.op('Sub', [p, oneHot(c, terms.labels)]), classFactor(c, terms)]))
  }
  const gLogProb = c.dy[1]
  if (gLogProb !== undefined) grads.push(e.op('Sub', [gLogProb, e.op('Mul', [p, sumKeep(c, gLogProb, [1])])]))
  return grads.length === 1 ? grads[0] : e.op('Add', grads)
})

/** Log-probabilities [N, C, d…]: d input = −onehot·factor. */
const negativeLogLikelihood: GradRule = c => forInputs(c, () => {
  const terms = lossTerms(c)
  return c.e.op('Neg', [c.e.op('Mul', [oneHot(c, terms.labels), classFactor(c, terms)])])
})

export const NN_RULES: Record<string, GradRule> = {
  Softmax: softmax,
  LogSoftmax: logSoftmax,
  LayerNormalization: layerNormalization,
  SoftmaxCrossEntropyLoss: softmaxCrossEntropy,
  NegativeLogLikelihoodLoss: negativeLogLikelihood
}
