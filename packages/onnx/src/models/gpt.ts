/**
 * A GPT-2-style decoder: learned position embeddings, pre-LayerNorm blocks of
 * causal multi-head attention and a 4x GELU MLP, a final LayerNorm and an LM
 * head tied to the token embedding. Weights carry Hugging Face's GPT-2 names.
 */
import { GraphBuilder } from '../builder.ts'
import type { ParameterShape } from '../builder.ts'
import type { Model } from '../graph.ts'
import {
  TRANSFORMER_OPSET, affine, affineShapes, attention, causalMask, correctCount, crossEntropy, initParameters, layerNorm, maskFromAllowed, mlp, paddingMask, sequenceLength, tiedHead
} from './transformer.ts'
import type { Affine, AttentionWeights, LossShape, MlpWeights } from './transformer.ts'

export interface GptConfig {
  vocabSize: number
  hiddenSize: number
  layers: number
  heads: number
  maxPositions: number
  layerNormEps: number
}

interface Block {
  ln1: Affine
  attention: AttentionWeights
  ln2: Affine
  mlp: MlpWeights
}

function block (i: number): Block {
  const p = `transformer.h.${i}`
  return {
    ln1: affine(`${p}.ln_1`),
    attention: { qkv: affine(`${p}.attn.c_attn`), out: affine(`${p}.attn.c_proj`) },
    ln2: affine(`${p}.ln_2`),
    mlp: { up: affine(`${p}.mlp.c_fc`), down: affine(`${p}.mlp.c_proj`) }
  }
}

const WTE = 'transformer.wte.weight'
const WPE = 'transformer.wpe.weight'
const LN_F = affine('transformer.ln_f')

export function gptParameterShapes (config: GptConfig): ParameterShape[] {
  const e = config.hiddenSize
  const shapes: ParameterShape[] = [{ name: WTE, dims: [config.vocabSize, e] }, { name: WPE, dims: [config.maxPositions, e] }]
  for (let i = 0; i < config.layers; i++) {
    const w = block(i)
    shapes.push(
      ...affineShapes(w.ln1, [e], e),
      ...affineShapes(w.attention.qkv, [e, 3 * e], 3 * e),
      ...affineShapes(w.attention.out, [e, e], e),
      ...affineShapes(w.ln2, [e], e),
      ...affineShapes(w.mlp.up, [e, 4 * e], 4 * e),
      ...affineShapes(w.mlp.down, [4 * e, e], e)
    )
  }
  shapes.push(...affineShapes(LN_F, [e], e))
  return shapes
}

/** GPT-2's initialisation: N(0, 0.02), residual projections scaled by 1/√(2·layers), LayerNorms 1 and biases 0. */
export function initGptWeights (config: GptConfig, seed: number): Record<string, Float32Array> {
  return initParameters(gptParameterShapes(config), seed, name => {
    if (/\.ln_\w+\.weight$/.test(name)) return 'ones'
    if (name.endsWith('.bias')) return 'zeros'
    if (name.endsWith('.c_proj.weight')) return 0.02 / Math.sqrt(2 * config.layers)
    return 0.02
  })
}

interface Body {
  logits: string
  presents: Array<{ key: string, value: string }>
}

/**
 * The network from token ids to logits, shared by the inference and the
 * training graph. `positions` indexes the position embedding; `mask` is the
 * additive attention mask; `past(i)` gives layer i's cached keys and values.
 */
function gptBody (b: GraphBuilder, config: GptConfig, ids: string, positions: string, mask: string, past?: (layer: number) => { key: string, value: string }): Body {
  const { hiddenSize: hidden, heads, layerNormEps: eps } = config
  let x = b.op('Add', [b.op('Gather', [WTE, ids]), b.op('Gather', [WPE, positions])])
  const presents: Body['presents'] = []
  for (let i = 0; i < config.layers; i++) {
    const w = block(i)
    const a = attention(b, layerNorm(b, x, w.ln1, eps), w.attention, { heads, hidden, mask, past: past?.(i) })
    presents.push({ key: a.key, value: a.value })
    x = b.op('Add', [x, a.output])
    x = b.op('Add', [x, mlp(b, layerNorm(b, x, w.ln2, eps), w.mlp, 'tanh')])
  }
  return { logits: tiedHead(b, layerNorm(b, x, LN_F, eps), WTE), presents }
}

/**
 * The inference graph with a KV cache, in the layout optimum exports for
 * GPT-2: the first step passes past_key_values of length 0, and each step's
 * present.* are the next step's past_key_values.
 */
export function buildGptDecoder (config: GptConfig, weights: Record<string, Float32Array>): Model {
  const b = new GraphBuilder({ name: 'gpt', opset: TRANSFORMER_OPSET })
  const headDim = config.hiddenSize / config.heads
  const total = 'past_sequence_length + sequence_length'
  const ids = b.input('input_ids', 'int64', ['batch_size', 'sequence_length'])
  const attentionMask = b.input('attention_mask', 'int64', ['batch_size', total])
  const positions = b.input('position_ids', 'int64', ['batch_size', 'sequence_length'])
  const pastShape = ['batch_size', config.heads, 'past_sequence_length', headDim]
  const past = Array.from({ length: config.layers }, (_, i) => ({
    key: b.input(`past_key_values.${i}.key`, 'float32', pastShape),
    value: b.input(`past_key_values.${i}.value`, 'float32', pastShape)
  }))
  b.parameters(gptParameterShapes(config), weights)

  // The queries are the last `sequence_length` of the `total` positions: query q may see key k when k ≤ q and k is no padding.
  const totalLength = sequenceLength(b, attentionMask)
  const one = b.scalar(1, 'int64')
  const keyPos = b.op('Reshape', [b.op('Range', [b.scalar(0, 'int64'), totalLength, one]), b.ints([1, -1])])
  const queryStart = b.op('Sub', [totalLength, sequenceLength(b, ids)])
  const queryPos = b.op('Reshape', [b.op('Range', [queryStart, totalLength, one]), b.ints([-1, 1])])
  const causal = maskFromAllowed(b, b.op('LessOrEqual', [keyPos, queryPos]))
  const mask = b.op('Add', [causal, paddingMask(b, attentionMask)])

  const body = gptBody(b, config, ids, positions, mask, i => past[i])
  b.output(body.logits, 'logits', 'float32', ['batch_size', 'sequence_length', config.vocabSize])
  const presentShape = ['batch_size', config.heads, total, headDim]
  body.presents.forEach(({ key, value }, i) => {
    b.output(key, `present.${i}.key`, 'float32', presentShape)
    b.output(value, `present.${i}.value`, 'float32', presentShape)
  })
  return b.build()
}

/**
 * The training forward graph: the weights are inputs (named as in the
 * decoder), with input_ids and labels [batch, sequence]; `loss` is the mean
 * cross-entropy of the logits at each position against labels at the same
 * position, so labels are the ids shifted left, -100 where nothing is to be
 * predicted. `correct` counts the labelled positions whose most likely token
 * is the label (a float32 scalar); buildTrainingGraph drops it unless kept.
 */
export function buildGptLoss (config: GptConfig, shape: LossShape): Model {
  const { batchSize, sequenceLength } = shape
  const b = new GraphBuilder({ name: 'gpt_loss', opset: TRANSFORMER_OPSET })
  b.parameters(gptParameterShapes(config))
  const ids = b.input('input_ids', 'int64', [batchSize, sequenceLength])
  const labels = b.input('labels', 'int64', [batchSize, sequenceLength])
  const positions = b.ints(Array.from({ length: sequenceLength }, (_, i) => i))
  const { logits } = gptBody(b, config, ids, positions, causalMask(b, sequenceLength))
  b.output(crossEntropy(b, logits, labels, config.vocabSize), 'loss', 'float32', [])
  b.output(correctCount(b, logits, labels), 'correct', 'float32', [])
  return b.build()
}

/** The config.json of a Hugging Face gpt2 model with this architecture. */
export function gptHfConfig (config: GptConfig, tokens: { bosTokenId: number, eosTokenId: number }): Record<string, unknown> {
  return {
    model_type: 'gpt2',
    architectures: ['GPT2LMHeadModel'],
    vocab_size: config.vocabSize,
    n_embd: config.hiddenSize,
    n_layer: config.layers,
    n_head: config.heads,
    n_positions: config.maxPositions,
    n_ctx: config.maxPositions,
    n_inner: null,
    activation_function: 'gelu_new',
    layer_norm_epsilon: config.layerNormEps,
    initializer_range: 0.02,
    bos_token_id: tokens.bosTokenId,
    eos_token_id: tokens.eosTokenId,
    tie_word_embeddings: true,
    use_cache: true,
    hidden_size: config.hiddenSize,
    num_hidden_layers: config.layers,
    num_attention_heads: config.heads
  }
}
