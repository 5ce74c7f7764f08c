/**
 * Converts the project's own models in the Hugging Face ONNX layout into GGUF
 * files llama.cpp runs: a GPT-2-style decoder (the default decoder) as its
 * `gpt2` architecture, the Llama-like ones (packages/onnx's Llama builder:
 * Llama, SmolLM, Mistral, Qwen2, Qwen3, Phi-3, Gemma 2 and 3) as its `llama`,
 * `qwen2`, `qwen3`, `phi3`, `gemma2` and `gemma3`, and a BERT-style encoder
 * (the default embedding model) as its `bert`; the weights under llama.cpp's
 * tensor names, the tokenizer and the chat template.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { readModel, readWeights, ropeInverseFrequencies } from '@node-daemon/onnx'
import type { RopeScaling } from '@node-daemon/onnx'
import { F32, POOLING_TYPES, fileTypeCode } from './format.ts'
import { GgufConversionError } from './errors.ts'
import { ggufTokenizer } from './tokenizer.ts'
import { writeGguf } from './writer.ts'
import type { TensorToWrite, TypedValue } from './writer.ts'

const readJson = async (dir: string, name: string): Promise<Record<string, any>> => JSON.parse(await readFile(join(dir, name), 'utf8').catch(() => '{}'))

/** A [rows, cols] row-major matrix as [cols, rows]: Hugging Face's GPT-2 stores Conv1D weights as [in, out], llama.cpp wants [out, in]. */
function transposed (m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(m.length)
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = m[r * cols + c]
  return out
}

const bytes = (a: Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength)

/** Columns [from, to) of a [rows, cols] row-major matrix, as ggml's [rows, to - from]: a part of a fused projection, transposed. */
function columns (m: Float32Array, rows: number, cols: number, from: number, to: number): Float32Array {
  const out = new Float32Array(rows * (to - from))
  for (let r = 0; r < rows; r++) for (let c = from; c < to; c++) out[(c - from) * rows + r] = m[r * cols + c]
  return out
}

/** The tensors of a file being written, F32 as the sources' are. */
function tensorList (): { tensors: TensorToWrite[], add: (name: string, dims: number[], data: Float32Array) => void } {
  const tensors: TensorToWrite[] = []
  return { tensors, add: (name, dims, data) => { tensors.push({ name, dims, type: F32, data: bytes(data) }) } }
}

const first = (v: unknown): number | undefined => typeof v === 'number' ? v : Array.isArray(v) && typeof v[0] === 'number' ? v[0] : undefined

type Weights = (names: string[]) => Promise<Record<string, Float32Array>>

/** A decoder's architecture in llama.cpp: its name, its hyperparameters' metadata and its tensors, from config.json and the graph's weights. */
type DecoderBody = (config: Record<string, any>, weights: Weights) => Promise<{ architecture: string, metadata: Record<string, TypedValue>, tensors: TensorToWrite[] }>

const u32 = (value: number): TypedValue => ({ type: 'uint32', value })
const f32 = (value: number): TypedValue => ({ type: 'float32', value })

/** GPT-2 (the project's default decoder), as llama.cpp's `gpt2`. */
const gpt2: DecoderBody = async (config, weightsOf) => {
  const e: number = config.n_embd
  const layers: number = config.n_layer
  const vocab: number = config.vocab_size
  const positions: number = config.n_positions
  const inner: number = config.n_inner ?? 4 * e

  const h = (i: number, name: string): string => `transformer.h.${i}.${name}`
  const names = ['transformer.wte.weight', 'transformer.wpe.weight', 'transformer.ln_f.weight', 'transformer.ln_f.bias']
  for (let i = 0; i < layers; i++) {
    for (const p of ['ln_1', 'attn.c_attn', 'attn.c_proj', 'ln_2', 'mlp.c_fc', 'mlp.c_proj']) names.push(h(i, `${p}.weight`), h(i, `${p}.bias`))
  }
  const weights = await weightsOf(names)

  const { tensors, add } = tensorList()
  // ggml lists dimensions contiguous first: a [rows, cols] matrix is [cols, rows].
  add('token_embd.weight', [e, vocab], weights['transformer.wte.weight'])
  add('position_embd.weight', [e, positions], weights['transformer.wpe.weight'])
  for (let i = 0; i < layers; i++) {
    const matrix = (to: string, from: string, inDim: number, outDim: number): void => {
      add(`blk.${i}.${to}.weight`, [inDim, outDim], transposed(weights[h(i, `${from}.weight`)], inDim, outDim))
      add(`blk.${i}.${to}.bias`, [outDim], weights[h(i, `${from}.bias`)])
    }
    add(`blk.${i}.attn_norm.weight`, [e], weights[h(i, 'ln_1.weight')])
    add(`blk.${i}.attn_norm.bias`, [e], weights[h(i, 'ln_1.bias')])
    matrix('attn_qkv', 'attn.c_attn', e, 3 * e)
    matrix('attn_output', 'attn.c_proj', e, e)
    add(`blk.${i}.ffn_norm.weight`, [e], weights[h(i, 'ln_2.weight')])
    add(`blk.${i}.ffn_norm.bias`, [e], weights[h(i, 'ln_2.bias')])
    matrix('ffn_up', 'mlp.c_fc', e, inner)
    matrix('ffn_down', 'mlp.c_proj', inner, e)
  }
  add('output_norm.weight', [e], weights['transformer.ln_f.weight'])
  add('output_norm.bias', [e], weights['transformer.ln_f.bias'])
  // The head is tied to the embedding; llama.cpp's gpt2 reads it as a tensor of its own.
  add('output.weight', [e, vocab], weights['transformer.wte.weight'])
  return {
    architecture: 'gpt2',
    metadata: {
      'gpt2.context_length': u32(positions),
      'gpt2.embedding_length': u32(e),
      'gpt2.feed_forward_length': u32(inner),
      'gpt2.block_count': u32(layers),
      'gpt2.attention.head_count': u32(config.n_head),
      'gpt2.attention.layer_norm_epsilon': f32(config.layer_norm_epsilon ?? 1e-5)
    },
    tensors
  }
}

/**
 * The rows of a [heads × d, in] projection (ggml's [in, heads × d]) with each
 * head's two halves interleaved: transformers rotates the halves of a head
 * (rotate_half), llama.cpp's `llama` rotates adjacent pairs, so
 * convert_hf_to_gguf.py permutes q and k this way.
 */
function interleavedHeads (m: Float32Array, heads: number, d: number, cols: number): Float32Array {
  const out = new Float32Array(m.length)
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < d / 2; j++) {
      for (const [half, to] of [[0, 2 * j], [1, 2 * j + 1]]) {
        const from = (h * d + half * d / 2 + j) * cols
        out.set(m.subarray(from, from + cols), (h * d + to) * cols)
      }
    }
  }
  return out
}

/**
 * How each Llama-like model_type (packages/onnx's Llama builder) maps to
 * llama.cpp: its architecture there, and the traits its graph reads from
 * the file. Only `llama` rotates adjacent pairs (rope type NORM); the others
 * rotate halves as transformers does (NEOX), so their q and k stay as they are.
 */
const LLAMA_LIKE: Record<string, { architecture: string, interleaved?: boolean, biases?: boolean, qkNorm?: boolean, fused?: boolean, gemma?: boolean, window?: boolean }> = {
  llama: { architecture: 'llama', interleaved: true },
  // llama.cpp writes Mistral 7B as llama, whose graph has no sliding window.
  mistral: { architecture: 'llama', interleaved: true },
  qwen2: { architecture: 'qwen2', biases: true },
  qwen3: { architecture: 'qwen3', qkNorm: true },
  phi3: { architecture: 'phi3', fused: true },
  gemma2: { architecture: 'gemma2', gemma: true, window: true },
  gemma3_text: { architecture: 'gemma3', gemma: true, qkNorm: true, window: true }
}

/**
 * llama.cpp's RoPE frequency factors of Llama 3's scaling (its rope_freqs
 * tensor), each base frequency divided by the scaled one: llama.cpp divides
 * the angle by them, as transformers computes the scaled frequencies.
 */
function ropeFactors (d: number, theta: number, scaling: RopeScaling): Float32Array {
  const base = ropeInverseFrequencies(d, theta)
  const scaled = ropeInverseFrequencies(d, theta, scaling)
  return Float32Array.from(base, (f, i) => f / scaled[i])
}

/**
 * The Llama-like decoders (transformers' classes as optimum exports them), as
 * llama.cpp's `llama` (Llama 1–3, SmolLM, Mistral), `qwen2`, `qwen3`, `phi3`,
 * `gemma2` and `gemma3`. A trait llama.cpp's graph would compute otherwise
 * (a sliding window its architecture lacks, an attention scale it derives,
 * a RoPE scaling it does not know) is refused rather than written wrong.
 */
const llamaLike: DecoderBody = async (config, weightsOf) => {
  const traits = LLAMA_LIKE[config.model_type]
  const { architecture: arch } = traits
  const refuse = (why: string): never => { throw new GgufConversionError(`${config.model_type as string} does not convert to llama.cpp's ${arch}: ${why}`) }
  const e: number = config.hidden_size
  const layers: number = config.num_hidden_layers
  const vocab: number = config.vocab_size
  const inner: number = config.intermediate_size
  const heads: number = config.num_attention_heads
  const kvHeads: number = config.num_key_value_heads ?? heads
  const d: number = config.head_dim ?? e / heads
  const context: number = config.max_position_embeddings
  const theta: number = config.rope_theta ?? 10_000
  const tied = config.tie_word_embeddings === true
  const scaling = config.rope_scaling as RopeScaling | null | undefined
  const scalingType = scaling?.rope_type ?? (scaling as { type?: string } | null | undefined)?.type
  // Dynamic NTK scaling changes the frequencies only past max_position_embeddings, which the file gives as its context.
  if (scalingType != null && scalingType !== 'linear' && scalingType !== 'dynamic' && !(scalingType === 'llama3' && arch === 'llama')) {
    refuse(`RoPE scaling ${JSON.stringify(scalingType)} (llama.cpp takes linear, and llama3 on llama)`)
  }
  const window: number | null = config.sliding_window ?? null
  const windowed = window != null && window < context && (config.model_type !== 'qwen2' || config.use_sliding_window === true)
  if (windowed && traits.window !== true) refuse(`a sliding window of ${window} positions, which llama.cpp's ${arch} does not have: it would attend to all ${context}`)
  if ((arch === 'qwen2' || arch === 'phi3') && heads * d !== e) refuse(`head_dim × heads (${heads * d}) is not hidden_size (${e}), as its attention output must be`)
  if (traits.gemma === true) {
    // llama.cpp scales queries by head_dim^-½, or (hidden / heads)^-½ on the 27B models (46 layers of Gemma 2, 62 of Gemma 3).
    const scalar = layers === (arch === 'gemma2' ? 46 : 62) ? e / heads : d
    if ((config.query_pre_attn_scalar ?? d) !== scalar) refuse(`query_pre_attn_scalar ${config.query_pre_attn_scalar as number}, where llama.cpp scales by ${scalar}^-½`)
    if (arch === 'gemma2' && !tied) refuse('an untied head: llama.cpp\'s gemma2 reads the embedding')
    // llama.cpp's gemma2 always caps, at 50 and 30 unless told.
    if (arch === 'gemma2' && (config.attn_logit_softcapping == null || config.final_logit_softcapping == null)) refuse('no soft-capping, which llama.cpp\'s gemma2 always applies')
    if (arch === 'gemma3' && config.attn_logit_softcapping != null) refuse('attention soft-capping, which llama.cpp\'s gemma3 does not apply')
  }
  // Which layers slide, as llama.cpp derives them from a pattern n: layer i slides when i mod n < n − 1.
  const pattern: number = arch === 'gemma2' ? 2 : config.sliding_window_pattern ?? 6
  if (windowed && Array.isArray(config.layer_types) && config.layer_types.some((t: string, i: number) => (t === 'sliding_attention') !== (i % pattern < pattern - 1))) {
    refuse('its layer_types follow no sliding_window_pattern')
  }

  const l = (i: number, name: string): string => `model.layers.${i}.${name}`
  const names = ['model.embed_tokens.weight', 'model.norm.weight', ...(tied ? [] : ['lm_head.weight'])]
  for (let i = 0; i < layers; i++) {
    const parts = ['input_layernorm', 'self_attn.o_proj', 'post_attention_layernorm', 'mlp.down_proj']
    parts.push(...traits.fused === true ? ['self_attn.qkv_proj', 'mlp.gate_up_proj'] : ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'mlp.gate_proj', 'mlp.up_proj'])
    if (traits.qkNorm === true) parts.push('self_attn.q_norm', 'self_attn.k_norm')
    if (traits.gemma === true) parts.push('pre_feedforward_layernorm', 'post_feedforward_layernorm')
    names.push(...parts.map(p => l(i, `${p}.weight`)))
    if (traits.biases === true) names.push(...['q', 'k', 'v'].map(p => l(i, `self_attn.${p}_proj.bias`)))
  }
  const weights = await weightsOf(names)
  // Gemma's RMSNorm multiplies by 1 + w: llama.cpp's by the weight, so convert_hf_to_gguf.py stores 1 + w.
  if (traits.gemma === true) for (const [name, w] of Object.entries(weights)) if (name.endsWith('norm.weight')) for (let i = 0; i < w.length; i++) w[i] += 1

  const { tensors, add } = tensorList()
  add('token_embd.weight', [e, vocab], weights['model.embed_tokens.weight'])
  if (scalingType === 'llama3') add('rope_freqs.weight', [d / 2], ropeFactors(d, theta, scaling as RopeScaling))
  for (let i = 0; i < layers; i++) {
    // The graph's MatMul weights are [in, out]; ggml's [in, out] is [out][in] in memory.
    const matrix = (to: string, from: string, inDim: number, outDim: number, rotary?: number): void => {
      const m = transposed(weights[l(i, `${from}.weight`)], inDim, outDim)
      add(`blk.${i}.${to}.weight`, [inDim, outDim], rotary == null || traits.interleaved !== true ? m : interleavedHeads(m, rotary, d, inDim))
    }
    const norm = (to: string, from: string, n = e): void => { add(`blk.${i}.${to}.weight`, [n], weights[l(i, `${from}.weight`)]) }
    norm('attn_norm', 'input_layernorm')
    if (traits.fused === true) matrix('attn_qkv', 'self_attn.qkv_proj', e, (heads + 2 * kvHeads) * d)
    else {
      matrix('attn_q', 'self_attn.q_proj', e, heads * d, heads)
      matrix('attn_k', 'self_attn.k_proj', e, kvHeads * d, kvHeads)
      matrix('attn_v', 'self_attn.v_proj', e, kvHeads * d)
    }
    if (traits.biases === true) for (const [p, n] of [['q', heads], ['k', kvHeads], ['v', kvHeads]] as const) add(`blk.${i}.attn_${p}.bias`, [n * d], weights[l(i, `self_attn.${p}_proj.bias`)])
    if (traits.qkNorm === true) {
      norm('attn_q_norm', 'self_attn.q_norm', d)
      norm('attn_k_norm', 'self_attn.k_norm', d)
    }
    matrix('attn_output', 'self_attn.o_proj', heads * d, e)
    if (traits.gemma === true) {
      norm('post_attention_norm', 'post_attention_layernorm')
      norm('ffn_norm', 'pre_feedforward_layernorm')
      norm('post_ffw_norm', 'post_feedforward_layernorm')
    } else norm('ffn_norm', 'post_attention_layernorm')
    // Phi-3's gate_up_proj is gate then up, as llama.cpp's fused ffn_up of twice the width splits it.
    if (traits.fused === true) matrix('ffn_up', 'mlp.gate_up_proj', e, 2 * inner)
    else {
      matrix('ffn_gate', 'mlp.gate_proj', e, inner)
      matrix('ffn_up', 'mlp.up_proj', e, inner)
    }
    matrix('ffn_down', 'mlp.down_proj', inner, e)
  }
  add('output_norm.weight', [e], weights['model.norm.weight'])
  // A tied head has no tensor of its own: llama.cpp then reads the embedding.
  if (!tied) add('output.weight', [e, vocab], transposed(weights['lm_head.weight'], e, vocab))

  const k = (key: string): string => `${arch}.${key}`
  const metadata: Record<string, TypedValue> = {
    [k('context_length')]: u32(context),
    [k('embedding_length')]: u32(e),
    [k('feed_forward_length')]: u32(inner),
    [k('block_count')]: u32(layers),
    [k('attention.head_count')]: u32(heads),
    [k('attention.head_count_kv')]: u32(kvHeads),
    [k('attention.key_length')]: u32(d),
    [k('attention.value_length')]: u32(d),
    [k('attention.layer_norm_rms_epsilon')]: f32(config.rms_norm_eps ?? 1e-6),
    [k('rope.dimension_count')]: u32(d),
    [k('rope.freq_base')]: f32(theta)
  }
  if (scalingType === 'linear') {
    metadata[k('rope.scaling.type')] = { type: 'string', value: 'linear' }
    metadata[k('rope.scaling.factor')] = f32(scaling?.factor ?? 1)
  }
  if (windowed) {
    metadata[k('attention.sliding_window')] = u32(window)
    metadata[k('attention.sliding_window_pattern')] = u32(pattern)
    // Gemma 3's sliding layers rotate on a base of their own, unscaled.
    if (config.rope_local_base_freq != null) metadata[k('rope.freq_base_swa')] = f32(config.rope_local_base_freq)
  }
  if (config.attn_logit_softcapping != null) metadata[k('attn_logit_softcapping')] = f32(config.attn_logit_softcapping)
  if (config.final_logit_softcapping != null) metadata[k('final_logit_softcapping')] = f32(config.final_logit_softcapping)
  return { architecture: arch, metadata, tensors }
}

const DECODERS: Record<string, DecoderBody> = { gpt2, ...Object.fromEntries(Object.keys(LLAMA_LIKE).map(type => [type, llamaLike])) }

/** Writes `out`, the GGUF form of the decoder in `dir` (GPT-2 or a Llama-like one); the weights stay F32, as the source's are. */
export async function convertDecoder (dir: string, out: string, options: { name?: string } = {}): Promise<void> {
  const [config, generation, tokenizerJson, tokenizerConfig] = await Promise.all(['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json'].map(async n => readJson(dir, n)))
  const body = DECODERS[config.model_type]
  if (body == null) throw new GgufConversionError(`only ${Object.keys(DECODERS).join(', ')} decoders convert to GGUF, not ${JSON.stringify(config.model_type ?? null)}`)
  const { architecture, metadata: shape, tensors } = await body(config, async names => {
    const model = readModel(await readFile(join(dir, 'model.onnx')))
    try {
      return readWeights(model, names)
    } catch (err: any) {
      // A quantized or float16 export keeps its weights under other names or types.
      if (err.name === 'ModelFormatError') throw new GgufConversionError(`only float32 weights convert to GGUF: ${err.message as string}`)
      throw err
    }
  })
  const eosIds: number[] = [generation.eos_token_id, config.eos_token_id].flatMap(v => typeof v === 'number' ? [v] : Array.isArray(v) ? v : [])
  const eos = first(generation.eos_token_id) ?? first(config.eos_token_id)
  const metadata: Record<string, TypedValue> = {
    'general.architecture': { type: 'string', value: architecture },
    'general.name': { type: 'string', value: options.name ?? architecture },
    'general.file_type': u32(fileTypeCode('F32')),
    ...shape,
    ...ggufTokenizer(tokenizerJson, config.vocab_size, {
      bos: first(generation.bos_token_id) ?? first(config.bos_token_id),
      eos,
      // A second end-of-sequence id is the end of a chat turn.
      eot: eosIds.find(id => id !== eos)
    }, typeof tokenizerConfig.chat_template === 'string' ? tokenizerConfig.chat_template : undefined, typeof tokenizerConfig.add_bos_token === 'boolean' ? tokenizerConfig.add_bos_token : undefined)
  }
  await writeGguf(out, metadata, tensors)
}

/**
 * Writes `out`, the GGUF form of the BERT-style encoder in `dir` (packages/onnx's
 * buildEncoder: BERT's names, q, k and v fused into one `qkv`), as llama.cpp's
 * `bert` architecture with q, k and v apart. `pooling` is how its embeddings
 * pool the token states, mean unless said. No chat template: it does not chat.
 */
export async function convertEncoder (dir: string, out: string, options: { name?: string, pooling?: 'mean' | 'cls' | 'lasttoken' } = {}): Promise<void> {
  const [config, tokenizerJson] = await Promise.all(['config.json', 'tokenizer.json'].map(async n => readJson(dir, n)))
  if (config.model_type !== 'bert') throw new GgufConversionError(`only bert encoders convert to GGUF as encoders, not ${JSON.stringify(config.model_type ?? null)}`)
  const e: number = config.hidden_size
  const layers: number = config.num_hidden_layers
  const vocab: number = config.vocab_size
  const positions: number = config.max_position_embeddings
  const types: number = config.type_vocab_size ?? 2
  const inner: number = config.intermediate_size ?? 4 * e

  const l = (i: number, name: string): string => `encoder.layer.${i}.${name}`
  const names = ['embeddings.word_embeddings.weight', 'embeddings.position_embeddings.weight', 'embeddings.token_type_embeddings.weight', 'embeddings.LayerNorm.weight', 'embeddings.LayerNorm.bias']
  for (let i = 0; i < layers; i++) {
    for (const p of ['attention.self.qkv', 'attention.output.dense', 'attention.output.LayerNorm', 'intermediate.dense', 'output.dense', 'output.LayerNorm']) names.push(l(i, `${p}.weight`), l(i, `${p}.bias`))
  }
  const weights = readWeights(readModel(await readFile(join(dir, 'model.onnx'))), names)

  const special = (token: string): number | undefined => tokenizerJson.model?.type === 'WordPiece' ? tokenizerJson.model.vocab?.[token] : undefined
  const { tensors, add } = tensorList()
  add('token_embd.weight', [e, vocab], weights['embeddings.word_embeddings.weight'])
  add('position_embd.weight', [e, positions], weights['embeddings.position_embeddings.weight'])
  add('token_types.weight', [e, types], weights['embeddings.token_type_embeddings.weight'])
  add('token_embd_norm.weight', [e], weights['embeddings.LayerNorm.weight'])
  add('token_embd_norm.bias', [e], weights['embeddings.LayerNorm.bias'])
  for (let i = 0; i < layers; i++) {
    const qkv = weights[l(i, 'attention.self.qkv.weight')]
    const qkvBias = weights[l(i, 'attention.self.qkv.bias')]
    for (const [k, part] of ['attn_q', 'attn_k', 'attn_v'].entries()) {
      add(`blk.${i}.${part}.weight`, [e, e], columns(qkv, e, 3 * e, k * e, (k + 1) * e))
      add(`blk.${i}.${part}.bias`, [e], qkvBias.slice(k * e, (k + 1) * e))
    }
    const matrix = (to: string, from: string, inDim: number, outDim: number): void => {
      add(`blk.${i}.${to}.weight`, [inDim, outDim], transposed(weights[l(i, `${from}.weight`)], inDim, outDim))
      add(`blk.${i}.${to}.bias`, [outDim], weights[l(i, `${from}.bias`)])
    }
    const norm = (to: string, from: string): void => {
      add(`blk.${i}.${to}.weight`, [e], weights[l(i, `${from}.weight`)])
      add(`blk.${i}.${to}.bias`, [e], weights[l(i, `${from}.bias`)])
    }
    matrix('attn_output', 'attention.output.dense', e, e)
    norm('attn_output_norm', 'attention.output.LayerNorm')
    matrix('ffn_up', 'intermediate.dense', e, inner)
    matrix('ffn_down', 'output.dense', inner, e)
    norm('layer_output_norm', 'output.LayerNorm')
  }

  const metadata: Record<string, TypedValue> = {
    'general.architecture': { type: 'string', value: 'bert' },
    'general.name': { type: 'string', value: options.name ?? 'bert' },
    'general.file_type': { type: 'uint32', value: fileTypeCode('F32') },
    'bert.context_length': { type: 'uint32', value: positions },
    'bert.embedding_length': { type: 'uint32', value: e },
    'bert.feed_forward_length': { type: 'uint32', value: inner },
    'bert.block_count': { type: 'uint32', value: layers },
    'bert.attention.head_count': { type: 'uint32', value: config.num_attention_heads },
    'bert.attention.layer_norm_epsilon': { type: 'float32', value: config.layer_norm_eps ?? 1e-12 },
    'bert.attention.causal': { type: 'bool', value: false },
    'bert.pooling_type': { type: 'uint32', value: POOLING_TYPES.indexOf(options.pooling ?? 'mean') },
    'tokenizer.ggml.token_type_count': { type: 'uint32', value: types },
    ...ggufTokenizer(tokenizerJson, vocab, {
      // A WordPiece tokenizer's [CLS] begins a text, as llama.cpp's bert takes a bos.
      bos: special('[CLS]') ?? first(config.bos_token_id),
      eos: first(config.eos_token_id),
      padding: special('[PAD]') ?? first(config.pad_token_id),
      separator: special('[SEP]'),
      mask: special('[MASK]')
    })
  }
  await writeGguf(out, metadata, tensors)
}
