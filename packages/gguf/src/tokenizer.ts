/**
 * A byte-level BPE tokenizer both ways between Hugging Face's tokenizer.json
 * and GGUF's tokenizer.ggml.* metadata (the `gpt2` tokenizer model of
 * llama.cpp), so that a GGUF model is tokenized by the same code as an ONNX
 * one, and the project's own tokenizer goes into the GGUF files it converts.
 */
import { GgufConversionError } from './errors.ts'
import type { GgufValue } from './reader.ts'
import type { TypedValue } from './writer.ts'

/** llama.cpp's token types. */
const NORMAL = 1
const CONTROL = 3
const USER_DEFINED = 4
const UNUSED = 5

interface AddedToken { id: number, content: string, special?: boolean }

interface TokenizerJsonBpe {
  added_tokens?: AddedToken[]
  model: { type: string, vocab: Record<string, number>, merges: Array<string | [string, string]> }
  pre_tokenizer?: unknown
}

/** The ids a converted file names as its special tokens. */
export interface SpecialTokens {
  bos?: number
  eos?: number
  /** End of a chat turn, e.g. <|im_end|>. */
  eot?: number
  padding?: number
}

/** Llama 3's split of text into words before byte-level BPE, as its tokenizer.json writes it: llama.cpp's `llama-bpe`. */
const LLAMA_3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/**
 * The byte-level pre-tokenizers by llama.cpp's name (tokenizer.ggml.pre):
 * GPT-2's regex inside ByteLevel, or Llama 3's as a Split before it.
 */
const PRE_TOKENIZERS: Record<string, object> = {
  'gpt-2': { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
  'llama-bpe': {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: LLAMA_3_SPLIT }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }
    ]
  }
}

/** llama.cpp's name for a tokenizer.json's byte-level pre-tokenizer; what it does not know would tokenize differently there. */
function preName (preTokenizer: unknown): string {
  const json = JSON.stringify(preTokenizer ?? null)
  if (json.includes(JSON.stringify(LLAMA_3_SPLIT))) return 'llama-bpe'
  const pre = preTokenizer as { type?: string, use_regex?: boolean } | null
  if (pre?.type === 'ByteLevel' && pre.use_regex !== false) return 'gpt-2'
  throw new GgufConversionError('only byte-level BPE tokenizers with GPT-2\'s or Llama 3\'s pre-tokenizer convert to GGUF')
}

/** tokenizer.ggml.* for a byte-level BPE tokenizer.json, padded to `vocabSize` entries as the embedding's rows are. */
export function ggufTokenizer (tokenizerJson: object, vocabSize: number, special: SpecialTokens, chatTemplate?: string): Record<string, TypedValue> {
  const t = tokenizerJson as TokenizerJsonBpe
  if (t.model?.type !== 'BPE') throw new GgufConversionError('only byte-level BPE tokenizers convert to GGUF')
  const pre = preName(t.pre_tokenizer)
  const tokens = new Array<string | undefined>(vocabSize)
  const types = new Array<number>(vocabSize).fill(UNUSED)
  for (const [piece, id] of Object.entries(t.model.vocab)) {
    if (id >= vocabSize) throw new GgufConversionError(`token ${id} is past the model's vocabulary of ${vocabSize}`)
    tokens[id] = piece
    types[id] = NORMAL
  }
  for (const added of t.added_tokens ?? []) {
    tokens[added.id] = added.content
    types[added.id] = added.special === false ? USER_DEFINED : CONTROL
  }
  const metadata: Record<string, TypedValue> = {
    'tokenizer.ggml.model': { type: 'string', value: 'gpt2' },
    'tokenizer.ggml.pre': { type: 'string', value: pre },
    'tokenizer.ggml.tokens': { type: 'array', of: 'string', value: Array.from(tokens, (piece, id) => piece ?? `[PAD${id}]`) },
    'tokenizer.ggml.token_type': { type: 'array', of: 'int32', value: types },
    'tokenizer.ggml.merges': { type: 'array', of: 'string', value: t.model.merges.map(m => typeof m === 'string' ? m : m.join(' ')) },
    'tokenizer.ggml.add_bos_token': { type: 'bool', value: false }
  }
  for (const [key, id] of [['bos', special.bos], ['eos', special.eos], ['eot', special.eot], ['padding', special.padding]] as const) {
    if (id != null) metadata[`tokenizer.ggml.${key}_token_id`] = { type: 'uint32', value: id }
  }
  if (chatTemplate != null) metadata['tokenizer.chat_template'] = { type: 'string', value: chatTemplate }
  return metadata
}

export interface HfTokenizerFiles {
  tokenizerJson: Record<string, unknown>
  tokenizerConfig: Record<string, unknown>
  /** Ids that end a generation: eos and end of turn. */
  eosIds: number[]
}

/** A GGUF file's tokenizer as tokenizer.json and tokenizer_config.json; byte-level BPE only (tokenizer.ggml.model gpt2, pre-tokenizer gpt-2 or llama-bpe). */
export function hfTokenizer (metadata: Record<string, GgufValue>): HfTokenizerFiles {
  const model = metadata['tokenizer.ggml.model']
  if (model !== 'gpt2') throw new GgufConversionError(`the GGUF tokenizer ${JSON.stringify(model ?? null)} is not supported: only byte-level BPE (gpt2)`)
  const tokens = metadata['tokenizer.ggml.tokens']
  const merges = metadata['tokenizer.ggml.merges']
  if (!Array.isArray(tokens) || !Array.isArray(merges)) throw new GgufConversionError('the GGUF file lacks tokenizer.ggml.tokens or tokenizer.ggml.merges')
  const types = metadata['tokenizer.ggml.token_type']
  // Files without the key predate it and split as GPT-2 did.
  const preTokenizer = PRE_TOKENIZERS[String(metadata['tokenizer.ggml.pre'] ?? 'gpt-2')]
  if (preTokenizer == null) throw new GgufConversionError(`the GGUF pre-tokenizer ${JSON.stringify(metadata['tokenizer.ggml.pre'])} is not supported: only gpt-2 and llama-bpe`)
  const vocab: Record<string, number> = {}
  const added: Array<AddedToken & Record<string, unknown>> = []
  tokens.forEach((piece, id) => {
    const type = Array.isArray(types) ? types[id] : NORMAL
    if (type === CONTROL || type === USER_DEFINED) {
      added.push({ id, content: String(piece), single_word: false, lstrip: false, rstrip: false, normalized: false, special: type === CONTROL })
    } else if (type !== UNUSED) {
      vocab[String(piece)] = id
    }
  })
  const id = (key: string): number | undefined => {
    const v = metadata[`tokenizer.ggml.${key}_token_id`]
    return typeof v === 'number' ? v : undefined
  }
  const name = (n: number | undefined): string | null => n == null ? null : String(tokens[n])
  const byteLevel = PRE_TOKENIZERS['gpt-2']
  const template = metadata['tokenizer.chat_template']
  return {
    tokenizerJson: {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: preTokenizer,
      post_processor: null,
      decoder: byteLevel,
      model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: merges.map(m => String(m).split(' ')) }
    },
    tokenizerConfig: {
      add_bos_token: metadata['tokenizer.ggml.add_bos_token'] === true,
      bos_token: name(id('bos')),
      eos_token: name(id('eos')),
      ...(typeof template === 'string' ? { chat_template: template } : {})
    },
    eosIds: [id('eos'), id('eot'), id('eom')].filter((n): n is number => n != null)
  }
}
