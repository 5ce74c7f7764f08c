/**
 * Llama-family decoders in the layout optimum exports them: input_ids,
 * attention_mask, position_ids and past_key_values.N.key/value
 * [batch, kv heads, past, head_dim] in; logits and present.N.key/value, each
 * the Concat of the past and the step's keys or values along axis -2, out.
 * One builder covers the families that differ by a few traits (its
 * `modelType`): Llama 1-3 and SmolLM, Mistral (sliding window), Qwen2 (q/k/v
 * biases), Qwen3 (per-head q/k RMSNorm), Phi-3 (fused qkv and gate_up
 * projections) and Gemma 2/3 (scaled embedding, (1 + w) RMSNorm, sandwich
 * norms, GELU, soft-capping, alternating sliding and global layers). The
 * runtime's tests run tiny random ones of each, as nothing can be downloaded.
 */
import { GraphBuilder } from '../builder.ts'
import type { ParameterShape } from '../builder.ts'
import { attr } from '../graph.ts'
import type { Model } from '../graph.ts'
import { TRANSFORMER_OPSET, initParameters, maskFromAllowed, paddingMask, sequenceLength } from './transformer.ts'

export type LlamaFamily = 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'phi3' | 'gemma2' | 'gemma3_text'

/** config.json's rope_scaling, for the types whose inverse frequencies transformers computes without a trained table. */
export type RopeScaling =
  | { rope_type: 'linear', factor: number }
  | { rope_type: 'dynamic', factor: number }
  | { rope_type: 'llama3', factor: number, low_freq_factor: number, high_freq_factor: number, original_max_position_embeddings: number }

export interface LlamaConfig {
  modelType: LlamaFamily
  vocabSize: number
  hiddenSize: number
  intermediateSize: number
  layers: number
  heads: number
  /** Fewer than `heads` for grouped-query attention. */
  kvHeads: number
  headDim: number
  maxPositions: number
  rmsNormEps: number
  ropeTheta: number
  ropeScaling?: RopeScaling
  tieEmbeddings: boolean
  /** Keys a query may look back at on sliding layers (Mistral: all; Gemma: see slidingLayer). */
  slidingWindow?: number
  /** Gemma 3: the RoPE base of its sliding layers (rope_local_base_freq). */
  localRopeTheta?: number
  /** Gemma 3: every this-many-th layer is global (sliding_window_pattern). */
  slidingWindowPattern?: number
  /** Gemma 2: tanh soft-capping of the attention scores and of the final logits. */
  attnLogitSoftcapping?: number
  finalLogitSoftcapping?: number
  /** Gemma: the attention scale is query_pre_attn_scalar^-0.5 rather than head_dim^-0.5. */
  queryPreAttnScalar?: number
  /** false: no position_ids input; the graph counts positions along the attention mask. */
  positionIds?: boolean
  /** The KV cache's and logits' type, float16 as fp16 and q4f16 exports declare them; compute stays float32. */
  ioType?: 'float32' | 'float16'
  /**
   * Attention as onnxruntime-genai's builder writes it for CPU: one
   * com.microsoft GroupQueryAttention per layer, which rotates q and k itself
   * (do_rotary, from cos and sin caches of every position), owns the causal
   * mask and appends to the cache; seqlens_k and total_sequence_length are
   * computed from attention_mask, and there is no position_ids input.
   * float32, without sliding windows or dynamic RoPE.
   */
  gqa?: boolean
}

const isGemma = (c: LlamaConfig): boolean => c.modelType === 'gemma2' || c.modelType === 'gemma3_text'
const hasQkNorm = (c: LlamaConfig): boolean => c.modelType === 'qwen3' || c.modelType === 'gemma3_text'

/** Whether layer i attends within the sliding window: every Mistral layer, Gemma 2's even ones, all but each pattern-th of Gemma 3's. */
export function slidingLayer (c: LlamaConfig, i: number): boolean {
  if (c.slidingWindow == null) return false
  if (c.modelType === 'gemma2') return i % 2 === 0
  if (c.modelType === 'gemma3_text') return (i + 1) % (c.slidingWindowPattern ?? 6) !== 0
  return true
}

const layer = (i: number): string => `model.layers.${i}`
const EMBED = 'model.embed_tokens.weight'

export function llamaParameterShapes (c: LlamaConfig): ParameterShape[] {
  const { hiddenSize: h, intermediateSize: m, heads, kvHeads, headDim: d } = c
  const shapes: ParameterShape[] = [{ name: EMBED, dims: [c.vocabSize, h] }]
  for (let i = 0; i < c.layers; i++) {
    const p = layer(i)
    const add = (name: string, dims: number[]): void => { shapes.push({ name: `${p}.${name}`, dims }) }
    add('input_layernorm.weight', [h])
    if (c.modelType === 'phi3') add('self_attn.qkv_proj.weight', [h, (heads + 2 * kvHeads) * d])
    else {
      for (const [name, n] of [['q', heads], ['k', kvHeads], ['v', kvHeads]] as const) {
        add(`self_attn.${name}_proj.weight`, [h, n * d])
        if (c.modelType === 'qwen2') add(`self_attn.${name}_proj.bias`, [n * d])
      }
    }
    if (hasQkNorm(c)) {
      add('self_attn.q_norm.weight', [d])
      add('self_attn.k_norm.weight', [d])
    }
    add('self_attn.o_proj.weight', [heads * d, h])
    add('post_attention_layernorm.weight', [h])
    if (isGemma(c)) {
      add('pre_feedforward_layernorm.weight', [h])
      add('post_feedforward_layernorm.weight', [h])
    }
    if (c.modelType === 'phi3') add('mlp.gate_up_proj.weight', [h, 2 * m])
    else {
      add('mlp.gate_proj.weight', [h, m])
      add('mlp.up_proj.weight', [h, m])
    }
    add('mlp.down_proj.weight', [m, h])
  }
  shapes.push({ name: 'model.norm.weight', dims: [h] })
  if (!c.tieEmbeddings) shapes.push({ name: 'lm_head.weight', dims: [h, c.vocabSize] })
  return shapes
}

/**
 * Random weights of `std`: linear weights are stored [in, out], as MatMul
 * takes them. RMSNorm weights are 1 (Gemma's, added to 1, near 0) with some
 * noise, so that a norm that ignored its weight would change the tokens.
 */
export function initLlamaWeights (c: LlamaConfig, seed: number, std = 0.02): Record<string, Float32Array> {
  const weights = initParameters(llamaParameterShapes(c), seed, name => name.endsWith('norm.weight') ? 0.1 : std)
  if (!isGemma(c)) for (const [name, w] of Object.entries(weights)) if (name.endsWith('norm.weight')) for (let i = 0; i < w.length; i++) w[i] += 1
  return weights
}

/**
 * Inverse frequencies of the rotary embedding as transformers computes them
 * (modeling_rope_utils): base^(-2i/d), divided by the factor for `linear`,
 * and for `llama3` kept for short wavelengths, divided for long ones and
 * interpolated between. `dynamic` is computed in the graph.
 */
export function ropeInverseFrequencies (headDim: number, theta: number, scaling?: RopeScaling): Float32Array {
  const inv = Array.from({ length: headDim / 2 }, (_, i) => 1 / theta ** (2 * i / headDim))
  if (scaling?.rope_type === 'linear') return Float32Array.from(inv, f => f / scaling.factor)
  if (scaling?.rope_type !== 'llama3') return Float32Array.from(inv)
  const { factor, low_freq_factor: low, high_freq_factor: high, original_max_position_embeddings: original } = scaling
  return Float32Array.from(inv, f => {
    const wavelength = 2 * Math.PI / f
    if (wavelength < original / high) return f
    if (wavelength > original / low) return f / factor
    const smooth = (original / wavelength - low) / (high - low)
    return (1 - smooth) * f / factor + smooth * f
  })
}

interface Rope {
  cos: string
  sin: string
}

/** cos and sin [batch, 1, sequence, head_dim] of `positions` [batch, sequence]. */
function rope (b: GraphBuilder, c: LlamaConfig, positions: string, theta: number, scaling?: RopeScaling): Rope {
  const d = c.headDim
  let inv: string
  if (scaling?.rope_type === 'dynamic') {
    // NTK scaling once a sequence outgrows max_position_embeddings: base · (factor · len / max − (factor − 1))^(d / (d − 2)).
    const length = b.op('Max', [b.op('Cast', [b.op('ReduceMax', [positions], { keepdims: attr.int(0) })], { to: attr.int(1) }), b.scalar(c.maxPositions - 1)])
    const ratio = b.op('Sub', [b.op('Mul', [b.op('Add', [length, b.scalar(1)]), b.scalar(scaling.factor / c.maxPositions)]), b.scalar(scaling.factor - 1)])
    const base = b.op('Mul', [b.scalar(theta), b.op('Pow', [ratio, b.scalar(d / (d - 2))])])
    const exponents = b.constant({ type: 'float32', dims: [d / 2], data: Float32Array.from({ length: d / 2 }, (_, i) => -2 * i / d) })
    inv = b.op('Pow', [base, exponents])
  } else {
    inv = b.constant({ type: 'float32', dims: [d / 2], data: ropeInverseFrequencies(d, theta, scaling) })
  }
  const freqs = b.op('Mul', [b.op('Unsqueeze', [b.op('Cast', [positions], { to: attr.int(1) }), b.ints([2])]), inv])
  const angles = b.op('Unsqueeze', [b.op('Concat', [freqs, freqs], { axis: attr.int(-1) }), b.ints([1])])
  return { cos: b.op('Cos', [angles]), sin: b.op('Sin', [angles]) }
}

/** x · cos + rotate_half(x) · sin, rotate_half being [−x₂, x₁] of the two halves of the last axis. */
function rotate (b: GraphBuilder, x: string, r: Rope, d: number): string {
  const half = (from: number, to: number): string => b.op('Slice', [x, b.ints([from]), b.ints([to]), b.ints([-1])])
  const rotated = b.op('Concat', [b.op('Neg', [half(d / 2, d)]), half(0, d / 2)], { axis: attr.int(-1) })
  return b.op('Add', [b.op('Mul', [x, r.cos]), b.op('Mul', [rotated, r.sin])])
}

/** RMSNorm over the last axis: x / √(mean(x²) + ε) · w, or · (1 + w) as Gemma's. */
function rmsNorm (b: GraphBuilder, c: LlamaConfig, x: string, weight: string): string {
  const variance = b.op('ReduceMean', [b.op('Mul', [x, x]), b.ints([-1])], { keepdims: attr.int(1) })
  const normed = b.op('Div', [x, b.op('Sqrt', [b.op('Add', [variance, b.scalar(c.rmsNormEps)])])])
  return b.op('Mul', [normed, isGemma(c) ? b.op('Add', [weight, b.scalar(1)]) : weight])
}

const softcap = (b: GraphBuilder, x: string, cap: number): string => b.op('Mul', [b.op('Tanh', [b.op('Div', [x, b.scalar(cap)])]), b.scalar(cap)])

/** `to` codes of Cast: TensorProto's FLOAT and FLOAT16. */
const CAST_TO = { float32: 1, float16: 10 }

/** What every GroupQueryAttention node of the graph takes besides q, k, v and the past. */
interface GqaInputs {
  /** int32 [batch]: each row's count of keys, minus one. */
  seqlens: string
  /** int32 scalar: the attention mask's length. */
  total: string
  /** [max positions, head_dim / 2]. */
  cos: string
  sin: string
}

interface Layer {
  index: number
  mask: string
  rope: Rope
  past: { key: string, value: string }
  gqa?: GqaInputs
}

/** GroupQueryAttention over q, k, v [batch, sequence, n · head_dim]: the output [batch, sequence, heads · head_dim] and the presents. */
function groupQueryAttention (b: GraphBuilder, c: LlamaConfig, q: string, k: string, v: string, l: Layer, g: GqaInputs): { output: string, key: string, value: string } {
  const attributes = {
    num_heads: attr.int(c.heads),
    kv_num_heads: attr.int(c.kvHeads),
    scale: attr.float(1 / Math.sqrt(c.queryPreAttnScalar ?? c.headDim)),
    do_rotary: attr.int(1),
    rotary_interleaved: attr.int(0),
    ...(c.attnLogitSoftcapping != null ? { softcap: attr.float(c.attnLogitSoftcapping) } : {})
  }
  const [output, key, value] = b.op('GroupQueryAttention', [q, k, v, l.past.key, l.past.value, g.seqlens, g.total, g.cos, g.sin], attributes, 3)
  return { output, key, value }
}

/** Self-attention of one layer over x [batch, sequence, hidden]; returns the output and the grown keys and values (the presents). */
function attention (b: GraphBuilder, c: LlamaConfig, x: string, l: Layer): { output: string, key: string, value: string } {
  const { heads, kvHeads, headDim: d } = c
  const p = `${layer(l.index)}.self_attn`
  let q: string, k: string, v: string
  if (c.modelType === 'phi3') {
    const qkv = b.op('MatMul', [x, `${p}.qkv_proj.weight`])
    const part = (from: number, to: number): string => b.op('Slice', [qkv, b.ints([from * d]), b.ints([to * d]), b.ints([-1])])
    q = part(0, heads)
    k = part(heads, heads + kvHeads)
    v = part(heads + kvHeads, heads + 2 * kvHeads)
  } else {
    const project = (name: string): string => {
      const y = b.op('MatMul', [x, `${p}.${name}_proj.weight`])
      return c.modelType === 'qwen2' ? b.op('Add', [y, `${p}.${name}_proj.bias`]) : y
    }
    q = project('q')
    k = project('k')
    v = project('v')
  }
  const qkNorm = hasQkNorm(c)
  if (l.gqa != null) {
    // Per-head norms before GroupQueryAttention rotates: [batch, sequence, n · d] → [batch, sequence, n, d] and back.
    const normed = (y: string, n: number, norm: string): string => b.op('Reshape', [rmsNorm(b, c, b.op('Reshape', [y, b.ints([0, 0, n, d])]), norm), b.ints([0, 0, n * d])])
    if (qkNorm) {
      q = normed(q, heads, `${p}.q_norm.weight`)
      k = normed(k, kvHeads, `${p}.k_norm.weight`)
    }
    const a = groupQueryAttention(b, c, q, k, v, l, l.gqa)
    return { output: b.op('MatMul', [a.output, `${p}.o_proj.weight`]), key: a.key, value: a.value }
  }
  // [batch, sequence, n · d] → [batch, n, sequence, d], normed per head first where the family does.
  const split = (y: string, n: number, norm?: string): string => {
    let heads = b.op('Reshape', [y, b.ints([0, 0, n, d])])
    if (norm != null) heads = rmsNorm(b, c, heads, norm)
    return b.op('Transpose', [heads], { perm: attr.ints([0, 2, 1, 3]) })
  }
  const query = rotate(b, split(q, heads, qkNorm ? `${p}.q_norm.weight` : undefined), l.rope, d)
  let key = rotate(b, split(k, kvHeads, qkNorm ? `${p}.k_norm.weight` : undefined), l.rope, d)
  let value = split(v, kvHeads)
  const io = c.ioType ?? 'float32'
  if (io !== 'float32') {
    key = b.op('Cast', [key], { to: attr.int(CAST_TO[io]) })
    value = b.op('Cast', [value], { to: attr.int(CAST_TO[io]) })
  }
  // As transformers' cache appends: along the sequence axis, counted from the end.
  const presentKey = b.op('Concat', [l.past.key, key], { axis: attr.int(-2) })
  const presentValue = b.op('Concat', [l.past.value, value], { axis: attr.int(-2) })
  key = presentKey
  value = presentValue
  if (io !== 'float32') {
    key = b.op('Cast', [key], { to: attr.int(CAST_TO.float32) })
    value = b.op('Cast', [value], { to: attr.int(CAST_TO.float32) })
  }
  // repeat_kv: each of the kv heads serves heads / kvHeads query heads.
  const repeat = heads / kvHeads
  const expand = (t: string): string => repeat === 1 ? t : b.op('Reshape', [b.op('Expand', [b.op('Unsqueeze', [t, b.ints([2])]), b.ints([1, 1, repeat, 1, 1])]), b.ints([0, heads, -1, d])])
  const scale = 1 / Math.sqrt(c.queryPreAttnScalar ?? d)
  let scores = b.op('Mul', [b.op('MatMul', [query, b.op('Transpose', [expand(key)], { perm: attr.ints([0, 1, 3, 2]) })]), b.scalar(scale)])
  if (c.attnLogitSoftcapping != null) scores = softcap(b, scores, c.attnLogitSoftcapping)
  const probs = b.op('Softmax', [b.op('Add', [scores, l.mask])], { axis: attr.int(-1) })
  const context = b.op('Transpose', [b.op('MatMul', [probs, expand(value)])], { perm: attr.ints([0, 2, 1, 3]) })
  const output = b.op('MatMul', [b.op('Reshape', [context, b.ints([0, 0, heads * d])]), `${p}.o_proj.weight`])
  return { output, key: presentKey, value: presentValue }
}

/** SwiGLU (GeGLU with tanh GELU for Gemma): down(act(gate(x)) · up(x)). */
function mlp (b: GraphBuilder, c: LlamaConfig, x: string, i: number): string {
  const p = `${layer(i)}.mlp`
  let gate: string, up: string
  if (c.modelType === 'phi3') {
    const fused = b.op('MatMul', [x, `${p}.gate_up_proj.weight`])
    const m = c.intermediateSize
    gate = b.op('Slice', [fused, b.ints([0]), b.ints([m]), b.ints([-1])])
    up = b.op('Slice', [fused, b.ints([m]), b.ints([2 * m]), b.ints([-1])])
  } else {
    gate = b.op('MatMul', [x, `${p}.gate_proj.weight`])
    up = b.op('MatMul', [x, `${p}.up_proj.weight`])
  }
  const act = isGemma(c) ? b.op('Gelu', [gate], { approximate: attr.string('tanh') }) : b.op('Mul', [gate, b.op('Sigmoid', [gate])])
  return b.op('MatMul', [b.op('Mul', [act, up]), `${p}.down_proj.weight`])
}

/**
 * The inference graph. Masks are built from the attention mask and the
 * index of each position among past + new ones, as transformers' masking
 * does; sliding layers also hide keys `slidingWindow` or more behind.
 */
export function buildLlamaDecoder (c: LlamaConfig, weights: Record<string, Float32Array>): Model {
  if (c.gqa === true && (c.slidingWindow != null || c.ropeScaling?.rope_type === 'dynamic' || (c.ioType ?? 'float32') !== 'float32')) throw new RangeError('the GroupQueryAttention graph is float32, without sliding windows or dynamic RoPE')
  const b = new GraphBuilder({ name: c.modelType, opset: TRANSFORMER_OPSET })
  const io = c.ioType ?? 'float32'
  const total = 'past_sequence_length + sequence_length'
  const ids = b.input('input_ids', 'int64', ['batch_size', 'sequence_length'])
  const attentionMask = b.input('attention_mask', 'int64', ['batch_size', total])
  let positions: string
  if (c.positionIds !== false && c.gqa !== true) positions = b.input('position_ids', 'int64', ['batch_size', 'sequence_length'])
  else {
    // The count of real tokens before each position: left padding and masked gaps shift nothing.
    const counted = b.op('Sub', [b.op('CumSum', [attentionMask, b.scalar(1, 'int64')]), b.scalar(1, 'int64')])
    const start = b.op('Unsqueeze', [b.op('Neg', [sequenceLength(b, ids)]), b.ints([0])])
    positions = b.op('Slice', [counted, start, b.ints([Number.MAX_SAFE_INTEGER]), b.ints([1])])
  }
  const pastShape = ['batch_size', c.kvHeads, 'past_sequence_length', c.headDim]
  const past = Array.from({ length: c.layers }, (_, i) => ({
    key: b.input(`past_key_values.${i}.key`, io, pastShape),
    value: b.input(`past_key_values.${i}.value`, io, pastShape)
  }))
  b.parameters(llamaParameterShapes(c), weights)

  const totalLength = sequenceLength(b, attentionMask)
  const one = b.scalar(1, 'int64')
  const keyPos = b.op('Reshape', [b.op('Range', [b.scalar(0, 'int64'), totalLength, one]), b.ints([1, -1])])
  const queryPos = b.op('Reshape', [b.op('Range', [b.op('Sub', [totalLength, sequenceLength(b, ids)]), totalLength, one]), b.ints([-1, 1])])
  const causal = b.op('LessOrEqual', [keyPos, queryPos])
  const padding = paddingMask(b, attentionMask)
  const globalMask = b.op('Add', [maskFromAllowed(b, causal), padding])
  const window = c.slidingWindow
  const slidingMask = window == null
    ? globalMask
    : b.op('Add', [maskFromAllowed(b, b.op('And', [causal, b.op('Greater', [keyPos, b.op('Sub', [queryPos, b.scalar(window, 'int64')])])])), padding])

  const globalRope = rope(b, c, positions, c.ropeTheta, c.ropeScaling)
  const localRope = c.localRopeTheta != null ? rope(b, c, positions, c.localRopeTheta) : globalRope

  let gqa: GqaInputs | undefined
  if (c.gqa === true) {
    const int32 = (t: string): string => b.op('Cast', [t], { to: attr.int(6) })
    const angles = (f: (x: number) => number): string => {
      const inv = ropeInverseFrequencies(c.headDim, c.ropeTheta, c.ropeScaling)
      return b.constant({ type: 'float32', dims: [c.maxPositions, inv.length], data: Float32Array.from({ length: c.maxPositions * inv.length }, (_, i) => f(Math.floor(i / inv.length) * inv[i % inv.length])) })
    }
    gqa = {
      seqlens: int32(b.op('Sub', [b.op('ReduceSum', [attentionMask, b.ints([1])], { keepdims: attr.int(0) }), one])),
      total: int32(totalLength),
      cos: angles(Math.cos),
      sin: angles(Math.sin)
    }
  }

  let x = b.op('Gather', [EMBED, ids])
  if (isGemma(c)) x = b.op('Mul', [x, b.scalar(Math.sqrt(c.hiddenSize))])
  const presents: Array<{ key: string, value: string }> = []
  for (let i = 0; i < c.layers; i++) {
    const p = layer(i)
    const sliding = slidingLayer(c, i)
    const a = attention(b, c, rmsNorm(b, c, x, `${p}.input_layernorm.weight`), { index: i, mask: sliding ? slidingMask : globalMask, rope: sliding ? localRope : globalRope, past: past[i], gqa })
    presents.push({ key: a.key, value: a.value })
    if (isGemma(c)) {
      x = b.op('Add', [x, rmsNorm(b, c, a.output, `${p}.post_attention_layernorm.weight`)])
      x = b.op('Add', [x, rmsNorm(b, c, mlp(b, c, rmsNorm(b, c, x, `${p}.pre_feedforward_layernorm.weight`), i), `${p}.post_feedforward_layernorm.weight`)])
    } else {
      x = b.op('Add', [x, a.output])
      x = b.op('Add', [x, mlp(b, c, rmsNorm(b, c, x, `${p}.post_attention_layernorm.weight`), i)])
    }
  }
  x = rmsNorm(b, c, x, 'model.norm.weight')
  let logits = b.op('MatMul', [x, c.tieEmbeddings ? b.op('Transpose', [EMBED], { perm: attr.ints([1, 0]) }) : 'lm_head.weight'])
  if (c.finalLogitSoftcapping != null) logits = softcap(b, logits, c.finalLogitSoftcapping)
  if (io !== 'float32') logits = b.op('Cast', [logits], { to: attr.int(CAST_TO[io]) })
  b.output(logits, 'logits', io, ['batch_size', 'sequence_length', c.vocabSize])
  const presentShape = ['batch_size', c.kvHeads, total, c.headDim]
  presents.forEach(({ key, value }, i) => {
    b.output(key, `present.${i}.key`, io, presentShape)
    b.output(value, `present.${i}.value`, io, presentShape)
  })
  const model = b.build()
  // The builder writes ops of the default domain.
  for (const node of model.graph.nodes) if (node.op === 'GroupQueryAttention') node.domain = 'com.microsoft'
  return model
}

const ARCHITECTURES: Record<LlamaFamily, string> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  qwen3: 'Qwen3ForCausalLM',
  phi3: 'Phi3ForCausalLM',
  gemma2: 'Gemma2ForCausalLM',
  gemma3_text: 'Gemma3ForCausalLM'
}

/** config.json with the fields transformers and optimum read for the family (NormalizedTextConfig's names). */
export function llamaHfConfig (c: LlamaConfig, tokens: { bosTokenId: number, eosTokenId: number | number[], padTokenId?: number }): Record<string, unknown> {
  const config: Record<string, unknown> = {
    model_type: c.modelType,
    architectures: [ARCHITECTURES[c.modelType]],
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.layers,
    num_attention_heads: c.heads,
    num_key_value_heads: c.kvHeads,
    head_dim: c.headDim,
    hidden_act: isGemma(c) ? 'gelu_pytorch_tanh' : 'silu',
    max_position_embeddings: c.maxPositions,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: c.ropeScaling ?? null,
    tie_word_embeddings: c.tieEmbeddings,
    attention_bias: c.modelType === 'qwen2',
    attention_dropout: 0,
    initializer_range: 0.02,
    bos_token_id: tokens.bosTokenId,
    eos_token_id: tokens.eosTokenId,
    use_cache: true,
    torch_dtype: 'float32'
  }
  if (tokens.padTokenId != null) config.pad_token_id = tokens.padTokenId
  if (c.modelType === 'mistral' || c.modelType === 'qwen2' || isGemma(c)) config.sliding_window = c.slidingWindow ?? null
  if (c.modelType === 'qwen2') config.use_sliding_window = false
  if (c.modelType === 'gemma2') {
    config.attn_logit_softcapping = c.attnLogitSoftcapping ?? null
    config.final_logit_softcapping = c.finalLogitSoftcapping ?? null
  }
  if (isGemma(c)) config.query_pre_attn_scalar = c.queryPreAttnScalar ?? c.headDim
  if (c.modelType === 'gemma3_text') {
    config.rope_local_base_freq = c.localRopeTheta ?? c.ropeTheta
    config.sliding_window_pattern = c.slidingWindowPattern ?? 6
    config.layer_types = Array.from({ length: c.layers }, (_, i) => slidingLayer(c, i) ? 'sliding_attention' : 'full_attention')
  }
  return config
}
