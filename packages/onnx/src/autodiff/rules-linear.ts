/**
 * Gradients of MatMul and Gemm. MatMul follows numpy: 1-D operands are
 * promoted to matrices and batch axes broadcast, so both gradients are
 * computed on the promoted shapes and summed back to the operands'.
 */
import { attr } from '../graph.ts'
import { reshape, sumTo, transposeLast2 } from './emitter.ts'
import { forInputs, outputGrad } from './gradient-rule.ts'
import type { GradRule } from './gradient-rule.ts'
import { broadcastShapes, floatAttr, intAttr, optionalInput, sameShape } from './op-params.ts'

const matMul: GradRule = c => {
  const { e, s } = c
  const [a, b] = c.node.inputs
  const sa = s.shape(a)
  const sb = s.shape(b)
  const a2 = sa.length === 1 ? [1, sa[0]] : sa
  const b2 = sb.length === 1 ? [sb[0], 1] : sb
  const [n, k] = a2.slice(-2)
  const m = b2[b2.length - 1]
  const batch = broadcastShapes(a2.slice(0, -2), b2.slice(0, -2))
  const y2 = [...batch, n, m]
  const promote = (x: string, from: number[], to: number[]): string => sameShape(from, to) ? x : reshape(e, x, to)
  const g = promote(outputGrad(c), s.shape(c.node.outputs[0]), y2)
  return forInputs(c,
    () => {
      const da = e.op('MatMul', [g, transposeLast2(e, promote(b, sb, b2), b2.length)])
      return promote(sumTo(e, da, [...batch, n, k], a2), a2, sa)
    },
    () => {
      const A = promote(a, sa, a2)
      // A weight shared by every batch row: one matrix product over the flattened rows, not a batched one and a sum.
      const db = b2.length === 2
        ? e.op('Gemm', [reshape(e, A, [-1, k]), reshape(e, g, [-1, m])], { transA: attr.int(1) })
        : sumTo(e, e.op('MatMul', [transposeLast2(e, A, a2.length), g]), [...batch, k, m], b2)
      return promote(db, b2, sb)
    })
}

/** Y = alpha · op(A) · op(B) + beta · C, where op transposes when transA / transB is set. */
const gemm: GradRule = c => {
  const { e, s, node } = c
  const [a, b] = node.inputs
  const transA = intAttr(node, 'transA', 0)
  const transB = intAttr(node, 'transB', 0)
  const alpha = floatAttr(node, 'alpha', 1)
  const beta = floatAttr(node, 'beta', 1)
  const g = outputGrad(c)
  const gemmOf = (x: string, y: string, tA: number, tB: number): string =>
    e.op('Gemm', [x, y], { transA: attr.int(tA), transB: attr.int(tB), alpha: attr.float(alpha) })
  const C = optionalInput(node, 2)
  return forInputs(c,
    // dA = α·g·op(B)ᵀ, transposed back when A was
    () => transA === 1 ? gemmOf(b, g, transB, 1) : gemmOf(g, b, 0, 1 - transB),
    // dB = α·op(A)ᵀ·g, transposed back when B was
    () => transB === 1 ? gemmOf(g, a, 1, transA) : gemmOf(a, g, 1 - transA, 0),
    C === undefined
      ? undefined
      : () => {
          const summed = sumTo(e, g, s.shape(node.outputs[0]), s.shape(C))
          return beta === 1 ? summed : e.op('Mul', [summed, e.scalar(beta)])
        })
}

export const LINEAR_RULES: Record<string, GradRule> = { MatMul: matMul, Gemm: gemm }
