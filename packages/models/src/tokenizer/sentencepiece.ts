/**
 * A SentencePiece-style BPE tokenizer as transformers converts Llama 2's,
 * Mistral's and Gemma's to tokenizer.json: spaces become '▁' (Llama 2 and
 * Mistral also put one before the text), no pre-tokenizer, characters out of
 * the vocabulary fall back to <0xNN> byte tokens, and a TemplateProcessing
 * post-processor adds the bos token. Made for tests that pair tiny models
 * with their family's kind of tokenizer, as the real ones cannot be fetched.
 */
import { learnMerges } from './bpe-merges.ts'
import type { AddedTokenJson } from './train-bpe.ts'

export interface SentencePieceOptions {
  vocabSize: number
  /** Special tokens in id order from 0, e.g. ['<unk>', '<s>', '</s>'] (Llama 2) or ['<pad>', '<eos>', '<bos>', '<unk>'] (Gemma). */
  specials: readonly string[]
  unk: string
  bos: string
  eos: string
  /** Llama 2 and Mistral prepend '▁' to the text; Gemma does not. */
  prependSpace: boolean
  /** tokenizer_config.json's add_bos_token (Phi-3's is false though its post-processor has the bos). */
  addBos: boolean
  chatTemplate?: string
}

const SPACE = '▁'

/**
 * What surrounds a SentencePiece BPE model in its tokenizer.json, as
 * transformers writes Llama 2's (prependSpace) and Gemma's: spaces as '▁',
 * the bos added before a text when given, and decoding back through the byte
 * tokens.
 */
export function sentencePieceFrame (prependSpace: boolean, bos?: { token: string, id: number }): Record<'normalizer' | 'pre_tokenizer' | 'post_processor' | 'decoder', unknown> {
  return {
    normalizer: { type: 'Sequence', normalizers: [...(prependSpace ? [{ type: 'Prepend', prepend: SPACE }] : []), { type: 'Replace', pattern: { String: ' ' }, content: SPACE }] },
    pre_tokenizer: null,
    post_processor: bos == null
      ? null
      : {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: bos.token, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [{ SpecialToken: { id: bos.token, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: bos.token, type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
          special_tokens: { [bos.token]: { id: bos.token, ids: [bos.id], tokens: [bos.token] } }
        },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: SPACE }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        ...(prependSpace ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : [])
      ]
    }
  }
}

export function trainSentencePiece (text: string, options: SentencePieceOptions): { tokenizerJson: Record<string, unknown>, tokenizerConfig: Record<string, unknown> } {
  const { specials, bos } = options
  const bytes = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)
  const words = new Map<string, number>()
  for (const word of text.split(/\s+/).filter(w => w !== '')) words.set(SPACE + word, (words.get(SPACE + word) ?? 0) + 1)
  const alphabet = [...new Set([...words.keys()].flatMap(w => [...w]))].sort()
  const base = specials.length + bytes.length
  const { symbols, merges } = learnMerges(words, alphabet, Math.max(0, options.vocabSize - base - alphabet.length))
  const vocab = Object.fromEntries([...specials, ...bytes, ...symbols].map((token, id) => [token, id]))
  const addedTokens: AddedTokenJson[] = specials.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }))
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    ...sentencePieceFrame(options.prependSpace, { token: bos, id: vocab[bos] }),
    model: { type: 'BPE', dropout: null, unk_token: options.unk, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges }
  }
  const tokenizerConfig: Record<string, unknown> = {
    tokenizer_class: 'LlamaTokenizer',
    add_bos_token: options.addBos,
    add_eos_token: false,
    added_tokens_decoder: Object.fromEntries(addedTokens.map(({ id, ...token }) => [String(id), token])),
    bos_token: bos,
    eos_token: options.eos,
    unk_token: options.unk,
    pad_token: null,
    clean_up_tokenization_spaces: false,
    legacy: false,
    model_max_length: 1024
  }
  if (options.chatTemplate != null) tokenizerConfig.chat_template = options.chatTemplate
  return { tokenizerJson, tokenizerConfig }
}
