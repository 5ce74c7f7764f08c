/**
 * Trains the byte-level BPE tokenizer of the project's own models and writes
 * it as the two Hugging Face files the runtime loads with
 * @huggingface/tokenizers and @huggingface/jinja: tokenizer.json and
 * tokenizer_config.json, returned as plain objects (no file IO here).
 *
 * Special tokens, decided once for every default model:
 * - `<|endoftext|>` separates documents in training; it is the bos, eos and
 *   pad token, as in GPT-2 (a padded position is masked, so no separate pad
 *   token is needed). There is no unk token: every byte has a symbol.
 * - `<|im_start|>` and `<|im_end|>` frame the turns of the ChatML template;
 *   a chat reply ends with `<|im_end|>`, so generation stops at either that
 *   or `<|endoftext|>`.
 * Specials take the first ids, then the 256 byte symbols, then the merges.
 */
import { BYTE_ALPHABET, preTokenize, toByteLevel } from './byte-level.ts'
import { learnMerges } from './bpe-merges.ts'

export const END_OF_TEXT = '<|endoftext|>'
export const IM_START = '<|im_start|>'
export const IM_END = '<|im_end|>'

/** ChatML: each message as `<|im_start|>role\ncontent<|im_end|>\n`, then an open assistant turn when asked. */
export const CHAT_TEMPLATE = '{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}'

export interface TrainBpeOptions {
  /** Size of the whole vocabulary: special tokens, the 256 bytes and the merged tokens. */
  vocabSize: number
  /** Special tokens added after `<|endoftext|>`, `<|im_start|>` and `<|im_end|>`. */
  specialTokens?: readonly string[]
  /** The longest input the model takes, in tokens (default 1024). */
  modelMaxLength?: number
}

export interface ByteLevelJson {
  type: 'ByteLevel'
  add_prefix_space: boolean
  trim_offsets: boolean
  use_regex: boolean
}

export interface AddedTokenJson {
  id: number
  content: string
  single_word: boolean
  lstrip: boolean
  rstrip: boolean
  normalized: boolean
  special: boolean
}

/** tokenizer.json, in the layout the Rust tokenizers library serializes. */
export interface TokenizerJson {
  version: '1.0'
  truncation: null
  padding: null
  added_tokens: AddedTokenJson[]
  normalizer: null
  pre_tokenizer: ByteLevelJson
  post_processor: ByteLevelJson
  decoder: ByteLevelJson
  model: {
    type: 'BPE'
    dropout: null
    unk_token: null
    continuing_subword_prefix: null
    end_of_word_suffix: null
    fuse_unk: boolean
    byte_fallback: boolean
    ignore_merges: boolean
    vocab: Record<string, number>
    merges: Array<[string, string]>
  }
}

/** tokenizer_config.json, as transformers writes it for a tokenizer.json-backed tokenizer. */
export interface TokenizerConfig {
  tokenizer_class: 'PreTrainedTokenizerFast'
  add_bos_token: boolean
  add_eos_token: boolean
  add_prefix_space: boolean
  added_tokens_decoder: Record<string, Omit<AddedTokenJson, 'id'>>
  additional_special_tokens: string[]
  bos_token: string
  eos_token: string
  pad_token: string
  unk_token: null
  chat_template: string
  /** false: the default (true) rewrites " ." as "." when decoding, which would lose text. */
  clean_up_tokenization_spaces: boolean
  errors: 'replace'
  model_max_length: number
  split_special_tokens: boolean
}

export interface TrainedTokenizer {
  tokenizerJson: TokenizerJson
  tokenizerConfig: TokenizerConfig
}

/**
 * Learns a byte-level BPE vocabulary of `vocabSize` tokens from `text` (one
 * string or several documents). Special tokens inside the text are cut out
 * before counting, so no merge crosses them. The vocabulary comes out
 * smaller only when the text runs out of pairs to merge.
 */
export function trainBpe (text: string | readonly string[], options: TrainBpeOptions): TrainedTokenizer {
  const specials = [END_OF_TEXT, IM_START, IM_END, ...(options.specialTokens ?? [])]
  if (new Set(specials).size !== specials.length) throw new RangeError('special tokens must be distinct')
  const base = specials.length + BYTE_ALPHABET.length
  if (!Number.isInteger(options.vocabSize) || options.vocabSize < base) {
    throw new RangeError(`vocabSize must be an integer of at least ${base}, the special tokens and the 256 bytes`)
  }

  const { symbols, merges } = learnMerges(countWords(typeof text === 'string' ? [text] : text, specials), BYTE_ALPHABET, options.vocabSize - base)
  const vocab = Object.fromEntries([...specials, ...symbols].map((token, id) => [token, id]))
  const addedTokens = specials.map((content, id) => ({
    id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true
  }))
  const byteLevel = (trimOffsets: boolean): ByteLevelJson => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: trimOffsets, use_regex: true })

  return {
    tokenizerJson: {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: addedTokens,
      normalizer: null,
      pre_tokenizer: byteLevel(true),
      // Only adjusts offsets in the Rust library (trim_offsets false: not even that); kept as GPT-2 has it.
      post_processor: byteLevel(false),
      decoder: byteLevel(true),
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges
      }
    },
    tokenizerConfig: {
      tokenizer_class: 'PreTrainedTokenizerFast',
      add_bos_token: false,
      add_eos_token: false,
      add_prefix_space: false,
      added_tokens_decoder: Object.fromEntries(addedTokens.map(({ id, ...token }) => [String(id), token])),
      additional_special_tokens: specials.slice(1),
      bos_token: END_OF_TEXT,
      eos_token: END_OF_TEXT,
      pad_token: END_OF_TEXT,
      unk_token: null,
      chat_template: CHAT_TEMPLATE,
      clean_up_tokenization_spaces: false,
      errors: 'replace',
      model_max_length: options.modelMaxLength ?? 1024,
      split_special_tokens: false
    }
  }
}

/** Counts the pre-tokens of every document, in byte-level form, skipping special tokens. */
function countWords (documents: readonly string[], specials: readonly string[]): Map<string, number> {
  const separator = new RegExp(specials.map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'u')
  const raw = new Map<string, number>()
  for (const document of documents) {
    for (const segment of document.split(separator)) {
      for (const piece of preTokenize(segment)) raw.set(piece, (raw.get(piece) ?? 0) + 1)
    }
  }
  const words = new Map<string, number>()
  for (const [piece, count] of raw) words.set(toByteLevel(piece), count)
  return words
}
