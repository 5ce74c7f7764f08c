/**
 * Tiny random-weight decoders of the families people download, built as
 * optimum exports them (packages/onnx's Llama builder), each with a
 * tokenizer of its family's kind and its real chat template: what the
 * runtime must run, where no real weights can be fetched.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { readCorpus, trainBpe, trainSentencePiece } from '@node-daemon/models'
import { buildLlamaDecoder, initLlamaWeights, llamaHfConfig, withFloat16Weights, withMatMulNBits, writeModel } from '@node-daemon/onnx'
import type { LlamaConfig, Model } from '@node-daemon/onnx'
import { withIdentities } from './tiny-models.ts'
import { GEMMA_2, LLAMA_3, MISTRAL, PHI_3, QWEN_2_5, SMOLLM } from './chat-templates.ts'

type Tokenizer = { tokenizerJson: Record<string, any>, tokenizerConfig: Record<string, any> }

export interface Family {
  name: string
  /** The real export this one mirrors. */
  mirrors: string
  config: Omit<LlamaConfig, 'vocabSize'>
  tokenizer: (text: string) => Tokenizer
  /** generation_config.json's eos_token_id, by token. */
  eos: string[]
  bos?: string
  /** The random weights' standard deviation, where the default leaves greedy decoding on one token. */
  std?: number
  /** A change to the built graph: a quantization, or Identities after the presents, which the cache rewrite does not take. */
  transform?: (model: Model) => Model
  /** ModelInfo's quantization, when not F32. */
  quantization?: string
}

const base = { hiddenSize: 64, intermediateSize: 128, layers: 2, heads: 4, kvHeads: 2, headDim: 16, maxPositions: 512, rmsNormEps: 1e-6, ropeTheta: 10_000 }

/** Llama 3's specials on the project's byte-level BPE, with Llama 3's post-processor adding <|begin_of_text|>. */
function llama3Tokenizer (text: string): Tokenizer {
  const { tokenizerJson, tokenizerConfig } = trainBpe(text, { vocabSize: 420, specialTokens: ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>', '<|eom_id|>'] })
  const bos = '<|begin_of_text|>'
  const bosId = tokenizerJson.model.vocab[bos]
  return {
    tokenizerJson: {
      ...tokenizerJson,
      post_processor: {
        type: 'Sequence',
        processors: [
          { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
          {
            type: 'TemplateProcessing',
            single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
            pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
            special_tokens: { [bos]: { id: bos, ids: [bosId], tokens: [bos] } }
          }
        ]
      }
    },
    tokenizerConfig: { ...tokenizerConfig, add_bos_token: undefined, bos_token: bos, eos_token: '<|eot_id|>', pad_token: undefined, chat_template: LLAMA_3 }
  }
}

function qwenTokenizer (text: string): Tokenizer {
  const { tokenizerJson, tokenizerConfig } = trainBpe(text, { vocabSize: 400, specialTokens: ['<tool_call>', '</tool_call>'] })
  return { tokenizerJson, tokenizerConfig: { ...tokenizerConfig, bos_token: null, eos_token: '<|im_end|>', pad_token: '<|endoftext|>', chat_template: QWEN_2_5 } }
}

const LLAMA_2_SPECIALS = ['<unk>', '<s>', '</s>']
const sentencePiece = (specials: string[], extra: { bos: string, eos: string, prependSpace: boolean, addBos: boolean, chatTemplate?: string }) =>
  (text: string): Tokenizer => trainSentencePiece(text, { vocabSize: 480, specials, unk: specials.includes('<unk>') ? '<unk>' : specials[0], ...extra })
const GEMMA_SPECIALS = ['<pad>', '<eos>', '<bos>', '<unk>', '<start_of_turn>', '<end_of_turn>']

/** Each tokenizer kind with its end-of-sequence and bos tokens, as the families' generation_config.json name them. */
const LLAMA_3_TOKENS = { tokenizer: llama3Tokenizer, eos: ['<|end_of_text|>', '<|eom_id|>', '<|eot_id|>'], bos: '<|begin_of_text|>' }
const QWEN_TOKENS = { tokenizer: qwenTokenizer, eos: ['<|im_end|>', '<|endoftext|>'] }
const PHI_3_TOKENS = { tokenizer: sentencePiece([...LLAMA_2_SPECIALS, '<|endoftext|>', '<|assistant|>', '<|end|>', '<|system|>', '<|user|>'], { bos: '<s>', eos: '<|endoftext|>', prependSpace: true, addBos: false, chatTemplate: PHI_3 }), eos: ['<|endoftext|>', '<|assistant|>', '<|end|>'] }
const GEMMA_TOKENS = {
  tokenizer: sentencePiece(GEMMA_SPECIALS, { bos: '<bos>', eos: '<eos>', prependSpace: false, addBos: true, chatTemplate: GEMMA_2 }),
  eos: ['<eos>', '<end_of_turn>'],
  bos: '<bos>',
  // Sandwich norms hold each block's output near unit size, and the embedding, √hidden times larger, would drown them.
  std: 0.05
}

export const FAMILIES: Family[] = [
  {
    name: 'llama3',
    mirrors: 'onnx-community/Llama-3.2-1B-Instruct (llama3 RoPE scaling, GQA, tied embeddings)',
    config: { ...base, modelType: 'llama', ropeTheta: 500_000, ropeScaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 }, tieEmbeddings: true, rmsNormEps: 1e-5 },
    ...LLAMA_3_TOKENS
  },
  {
    name: 'llama3-gqa',
    mirrors: 'an onnxruntime-genai build of Llama 3.2 (com.microsoft GroupQueryAttention, which rotates q and k itself and reads each row from its first position)',
    config: { ...base, modelType: 'llama', ropeTheta: 500_000, ropeScaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 }, tieEmbeddings: true, rmsNormEps: 1e-5, gqa: true },
    ...LLAMA_3_TOKENS
  },
  {
    name: 'llama2',
    mirrors: 'optimum export of meta-llama/Llama-2-7b-hf (multi-head, untied), with linear RoPE scaling as its long-context fine-tunes',
    config: { ...base, modelType: 'llama', kvHeads: 4, ropeScaling: { rope_type: 'linear', factor: 2 }, tieEmbeddings: false, rmsNormEps: 1e-5 },
    tokenizer: sentencePiece(LLAMA_2_SPECIALS, { bos: '<s>', eos: '</s>', prependSpace: true, addBos: true }),
    eos: ['</s>'],
    bos: '<s>'
  },
  {
    name: 'mistral',
    mirrors: 'optimum export of mistralai/Mistral-7B-Instruct-v0.1 (sliding window, GQA)',
    config: { ...base, modelType: 'mistral', slidingWindow: 12, tieEmbeddings: false, rmsNormEps: 1e-5 },
    tokenizer: sentencePiece(LLAMA_2_SPECIALS, { bos: '<s>', eos: '</s>', prependSpace: true, addBos: true, chatTemplate: MISTRAL }),
    eos: ['</s>'],
    bos: '<s>'
  },
  {
    name: 'qwen2',
    mirrors: 'onnx-community/Qwen2.5-0.5B-Instruct (q/k/v biases, GQA, tied)',
    config: { ...base, modelType: 'qwen2', ropeTheta: 1_000_000, tieEmbeddings: true },
    ...QWEN_TOKENS,
    std: 0.2
  },
  {
    name: 'qwen3',
    mirrors: 'onnx-community/Qwen3-0.6B-ONNX (q/k RMSNorm, head_dim apart from hidden/heads), with the Qwen2.5 template',
    config: { ...base, modelType: 'qwen3', hiddenSize: 48, ropeTheta: 1_000_000, tieEmbeddings: true },
    ...QWEN_TOKENS
  },
  {
    name: 'phi3',
    mirrors: 'microsoft/Phi-3-mini-4k-instruct-onnx (fused qkv_proj and gate_up_proj, untied)',
    config: { ...base, modelType: 'phi3', kvHeads: 4, tieEmbeddings: false, rmsNormEps: 1e-5 },
    ...PHI_3_TOKENS
  },
  {
    name: 'gemma2',
    mirrors: 'onnx-community/gemma-2-2b-it (soft-capping, sandwich norms, alternating sliding layers)',
    config: { ...base, modelType: 'gemma2', slidingWindow: 8, attnLogitSoftcapping: 50, finalLogitSoftcapping: 30, queryPreAttnScalar: 16, tieEmbeddings: true },
    ...GEMMA_TOKENS
  },
  {
    name: 'gemma3',
    mirrors: 'onnx-community/gemma-3-1b-it-ONNX (q/k norms, local RoPE base, one global layer in `sliding_window_pattern`), with the Gemma 2 template',
    config: { ...base, modelType: 'gemma3_text', slidingWindow: 8, slidingWindowPattern: 2, localRopeTheta: 10_000, ropeTheta: 1_000_000, ropeScaling: { rope_type: 'linear', factor: 8 }, queryPreAttnScalar: 16, tieEmbeddings: true },
    ...GEMMA_TOKENS,
    std: 0.08
  },
  {
    name: 'smollm',
    mirrors: 'HuggingFaceTB/SmolLM-135M-Instruct (Llama with tied embeddings, ChatML)',
    config: { ...base, modelType: 'llama', tieEmbeddings: true, rmsNormEps: 1e-5 },
    tokenizer: text => { const t = trainBpe(text, { vocabSize: 400 }); return { ...t, tokenizerConfig: { ...t.tokenizerConfig, eos_token: '<|im_end|>', chat_template: SMOLLM } } },
    eos: ['<|im_end|>']
  },
  {
    name: 'no-position-ids',
    mirrors: 'a Llama export without a position_ids input, positions counted along the attention mask; dynamic RoPE scaling',
    config: { ...base, modelType: 'llama', positionIds: false, ropeScaling: { rope_type: 'dynamic', factor: 2 }, tieEmbeddings: false },
    tokenizer: llama3Tokenizer,
    eos: ['<|eot_id|>'],
    bos: '<|begin_of_text|>'
  },
  {
    name: 'llama3-fp16-cache',
    mirrors: 'the float16 inputs and outputs (KV cache, logits) of onnx-community model_fp16.onnx / model_q4f16.onnx exports, on Llama 3.2',
    config: { ...base, modelType: 'llama', ropeTheta: 500_000, tieEmbeddings: true, ioType: 'float16' },
    ...LLAMA_3_TOKENS
  },
  {
    name: 'llama3-fp16-cache-unrewritten',
    mirrors: 'the same float16 export where the cache rewrite does not apply, so that each step returns the whole present',
    config: { ...base, modelType: 'llama', ropeTheta: 500_000, tieEmbeddings: true, ioType: 'float16' },
    ...LLAMA_3_TOKENS,
    transform: withIdentities
  },
  {
    name: 'llama3-q4',
    mirrors: 'onnx-community model_q4.onnx exports: MatMulNBits with 4-bit blocks of 32 for every projection and an untied head',
    config: { ...base, modelType: 'llama', ropeTheta: 500_000, tieEmbeddings: false },
    ...LLAMA_3_TOKENS,
    transform: model => withMatMulNBits(model, 32),
    quantization: 'Q4_0'
  },
  {
    name: 'qwen2-q4f16',
    mirrors: 'onnx-community model_q4f16.onnx exports: MatMulNBits with blocks of 128, float16 cache and logits',
    config: { ...base, modelType: 'qwen2', ropeTheta: 1_000_000, tieEmbeddings: true, ioType: 'float16' },
    ...QWEN_TOKENS,
    std: 0.2,
    transform: model => withMatMulNBits(model, 128),
    quantization: 'Q4_0'
  },
  {
    name: 'phi3-fp16-weights',
    mirrors: 'an fp16 export run with float32 inputs and outputs: float16 weights, each cast where used',
    config: { ...base, modelType: 'phi3', kvHeads: 4, tieEmbeddings: false, rmsNormEps: 1e-5 },
    ...PHI_3_TOKENS,
    transform: model => withFloat16Weights(model),
    quantization: 'F16'
  }
]

/** Random weights large enough that greedy decoding does not settle on one token. */
const WEIGHT_STD = 0.1

let corpus: string | undefined

/** Writes `family`'s model directory (config.json, generation_config.json, tokenizer files, model.onnx) to `dir`. */
export async function writeFamilyModel (dir: string, family: Family, seed = 7): Promise<LlamaConfig> {
  corpus ??= (await readCorpus()).map(book => book.slice(0, 30_000)).join('\n')
  const tokenizer = family.tokenizer(corpus)
  const vocab: Record<string, number> = tokenizer.tokenizerJson.model.vocab
  const id = (token: string): number => {
    const found = vocab[token] ?? tokenizer.tokenizerJson.added_tokens.find((t: { content: string }) => t.content === token)?.id
    if (found == null) throw new Error(`${family.name}: no token ${token}`)
    return found
  }
  const config: LlamaConfig = { ...family.config, vocabSize: Math.max(...Object.values(vocab)) + 1 }
  const eos = family.eos.map(id)
  const bos = family.bos == null ? eos[0] : id(family.bos)
  await mkdir(dir, { recursive: true })
  const json = (value: unknown): string => JSON.stringify(value, null, 2) + '\n'
  const model = buildLlamaDecoder(config, initLlamaWeights(config, seed, family.std ?? WEIGHT_STD))
  await writeFile(join(dir, 'model.onnx'), writeModel(family.transform?.(model) ?? model).model)
  await writeFile(join(dir, 'config.json'), json(llamaHfConfig(config, { bosTokenId: bos, eosTokenId: eos.length === 1 ? eos[0] : eos })))
  await writeFile(join(dir, 'generation_config.json'), json({ bos_token_id: bos, eos_token_id: eos.length === 1 ? eos[0] : eos }))
  await writeFile(join(dir, 'tokenizer.json'), json(tokenizer.tokenizerJson))
  await writeFile(join(dir, 'tokenizer_config.json'), json(tokenizer.tokenizerConfig))
  return config
}
