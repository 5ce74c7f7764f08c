/**
 * Reading a node's attributes and the static arithmetic of shapes, shared
 * by shape inference and the gradient rules so that both agree on what a
 * node means (its axes, its slice ranges, its broadcast).
 */
import type { Node } from '../graph.ts'
import { ShapeInferenceError } from './errors.ts'

export function intAttr (node: Node, name: string, fallback: number): number {
  const a = node.attributes?.[name]
  return a?.type === 'int' ? a.value : fallback
}

export function floatAttr (node: Node, name: string, fallback: number): number {
  const a = node.attributes?.[name]
  return a?.type === 'float' ? a.value : fallback
}

export function stringAttr (node: Node, name: string, fallback: string): string {
  const a = node.attributes?.[name]
  return a?.type === 'string' ? a.value : fallback
}

export function intsAttr (node: Node, name: string): number[] | undefined {
  const a = node.attributes?.[name]
  return a?.type === 'ints' ? a.value : undefined
}

/** Input i of the node, or undefined when it is absent (optional inputs are '' or missing). */
export function optionalInput (node: Node, i: number): string | undefined {
  const name = node.inputs[i]
  return name === undefined || name === '' ? undefined : name
}

export function normalizeAxis (axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis
  if (a < 0 || a >= rank) throw new ShapeInferenceError(`axis ${axis} out of range for rank ${rank}`)
  return a
}

export function product (dims: readonly number[]): number {
  let n = 1
  for (const d of dims) n *= d
  return n
}

export function sameShape (a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i])
}

/** Numpy broadcasting of any number of shapes. */
export function broadcastShapes (...shapes: Array<readonly number[]>): number[] {
  const rank = Math.max(0, ...shapes.map(s => s.length))
  const out: number[] = []
  for (let i = 0; i < rank; i++) {
    let d = 1
    for (const s of shapes) {
      const k = s.length - rank + i
      const v = k < 0 ? 1 : s[k]
      if (v === 1) continue
      if (d !== 1 && d !== v) throw new ShapeInferenceError(`cannot broadcast ${shapes.map(x => `[${x.join(',')}]`).join(' with ')}`)
      d = v
    }
    out.push(d)
  }
  return out
}

export interface SliceRange { axis: number, start: number, step: number, length: number }

/** ONNX Slice's clamping, resolved per sliced axis against a concrete input shape. */
export function sliceRanges (shape: readonly number[], starts: number[], ends: number[], axes: number[] | undefined, steps: number[] | undefined): SliceRange[] {
  return starts.map((s, i) => {
    const axis = normalizeAxis(axes?.[i] ?? i, shape.length)
    const dim = shape[axis]
    const step = steps?.[i] ?? 1
    if (step === 0) throw new ShapeInferenceError('Slice step 0')
    let start = s < 0 ? s + dim : s
    let end = ends[i] < 0 ? ends[i] + dim : ends[i]
    if (step > 0) {
      start = Math.min(Math.max(start, 0), dim)
      end = Math.min(Math.max(end, 0), dim)
    } else {
      start = Math.min(Math.max(start, 0), dim - 1)
      end = Math.min(Math.max(end, -1), dim - 1)
    }
    const length = Math.max(0, Math.ceil((end - start) / step))
    return { axis, start, step, length }
  })
}

/** Axes of a Reduce* node, sorted and non-negative; from opset 18 (13 for ReduceSum) they are an input, before an attribute. */
export function reduceAxes (node: Node, rank: number, axesInput: number[] | undefined): number[] | 'identity' {
  const axes = axesInput ?? intsAttr(node, 'axes') ?? []
  if (axes.length === 0) {
    if (intAttr(node, 'noop_with_empty_axes', 0) === 1) return 'identity'
    return Array.from({ length: rank }, (_, i) => i)
  }
  return [...new Set(axes.map(a => normalizeAxis(a, rank)))].sort((a, b) => a - b)
}
