import { describe, it } from 'node:test'
import { attr } from '../../src/graph.ts'
import type { Initializer, Model, Node } from '../../src/graph.ts'
import { gradCheck, init, int64s, randomFloats, rng } from './grad-check.ts'

const B = 2
const T = 4
const D = 8
const HEADS = 2
const HEAD = D / HEADS
const VOCAB = 7
const HIDDEN = 16
const MAX_POSITIONS = 6

const f32 = (name: string, value: number): Initializer => init(name, { type: 'float32', dims: [], data: new Float32Array([value]) })
const ints = (name: string, values: number[]): Initializer => init(name, int64s([values.length], values))

/**
 * A one-block decoder built by hand: token and position embeddings,
 * pre-norm causal self-attention with two heads, a Gelu MLP, residuals,
 * a final norm and logits through the transposed token embedding (so the
 * embedding gets gradients from two places), then cross-entropy over the
 * sequence in the [N, C, T] layout.
 */
function decoder (seed: number): { model: Model, params: string[] } {
  const rand = rng(seed)
  const w = (name: string, dims: number[], scale = 0.5): Initializer => init(name, randomFloats(rand, dims, { min: -scale, max: scale }))
  const ones = (name: string): Initializer => init(name, randomFloats(rand, [D], { min: 0.8, max: 1.2 }))
  const weights = [
    w('emb', [VOCAB, D], 1), w('pos', [MAX_POSITIONS, D], 0.3),
    ones('ln1.scale'), w('ln1.bias', [D], 0.1),
    w('Wq', [D, D]), w('Wk', [D, D]), w('Wv', [D, D]), w('Wo', [D, D]),
    ones('ln2.scale'), w('ln2.bias', [D], 0.1),
    w('W1', [D, HIDDEN]), w('b1', [HIDDEN], 0.1), w('W2', [HIDDEN, D]), w('b2', [D], 0.1),
    ones('lnf.scale'), w('lnf.bias', [D], 0.1)
  ]
  const causal = init('causal', { type: 'bool', dims: [T, T], data: Uint8Array.from({ length: T * T }, (_, i) => Math.floor(i / T) >= i % T ? 1 : 0) })
  const constants = [
    causal, f32('scale', 1 / Math.sqrt(HEAD)), f32('masked', -1e4),
    ints('heads', [B, T, HEADS, HEAD]), ints('merged', [B, T, D]),
    ints('zero', [0]), ints('T', [T])
  ]
  const n = (op: string, inputs: string[], output: string, attributes?: Node['attributes']): Node =>
    ({ op, inputs, outputs: [output], ...(attributes === undefined ? {} : { attributes }) })
  const layerNorm = (x: string, prefix: string, out: string): Node =>
    n('LayerNormalization', [x, `${prefix}.scale`, `${prefix}.bias`], out, { epsilon: attr.float(1e-5) })
  const splitHeads = (x: string, out: string, perm: number[]): Node[] => [
    n('Reshape', [x, 'heads'], `${out}.4d`),
    n('Transpose', [`${out}.4d`], out, { perm: attr.ints(perm) })
  ]
  const nodes: Node[] = [
    n('Gather', ['emb', 'tokens'], 'tok'),
    n('Slice', ['pos', 'zero', 'T', 'zero'], 'positions'),
    n('Add', ['tok', 'positions'], 'x0'),
    layerNorm('x0', 'ln1', 'h1'),
    n('MatMul', ['h1', 'Wq'], 'q'), n('MatMul', ['h1', 'Wk'], 'k'), n('MatMul', ['h1', 'Wv'], 'v'),
    ...splitHeads('q', 'qh', [0, 2, 1, 3]),
    ...splitHeads('k', 'khT', [0, 2, 3, 1]),
    ...splitHeads('v', 'vh', [0, 2, 1, 3]),
    n('MatMul', ['qh', 'khT'], 'scores'),
    n('Mul', ['scores', 'scale'], 'scaled'),
    n('Where', ['causal', 'scaled', 'masked'], 'causal_scores'),
    n('Softmax', ['causal_scores'], 'attention', { axis: attr.int(-1) }),
    n('MatMul', ['attention', 'vh'], 'context'),
    n('Transpose', ['context'], 'context.t', { perm: attr.ints([0, 2, 1, 3]) }),
    n('Reshape', ['context.t', 'merged'], 'context.merged'),
    n('MatMul', ['context.merged', 'Wo'], 'attended'),
    n('Add', ['x0', 'attended'], 'x1'),
    layerNorm('x1', 'ln2', 'h2'),
    n('MatMul', ['h2', 'W1'], 'up'), n('Add', ['up', 'b1'], 'up.b'), n('Gelu', ['up.b'], 'act'),
    n('MatMul', ['act', 'W2'], 'down'), n('Add', ['down', 'b2'], 'down.b'),
    n('Add', ['x1', 'down.b'], 'x2'),
    layerNorm('x2', 'lnf', 'hf'),
    n('Transpose', ['emb'], 'emb.t', { perm: attr.ints([1, 0]) }),
    n('MatMul', ['hf', 'emb.t'], 'logits'),
    n('Transpose', ['logits'], 'logits.nct', { perm: attr.ints([0, 2, 1]) }),
    n('SoftmaxCrossEntropyLoss', ['logits.nct', 'labels'], 'loss')
  ]
  const model: Model = {
    opset: 20,
    graph: {
      name: 'decoder',
      inputs: [{ name: 'tokens', type: 'int64', shape: [B, T] }, { name: 'labels', type: 'int64', shape: [B, T] }],
      outputs: [{ name: 'loss', type: 'float32', shape: [] }],
      initializers: [...weights, ...constants],
      nodes
    }
  }
  return { model, params: weights.map(i => i.name) }
}

describe('a tiny transformer block', () => {
  it('has the gradients of finite differences at two points', async () => {
    for (const seed of [1, 2]) {
      const rand = rng(seed + 50)
      const token = (): number => Math.floor(rand() * VOCAB)
      const tokens = int64s([B, T], Array.from({ length: B * T }, token))
      const labels = int64s([B, T], Array.from({ length: B * T }, token))
      const { model, params } = decoder(seed)
      await gradCheck(model, { params, feeds: { tokens, labels } })
    }
  })
})
