/**
 * Converts a GPT-2-style decoder in the Hugging Face ONNX layout (the
 * project's own default decoder) into a GGUF file that llama.cpp runs as its
 * `gpt2` architecture: the weights under llama.cpp's tensor names, the
 * tokenizer and the chat template.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { readModel, readWeights } from '@node-daemon/onnx'
import { F32, fileTypeCode } from './format.ts'
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

/** Writes `out`, the GGUF form of the decoder in `dir`; the weights stay F32, as the source's are. */
export async function convertDecoder (dir: string, out: string, options: { name?: string } = {}): Promise<void> {
  const [config, generation, tokenizerJson, tokenizerConfig] = await Promise.all(['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json'].map(async n => readJson(dir, n)))
  if (config.model_type !== 'gpt2') throw new GgufConversionError(`only gpt2 decoders convert to GGUF, not ${JSON.stringify(config.model_type ?? null)}`)
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
  const weights = readWeights(readModel(await readFile(join(dir, 'model.onnx'))), names)

  const tensors: TensorToWrite[] = []
  const add = (name: string, dims: number[], data: Float32Array): void => { tensors.push({ name, dims, type: F32, data: bytes(data) }) }
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

  const first = (v: unknown): number | undefined => typeof v === 'number' ? v : Array.isArray(v) && typeof v[0] === 'number' ? v[0] : undefined
  const eosIds: number[] = [generation.eos_token_id, config.eos_token_id].flatMap(v => typeof v === 'number' ? [v] : Array.isArray(v) ? v : [])
  const eos = first(generation.eos_token_id) ?? first(config.eos_token_id)
  const metadata: Record<string, TypedValue> = {
    'general.architecture': { type: 'string', value: 'gpt2' },
    'general.name': { type: 'string', value: options.name ?? 'gpt2' },
    'general.file_type': { type: 'uint32', value: fileTypeCode('F32') },
    'gpt2.context_length': { type: 'uint32', value: positions },
    'gpt2.embedding_length': { type: 'uint32', value: e },
    'gpt2.feed_forward_length': { type: 'uint32', value: inner },
    'gpt2.block_count': { type: 'uint32', value: layers },
    'gpt2.attention.head_count': { type: 'uint32', value: config.n_head },
    'gpt2.attention.layer_norm_epsilon': { type: 'float32', value: config.layer_norm_epsilon ?? 1e-5 },
    ...ggufTokenizer(tokenizerJson, vocab, {
      bos: first(generation.bos_token_id) ?? first(config.bos_token_id),
      eos,
      // A second end-of-sequence id is the end of a chat turn.
      eot: eosIds.find(id => id !== eos)
    }, typeof tokenizerConfig.chat_template === 'string' ? tokenizerConfig.chat_template : undefined)
  }
  await writeGguf(out, metadata, tensors)
}
