/**
 * The contract between the backward pass and the per-op gradient rules:
 * a rule sees one forward node and the gradients of its outputs and emits
 * the nodes that compute the gradients of its inputs.
 */
import type { Node } from '../graph.ts'
import type { Emitter } from './emitter.ts'
import { UnsupportedOpError } from './errors.ts'
import type { Shapes } from './shapes.ts'

export interface GradContext {
  /** The forward node, whose input and output names the rule may use. */
  node: Node
  /** The loss's gradient with respect to each output, undefined where none flows back. */
  dy: Array<string | undefined>
  /** Whether input i needs a gradient: a float reachable from a parameter. */
  needs: boolean[]
  e: Emitter
  s: Shapes
  /** Output i of the forward node, added to it if the graph did not ask for it (LayerNormalization's saved statistics, for one). */
  output: (i: number) => string
}

/** The gradients of the node's inputs in input order; undefined for an input with none (or not needed). */
export type GradRule = (c: GradContext) => Array<string | undefined>

/** The gradient of output 0, which a node on the path has unless only another output is used. */
export function outputGrad (c: GradContext): string {
  const g = c.dy[0]
  if (g === undefined) throw new UnsupportedOpError(c.node.op, `gradient through output 0 only (${c.node.outputs[0]})`)
  return g
}

/** Runs the i-th function only when input i needs a gradient, so that no unused backward node is emitted. */
export function forInputs (c: GradContext, ...fns: Array<(() => string) | undefined>): Array<string | undefined> {
  return fns.map((f, i) => c.needs[i] && f !== undefined ? f() : undefined)
}
