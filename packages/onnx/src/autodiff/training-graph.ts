/**
 * Reverse-mode automatic differentiation over ONNX graphs. The forward
 * graph is kept as it is; behind it come the nodes of the backward pass,
 * made by each op's gradient rule in reverse topological order, so that
 * onnxruntime computes the loss and every parameter's gradient in one run.
 */
import type { Initializer, Model, Node, ValueInfo } from '../graph.ts'
import { Emitter } from './emitter.ts'
import { InvalidGraphError, UnsupportedOpError } from './errors.ts'
import { product } from './op-params.ts'
import { GRADIENT_RULES } from './rules.ts'
import { inferShapes } from './shapes.ts'
import type { Shapes } from './shapes.ts'

export interface TrainingGraphOptions {
  /** A scalar output of the graph (one element). */
  loss: string
  /** Float graph inputs or initializers to differentiate with respect to; initializers become inputs. */
  params: string[]
  /** Sizes of the inputs' symbolic dimensions, e.g. { batch: 8, sequence: 128 }: the backward pass is built for static shapes. */
  dims?: Record<string, number>
  /** Other outputs of the graph to carry through as they are, not differentiated: metrics such as an accuracy count. */
  keep?: string[]
}

/** ScatterND with reduction 'add' (opset 16) is the newest op the backward pass emits. */
const BACKWARD_OPSET = 17
/** Before 13, Softmax, Split, Squeeze and ReduceSum meant other things. */
const MIN_FORWARD_OPSET = 13

/** The output that carries the gradient of `param`. */
export function gradientName (param: string): string {
  return `grad.${param}`
}

/**
 * A graph with the same inputs (plus the parameters that were
 * initializers) whose outputs are the loss, then `grad.<param>` for each
 * parameter, of the parameter's shape, then the `keep` outputs.
 */
export function buildTrainingGraph (model: Model, options: TrainingGraphOptions): Model {
  const { graph } = model
  const { loss, params, keep = [] } = options
  if (model.opset < MIN_FORWARD_OPSET) throw new InvalidGraphError(`opset ${model.opset}: autodiff needs opset ${MIN_FORWARD_OPSET} or later`)
  const lossInfo = graph.outputs.find(o => o.name === loss)
  if (lossInfo === undefined) throw new InvalidGraphError(`the loss ${loss} is not an output of the graph`)
  const carried = keep.map(name => {
    const info = graph.outputs.find(o => o.name === name)
    if (info === undefined) throw new InvalidGraphError(`the kept ${name} is not an output of the graph`)
    return info
  })
  if (new Set([loss, ...keep]).size !== keep.length + 1) throw new InvalidGraphError('an output is kept twice, or is the loss')
  const paramSet = new Set(params)
  if (paramSet.size !== params.length) throw new InvalidGraphError('a parameter is listed twice')
  for (const p of params) {
    const found = graph.inputs.find(i => i.name === p) ?? graph.initializers.find(i => i.name === p)
    if (found === undefined) throw new InvalidGraphError(`parameter ${p} is neither an input nor an initializer`)
    if (found.type !== 'float32') throw new InvalidGraphError(`parameter ${p} is ${found.type}, not float32`)
  }

  const inputs: ValueInfo[] = [
    ...graph.inputs,
    // An initializer may already be listed as an input (a default value); then it is an input already.
    ...graph.initializers
      .filter(i => paramSet.has(i.name) && !graph.inputs.some(input => input.name === i.name))
      .map(i => ({ name: i.name, type: i.type, shape: [...i.dims] }))
  ]
  const initializers = graph.initializers.filter(i => !paramSet.has(i.name))
  const defined = new Set([...inputs.map(i => i.name), ...initializers.map(i => i.name)])
  // Copies, because a rule may add outputs to a forward node (statistics it saves for the backward pass).
  const nodes = sortNodes(graph.nodes.map(n => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs] })), defined)
  const shapes = inferShapes({ ...graph, inputs, initializers, nodes }, options.dims)

  const active = onPath(nodes, shapes, params, loss)
  // Missing rules first: an op unknown to shape inference would otherwise surface as a shape error.
  for (const node of nodes) {
    if (!node.outputs.some(active) || !node.inputs.some(active)) continue
    if ((node.domain ?? '') !== '' || GRADIENT_RULES[node.op] === undefined) throw new UnsupportedOpError(node.op, `node ${node.name ?? node.outputs[0]}`)
  }
  const lossShape = shapes.shape(loss)
  if (product(lossShape) !== 1) throw new InvalidGraphError(`the loss ${loss} has shape [${lossShape.join(',')}], not one element`)

  const names = new Set([...defined, ...nodes.flatMap(n => n.outputs)])
  for (const p of params) if (names.has(gradientName(p))) throw new InvalidGraphError(`the graph already has a value named ${gradientName(p)}`)
  const e = new Emitter([...names, ...params.map(gradientName)])

  const grads = new Map<string, string[]>()
  const addGrad = (v: string, g: string): void => {
    const list = grads.get(v)
    if (list === undefined) grads.set(v, [g])
    else list.push(g)
  }
  // Every consumer of a value comes later in topological order, so its gradient is complete when its producer is reached.
  const gradOf = (v: string): string | undefined => {
    const list = grads.get(v)
    if (list === undefined) return undefined
    if (list.length > 1) grads.set(v, [e.op('Sum', list)])
    return grads.get(v)?.[0]
  }

  if (active(loss)) addGrad(loss, e.constant({ type: 'float32', dims: lossShape, data: new Float32Array(1).fill(1) }))
  for (const node of [...nodes].reverse()) {
    if (!node.outputs.some(o => grads.has(o))) continue
    const needs = node.inputs.map(active)
    if (!needs.some(Boolean)) continue
    const rule = GRADIENT_RULES[node.op]
    const output = (i: number): string => {
      const existing = node.outputs[i]
      if (existing !== undefined && existing !== '') return existing
      while (node.outputs.length < i) node.outputs.push('')
      node.outputs[i] = e.fresh(`${node.outputs[0]}/saved${i}`)
      return node.outputs[i]
    }
    const dx = rule({ node, dy: node.outputs.map(gradOf), needs, e, s: shapes, output })
    dx.forEach((g, i) => { if (g !== undefined && needs[i]) addGrad(node.inputs[i], g) })
  }

  for (const p of params) {
    const list = grads.get(p) ?? []
    const outputs = [gradientName(p)]
    if (list.length === 0) {
      // No path from this parameter to the loss: its gradient is zero.
      e.emit({ op: 'ConstantOfShape', inputs: [e.ints(shapes.shape(p))], outputs })
    } else {
      e.emit({ op: list.length === 1 ? 'Identity' : 'Sum', inputs: list, outputs })
    }
  }

  const outputs: ValueInfo[] = [lossInfo, ...params.map(p => ({ name: gradientName(p), type: 'float32' as const, shape: shapes.shape(p) })), ...carried]
  const kept = prune([...nodes, ...e.nodes], outputs.map(o => o.name))
  const used = new Set(kept.flatMap(n => n.inputs))
  return {
    ...model,
    opset: Math.max(model.opset, BACKWARD_OPSET),
    graph: {
      name: graph.name,
      inputs,
      outputs,
      initializers: [...initializers, ...e.initializers].filter((i: Initializer) => used.has(i.name)),
      nodes: kept
    }
  }
}

/**
 * Whether a value lies on a path from a parameter to the loss: only those
 * get gradients. An output of unknown type counts as float, so that an op
 * without rules on the path is reported rather than silently cut.
 */
function onPath (nodes: Node[], shapes: Shapes, params: string[], loss: string): (value: string) => boolean {
  const fromParams = new Set(params)
  for (const node of nodes) {
    if (!node.inputs.some(i => fromParams.has(i))) continue
    for (const o of node.outputs) {
      const type = shapes.type(o)
      if (o !== '' && (type === undefined || type === 'float32')) fromParams.add(o)
    }
  }
  const toLoss = new Set([loss])
  for (const node of [...nodes].reverse()) {
    if (node.outputs.some(o => toLoss.has(o))) for (const i of node.inputs) toLoss.add(i)
  }
  return v => v !== '' && fromParams.has(v) && toLoss.has(v)
}

/** Topological order; an ONNX graph should already be in it, and then it is kept as is. */
function sortNodes (nodes: Node[], defined: Set<string>): Node[] {
  const producer = new Map<string, number>()
  nodes.forEach((n, i) => { for (const o of n.outputs) if (o !== '') producer.set(o, i) })
  const dependencies = nodes.map(n => n.inputs.filter(i => i !== '' && !defined.has(i)).map(i => {
    const p = producer.get(i)
    if (p === undefined) throw new InvalidGraphError(`${n.op} ${n.name ?? n.outputs[0]} reads ${i}, which nothing defines`)
    return p
  }))
  if (dependencies.every((deps, i) => deps.every(d => d < i))) return nodes
  const waiting = dependencies.map(deps => deps.length)
  const consumers = nodes.map((): number[] => [])
  dependencies.forEach((deps, i) => { for (const d of deps) consumers[d].push(i) })
  const queue = waiting.flatMap((w, i) => w === 0 ? [i] : [])
  for (let k = 0; k < queue.length; k++) {
    for (const c of consumers[queue[k]]) if (--waiting[c] === 0) queue.push(c)
  }
  if (queue.length < nodes.length) throw new InvalidGraphError('the graph has a cycle')
  return queue.map(i => nodes[i])
}

/** Drops the nodes that no output needs: forward outputs neither the loss nor kept, unused backward branches. */
function prune (nodes: Node[], outputs: string[]): Node[] {
  const needed = new Set(outputs)
  const kept: Node[] = []
  for (const node of [...nodes].reverse()) {
    if (!node.outputs.some(o => needed.has(o))) continue
    kept.push(node)
    for (const i of node.inputs) needed.add(i)
  }
  return kept.reverse()
}
