/**
 * Gradients of ops that move, select or sum elements without arithmetic
 * between them: each gradient puts the output's gradient back where the
 * elements came from (reshape back, inverse permutation, scatter-add,
 * split, pad, expand).
 */
import { attr } from '../graph.ts'
import { reshape, sumTo, zeros } from './emitter.ts'
import { forInputs, outputGrad } from './gradient-rule.ts'
import type { GradRule } from './gradient-rule.ts'
import { intAttr, intsAttr, normalizeAxis, optionalInput, product, reduceAxes, sliceRanges } from './op-params.ts'

const reshapeBack: GradRule = c => forInputs(c, () => reshape(c.e, outputGrad(c), c.s.shape(c.node.inputs[0])))

const transpose: GradRule = c => forInputs(c, () => {
  const rank = c.s.shape(c.node.inputs[0]).length
  const perm = intsAttr(c.node, 'perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i)
  const inverse: number[] = []
  perm.forEach((p, i) => { inverse[p] = i })
  return c.e.op('Transpose', [outputGrad(c)], { perm: attr.ints(inverse) })
})

const expand: GradRule = c => forInputs(c, () => sumTo(c.e, outputGrad(c), c.s.shape(c.node.outputs[0]), c.s.shape(c.node.inputs[0])))

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i)

/**
 * Scatter-adds the gathered rows back (an embedding's gradient). ScatterND
 * indexes the leading axis, so for another axis the gathered axes are
 * moved to the front and the result moved back.
 */
const gather: GradRule = c => forInputs(c, () => {
  const { e, s, node } = c
  const [data, indices] = node.inputs
  const sd = s.shape(data)
  const q = s.shape(indices).length
  const axis = normalizeAxis(intAttr(node, 'axis', 0), sd.length)
  const index64 = s.type(indices) === 'int64' ? indices : e.op('Cast', [indices], { to: attr.int(7) })
  const index = e.op('Unsqueeze', [index64, e.ints([-1])])
  const g = outputGrad(c)
  const add = { reduction: attr.string('add') }
  if (axis === 0) return e.op('ScatterND', [zeros(e, sd), index, g], add)
  const rank = sd.length - 1 + q
  const front = e.op('Transpose', [g], { perm: attr.ints([...range(axis, axis + q), ...range(0, axis), ...range(axis + q, rank)]) })
  const moved = [sd[axis], ...sd.slice(0, axis), ...sd.slice(axis + 1)]
  const scattered = e.op('ScatterND', [zeros(e, moved), index, front], add)
  return e.op('Transpose', [scattered], { perm: attr.ints([...range(1, axis + 1), 0, ...range(axis + 1, sd.length)]) })
})

const gatherElements: GradRule = c => forInputs(c, () => {
  const { e, s, node } = c
  const [data, indices] = node.inputs
  return e.op('ScatterElements', [zeros(e, s.shape(data)), indices, outputGrad(c)], {
    axis: attr.int(intAttr(node, 'axis', 0)),
    reduction: attr.string('add')
  })
})

const concat: GradRule = c => {
  const { e, s, node } = c
  const shapes = node.inputs.map(x => s.shape(x))
  const axis = normalizeAxis(intAttr(node, 'axis', 0), shapes[0].length)
  const parts = e.ops('Split', [outputGrad(c), e.ints(shapes.map(x => x[axis]))], node.inputs.length, { axis: attr.int(axis) })
  return parts.map((p, i) => c.needs[i] ? p : undefined)
}

const split: GradRule = c => forInputs(c, () => {
  const { e, s, node } = c
  const axis = intAttr(node, 'axis', 0)
  const parts = node.outputs.map((y, i) => c.dy[i] ?? zeros(e, s.shape(y)))
  return e.op('Concat', parts, { axis: attr.int(axis) })
})

/**
 * Puts the slice's gradient back into a zero tensor of the input's shape:
 * strided axes one at a time with ScatterElements, then the unit-step
 * axes all at once with Pad (slicing along different axes commutes).
 */
const slice: GradRule = c => forInputs(c, () => {
  const { e, s, node } = c
  const x = node.inputs[0]
  const sx = s.shape(x)
  const numbers = (i: number): number[] | undefined => {
    const name = optionalInput(node, i)
    return name === undefined ? undefined : s.numbers(name)
  }
  const ranges = sliceRanges(sx, numbers(1) ?? [], numbers(2) ?? [], numbers(3), numbers(4))
  let g = outputGrad(c)
  let current = [...s.shape(node.outputs[0])]
  for (const r of ranges.filter(r => r.step !== 1)) {
    const full = current.map((d, i) => i === r.axis ? sx[i] : d)
    const positions = e.constant({
      type: 'int64',
      dims: current.map((d, i) => i === r.axis ? d : 1),
      data: BigInt64Array.from({ length: r.length }, (_, i) => BigInt(r.start + i * r.step))
    })
    const index = e.op('Expand', [positions, e.ints(current)])
    g = e.op('ScatterElements', [zeros(e, full), index, g], { axis: attr.int(r.axis) })
    current = full
  }
  const pads = new Array<number>(2 * sx.length).fill(0)
  for (const r of ranges.filter(r => r.step === 1)) {
    pads[r.axis] = r.start
    pads[r.axis + sx.length] = sx[r.axis] - r.start - r.length
  }
  return pads.some(p => p !== 0) ? e.op('Pad', [g, e.ints(pads)]) : g
})

/** Spreads the gradient of a sum (or mean) over the reduced axes. */
function reduce (mean: boolean): GradRule {
  return c => forInputs(c, () => {
    const { e, s, node } = c
    const sx = s.shape(node.inputs[0])
    const axesInput = optionalInput(node, 1)
    const axes = reduceAxes(node, sx.length, axesInput === undefined ? undefined : s.numbers(axesInput))
    let g = outputGrad(c)
    if (axes === 'identity') return g
    if (mean) g = e.op('Mul', [g, e.scalar(1 / product(axes.map(a => sx[a])))])
    if (intAttr(node, 'keepdims', 1) === 0) g = reshape(e, g, sx.map((d, i) => axes.includes(i) ? 1 : d))
    return e.op('Expand', [g, e.ints(sx)])
  })
}

/** The gradient goes to the elements equal to the extremum, shared equally between ties. */
const reduceExtremum: GradRule = c => forInputs(c, () => {
  const { e, s, node } = c
  const x = node.inputs[0]
  const sx = s.shape(x)
  const axesInput = optionalInput(node, 1)
  const axes = reduceAxes(node, sx.length, axesInput === undefined ? undefined : s.numbers(axesInput))
  let g = outputGrad(c)
  if (axes === 'identity') return g
  let y = node.outputs[0]
  if (intAttr(node, 'keepdims', 1) === 0) {
    const kept = sx.map((d, i) => axes.includes(i) ? 1 : d)
    y = reshape(e, y, kept)
    g = reshape(e, g, kept)
  }
  const hit = e.op('Cast', [e.op('Equal', [x, y])], { to: attr.int(1) })
  const ties = e.op('ReduceSum', [hit, e.ints(axes)], { keepdims: attr.int(1) })
  return e.op('Mul', [hit, e.op('Div', [g, ties])])
})

export const TENSOR_RULES: Record<string, GradRule> = {
  Reshape: reshapeBack,
  Flatten: reshapeBack,
  Squeeze: reshapeBack,
  Unsqueeze: reshapeBack,
  Transpose: transpose,
  Expand: expand,
  Gather: gather,
  GatherElements: gatherElements,
  Concat: concat,
  Split: split,
  Slice: slice,
  ReduceSum: reduce(false),
  ReduceMean: reduce(true),
  ReduceMax: reduceExtremum,
  ReduceMin: reduceExtremum
}
