/**
 * Gradients of elementwise ops: the broadcasting arithmetic, whose input
 * gradients are summed back to each input's shape, and the activations,
 * written as g · f'(x) from the forward values x and y.
 */
import { attr } from '../graph.ts'
import { sumTo } from './emitter.ts'
import { UnsupportedOpError } from './errors.ts'
import { forInputs, outputGrad } from './gradient-rule.ts'
import type { GradContext, GradRule } from './gradient-rule.ts'
import { floatAttr, optionalInput, stringAttr } from './op-params.ts'

/** A gradient of the output's shape, summed over the axes that input i was broadcast along. */
function reduced (c: GradContext, i: number, g: string): string {
  return sumTo(c.e, g, c.s.shape(c.node.outputs[0]), c.s.shape(c.node.inputs[i]))
}

/** y = f(x): the rule gives f'(x) · g from x, y and g. */
function unary (derivative: (c: GradContext, x: string, y: string, g: string) => string): GradRule {
  return c => forInputs(c, () => derivative(c, c.node.inputs[0], c.node.outputs[0], outputGrad(c)))
}

const SQRT_2_PI = Math.sqrt(2 / Math.PI)
const GELU_CUBIC = 0.044715

function geluDerivative (c: GradContext, x: string): string {
  const { e } = c
  if (stringAttr(c.node, 'approximate', 'none') === 'tanh') {
    // y = x/2 · (1 + tanh(u)), u = √(2/π)(x + 0.044715x³)
    const x2 = e.op('Mul', [x, x])
    const u = e.op('Mul', [e.scalar(SQRT_2_PI), e.op('Add', [x, e.op('Mul', [e.scalar(GELU_CUBIC), e.op('Mul', [x2, x])])])])
    const t = e.op('Tanh', [u])
    const left = e.op('Mul', [e.scalar(0.5), e.op('Add', [e.scalar(1), t])])
    const du = e.op('Add', [e.scalar(1), e.op('Mul', [e.scalar(3 * GELU_CUBIC), x2])])
    const sech2 = e.op('Sub', [e.scalar(1), e.op('Mul', [t, t])])
    const right = e.op('Mul', [e.op('Mul', [e.op('Mul', [e.scalar(0.5 * SQRT_2_PI), x]), sech2]), du])
    return e.op('Add', [left, right])
  }
  // y = x·Φ(x): y' = Φ(x) + x·φ(x)
  const cdf = e.op('Mul', [e.scalar(0.5), e.op('Add', [e.scalar(1), e.op('Erf', [e.op('Mul', [x, e.scalar(Math.SQRT1_2)])])])])
  const pdf = e.op('Mul', [e.scalar(1 / Math.sqrt(2 * Math.PI)), e.op('Exp', [e.op('Mul', [e.scalar(-0.5), e.op('Mul', [x, x])])])])
  return e.op('Add', [cdf, e.op('Mul', [x, pdf])])
}

function powBase (c: GradContext, a: string, b: string): string {
  const { e, s } = c
  const value = s.value(b)
  if (value !== undefined && value.data.length === 1) {
    const p = Number(value.data[0])
    return e.op('Mul', [e.scalar(p), e.op('Pow', [a, e.scalar(p - 1)])])
  }
  const bf = s.type(b) === 'float32' ? b : e.op('Cast', [b], { to: attr.int(1) })
  return e.op('Mul', [bf, e.op('Pow', [a, e.op('Sub', [bf, e.scalar(1)])])])
}

/** Dropout passes gradients through where the mask kept the value, with the same 1/(1 − ratio) scale. */
function dropout (c: GradContext): Array<string | undefined> {
  const { e, s, node } = c
  const g = outputGrad(c)
  const mode = optionalInput(node, 2)
  if (mode === undefined) return [g]
  const training = s.value(mode)
  if (training === undefined) throw new UnsupportedOpError('Dropout', 'training_mode must be a constant')
  if (Number(training.data[0]) === 0) return [g]
  const ratio = optionalInput(node, 1)
  const keep = e.op('Sub', [e.scalar(1), ratio ?? e.scalar(0.5)])
  return [e.op('Where', [c.output(1), e.op('Div', [g, keep]), e.scalar(0)])]
}

/** Clip passes gradients where x is within its bounds. */
function clip (c: GradContext): Array<string | undefined> {
  const { e, node } = c
  const x = node.inputs[0]
  const g = outputGrad(c)
  const min = optionalInput(node, 1)
  const max = optionalInput(node, 2)
  const bounds: string[] = []
  if (min !== undefined) bounds.push(e.op('GreaterOrEqual', [x, min]))
  if (max !== undefined) bounds.push(e.op('LessOrEqual', [x, max]))
  if (bounds.length === 0) return [g]
  const inside = bounds.length === 1 ? bounds[0] : e.op('And', bounds)
  return forInputs(c, () => e.op('Where', [inside, g, e.scalar(0)]))
}

/** Ops whose gradient is zero almost everywhere: nothing flows back. */
const none: GradRule = () => []

export const ELEMENTWISE_RULES: Record<string, GradRule> = {
  Identity: c => [outputGrad(c)],
  // Only float-to-float casts are on a path: a cast to an integer type ends it.
  Cast: c => [outputGrad(c)],
  Dropout: dropout,
  Floor: none,
  Ceil: none,
  Round: none,
  Sign: none,
  Add: c => {
    const g = outputGrad(c)
    return forInputs(c, () => reduced(c, 0, g), () => reduced(c, 1, g))
  },
  Sub: c => {
    const g = outputGrad(c)
    return forInputs(c, () => reduced(c, 0, g), () => c.e.op('Neg', [reduced(c, 1, g)]))
  },
  Mul: c => {
    const [a, b] = c.node.inputs
    const g = outputGrad(c)
    return forInputs(c, () => reduced(c, 0, c.e.op('Mul', [g, b])), () => reduced(c, 1, c.e.op('Mul', [g, a])))
  },
  Div: c => {
    const { e } = c
    const b = c.node.inputs[1]
    const gb = e.op('Div', [outputGrad(c), b])
    // d(a/b)/db = −(a/b)/b = −y/b
    return forInputs(c, () => reduced(c, 0, gb), () => e.op('Neg', [reduced(c, 1, e.op('Mul', [gb, c.node.outputs[0]]))]))
  },
  Pow: c => {
    const { e } = c
    const [a, b] = c.node.inputs
    const g = outputGrad(c)
    return forInputs(c,
      () => reduced(c, 0, e.op('Mul', [g, powBase(c, a, b)])),
      () => reduced(c, 1, e.op('Mul', [g, e.op('Mul', [c.node.outputs[0], e.op('Log', [a])])])))
  },
  Sum: c => {
    const g = outputGrad(c)
    return c.node.inputs.map((_, i) => c.needs[i] ? reduced(c, i, g) : undefined)
  },
  Mean: c => {
    const g = c.e.op('Div', [outputGrad(c), c.e.scalar(c.node.inputs.length)])
    return c.node.inputs.map((_, i) => c.needs[i] ? reduced(c, i, g) : undefined)
  },
  Where: c => {
    const { e } = c
    const cond = c.node.inputs[0]
    const g = outputGrad(c)
    const zero = e.scalar(0)
    return forInputs(c, undefined,
      () => reduced(c, 1, e.op('Where', [cond, g, zero])),
      () => reduced(c, 2, e.op('Where', [cond, zero, g])))
  },
  Clip: clip,
  Neg: unary((c, _x, _y, g) => c.e.op('Neg', [g])),
  Abs: unary((c, x, _y, g) => c.e.op('Mul', [g, c.e.op('Sign', [x])])),
  Exp: unary((c, _x, y, g) => c.e.op('Mul', [g, y])),
  Log: unary((c, x, _y, g) => c.e.op('Div', [g, x])),
  Sqrt: unary((c, _x, y, g) => c.e.op('Div', [c.e.op('Mul', [g, c.e.scalar(0.5)]), y])),
  Reciprocal: unary((c, _x, y, g) => c.e.op('Neg', [c.e.op('Mul', [g, c.e.op('Mul', [y, y])])])),
  Relu: unary((c, x, _y, g) => c.e.op('Where', [c.e.op('Greater', [x, c.e.scalar(0)]), g, c.e.scalar(0)])),
  LeakyRelu: unary((c, x, _y, g) => {
    const alpha = floatAttr(c.node, 'alpha', 0.01)
    return c.e.op('Where', [c.e.op('Greater', [x, c.e.scalar(0)]), g, c.e.op('Mul', [g, c.e.scalar(alpha)])])
  }),
  Tanh: unary((c, _x, y, g) => c.e.op('Mul', [g, c.e.op('Sub', [c.e.scalar(1), c.e.op('Mul', [y, y])])])),
  Sigmoid: unary((c, _x, y, g) => c.e.op('Mul', [g, c.e.op('Mul', [y, c.e.op('Sub', [c.e.scalar(1), y])])])),
  Erf: unary((c, x, _y, g) => {
    const { e } = c
    const bell = e.op('Exp', [e.op('Neg', [e.op('Mul', [x, x])])])
    return e.op('Mul', [g, e.op('Mul', [e.scalar(2 / Math.sqrt(Math.PI)), bell])])
  }),
  Gelu: unary((c, x, _y, g) => c.e.op('Mul', [g, geluDerivative(c, x)]))
}
