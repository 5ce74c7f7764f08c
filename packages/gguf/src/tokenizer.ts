/**
 * Tokenizers both ways between Hugging Face's tokenizer.json and GGUF's
 * tokenizer.ggml.* metadata, so that a GGUF model is tokenized by the same
 * code as an ONNX one, and the project's own tokenizers go into the GGUF
 * files it converts: byte-level BPE (llama.cpp's `gpt2` tokenizer model) and
 * SentencePiece's BPE with byte fallback as transformers converts Llama 2's,
 * Mistral's and Gemma's (llama.cpp's `llama`), and BERT's WordPiece
 * (llama.cpp's `bert`).
 */
import { sentencePieceFrame } from '@node-daemon/models'
import { GgufConversionError } from './errors.ts'
import type { GgufValue } from './reader.ts'
import type { TypedValue } from './writer.ts'

/** llama.cpp's token types. */
const NORMAL = 1
const UNKNOWN = 2
const CONTROL = 3
const USER_DEFINED = 4
const UNUSED = 5
const BYTE = 6

/** SentencePiece's word-start marker, which stands for a space. */
const SPACE = '\u2581'
const BYTE_PIECE = /^<0x[0-9A-F]{2}>$/

interface AddedToken { id: number, content: string, special?: boolean }

interface TokenizerJsonBpe {
  added_tokens?: AddedToken[]
  model: { type: string, vocab: Record<string, number>, merges: Array<string | [string, string]>, byte_fallback?: boolean, unk_token?: string | null, continuing_subword_prefix?: string }
  normalizer?: unknown
  pre_tokenizer?: unknown
  post_processor?: unknown
}

/** The ids a converted file names as its special tokens. */
export interface SpecialTokens {
  bos?: number
  eos?: number
  /** End of a chat turn, e.g. <|im_end|>. */
  eot?: number
  padding?: number
  /** A BERT's [SEP] and [MASK]. */
  separator?: number
  mask?: number
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

/** Whether a tokenizer.json is SentencePiece's BPE as transformers converts it: '▁' for spaces, <0xNN> tokens for bytes out of the vocabulary. */
function isSentencePiece (t: TokenizerJsonBpe): boolean {
  return t.model?.type === 'BPE' && t.model.byte_fallback === true && JSON.stringify([t.normalizer ?? null, t.pre_tokenizer ?? null]).includes(SPACE)
}

/** Whether it puts '▁' before a text, as Llama 2's and Mistral's do (a Prepend normalizer, or a Metaspace that prepends) and Gemma's does not. */
function prependsSpace (t: TokenizerJsonBpe): boolean {
  const pre = JSON.stringify(t.pre_tokenizer ?? null)
  return JSON.stringify(t.normalizer ?? null).includes('"Prepend"') || (pre.includes('"Metaspace"') && !pre.includes('"never"') && !pre.includes('"add_prefix_space":false'))
}

/** Whether the post-processor puts a special token before a text, as Llama 3's puts <|begin_of_text|>. */
function postProcessorAddsBos (t: TokenizerJsonBpe): boolean {
  const parts = (p: any): any[] => p == null ? [] : p.type === 'Sequence' ? (p.processors ?? []).flatMap(parts) : [p]
  return parts(t.post_processor).some(p => p.type === 'TemplateProcessing' && p.single?.[0]?.SpecialToken != null)
}

/**
 * tokenizer.ggml.* for a tokenizer.json, padded to `vocabSize` entries as the
 * embedding's rows are: byte-level BPE, or SentencePiece's BPE with byte
 * fallback. `addBos` is tokenizer_config.json's add_bos_token; where it says
 * nothing, the post-processor tells, as gguf-py's SpecialVocab reads it.
 */
export function ggufTokenizer (tokenizerJson: object, vocabSize: number, special: SpecialTokens, chatTemplate?: string, addBos?: boolean): Record<string, TypedValue> {
  const t = tokenizerJson as TokenizerJsonBpe
  if (t.model?.type !== 'BPE' && t.model?.type !== 'WordPiece') throw new GgufConversionError('only BPE tokenizers (byte-level, or SentencePiece\'s with byte fallback) and WordPiece convert to GGUF')
  const bos = addBos ?? postProcessorAddsBos(t)
  const metadata = t.model.type === 'WordPiece' ? wordPieceMetadata(t, vocabSize) : isSentencePiece(t) ? sentencePieceMetadata(t, vocabSize, bos) : byteLevelMetadata(t, vocabSize, bos)
  for (const [key, id] of [['bos', special.bos], ['eos', special.eos], ['eot', special.eot], ['padding', special.padding], ['seperator', special.separator], ['mask', special.mask]] as const) {
    if (id != null) metadata[`tokenizer.ggml.${key}_token_id`] = { type: 'uint32', value: id }
  }
  if (chatTemplate != null) metadata['tokenizer.chat_template'] = { type: 'string', value: chatTemplate }
  return metadata
}

/** Each token and its llama.cpp type, from the vocabulary and the added tokens; ids no token has are unused. */
function tokenTable (t: TokenizerJsonBpe, vocabSize: number, typeOf: (piece: string) => number): { tokens: string[], types: number[] } {
  const tokens = new Array<string | undefined>(vocabSize)
  const types = new Array<number>(vocabSize).fill(UNUSED)
  for (const [piece, id] of Object.entries(t.model.vocab)) {
    if (id >= vocabSize) throw new GgufConversionError(`token ${id} is past the model's vocabulary of ${vocabSize}`)
    tokens[id] = piece
    types[id] = typeOf(piece)
  }
  for (const added of t.added_tokens ?? []) {
    tokens[added.id] = added.content
    if (types[added.id] !== UNKNOWN) types[added.id] = added.special === false ? USER_DEFINED : CONTROL
  }
  return { tokens: Array.from(tokens, (piece, id) => piece ?? `[PAD${id}]`), types }
}

function byteLevelMetadata (t: TokenizerJsonBpe, vocabSize: number, addBos: boolean): Record<string, TypedValue> {
  const pre = preName(t.pre_tokenizer)
  const { tokens, types } = tokenTable(t, vocabSize, () => NORMAL)
  return {
    'tokenizer.ggml.model': { type: 'string', value: 'gpt2' },
    'tokenizer.ggml.pre': { type: 'string', value: pre },
    'tokenizer.ggml.tokens': { type: 'array', of: 'string', value: tokens },
    'tokenizer.ggml.token_type': { type: 'array', of: 'int32', value: types },
    'tokenizer.ggml.merges': { type: 'array', of: 'string', value: t.model.merges.map(m => typeof m === 'string' ? m : m.join(' ')) },
    'tokenizer.ggml.add_bos_token': { type: 'bool', value: addBos }
  }
}

/**
 * llama.cpp's SentencePiece tokenizer merges the adjacent pair whose joined
 * piece scores highest, where Hugging Face's BPE takes the merge of lowest
 * rank: a piece scores minus the rank of the first merge that makes it, so
 * that both merge in the same order. Pieces no merge makes score below all.
 */
function sentencePieceMetadata (t: TokenizerJsonBpe, vocabSize: number, addBos: boolean): Record<string, TypedValue> {
  const unk = t.model.unk_token ?? undefined
  const { tokens, types } = tokenTable(t, vocabSize, piece => piece === unk ? UNKNOWN : BYTE_PIECE.test(piece) ? BYTE : NORMAL)
  const rank = new Map<string, number>()
  t.model.merges.forEach((m, r) => {
    const piece = typeof m === 'string' ? m.replace(' ', '') : m.join('')
    if (!rank.has(piece)) rank.set(piece, r)
  })
  const scores = tokens.map((piece, id) => -(rank.get(piece) ?? t.model.merges.length + id))
  const metadata: Record<string, TypedValue> = {
    'tokenizer.ggml.model': { type: 'string', value: 'llama' },
    'tokenizer.ggml.pre': { type: 'string', value: 'default' },
    'tokenizer.ggml.tokens': { type: 'array', of: 'string', value: tokens },
    'tokenizer.ggml.scores': { type: 'array', of: 'float32', value: scores },
    'tokenizer.ggml.token_type': { type: 'array', of: 'int32', value: types },
    'tokenizer.ggml.add_bos_token': { type: 'bool', value: addBos },
    'tokenizer.ggml.add_eos_token': { type: 'bool', value: false },
    'tokenizer.ggml.add_space_prefix': { type: 'bool', value: prependsSpace(t) }
  }
  const unkId = unk == null ? undefined : t.model.vocab[unk]
  if (unkId != null) metadata['tokenizer.ggml.unknown_token_id'] = { type: 'uint32', value: unkId }
  return metadata
}

/** A WordPiece token as llama.cpp's `bert` tokenizer spells it (convert_hf_to_gguf.py's "phantom space"): '▁' before a word's start, no ## before its continuation, [SPECIAL] as it is. */
function phantomSpace (piece: string): string {
  if (piece.startsWith('[') && piece.endsWith(']')) return piece
  return piece.startsWith('##') ? piece.slice(2) : SPACE + piece
}

function wordPieceMetadata (t: TokenizerJsonBpe, vocabSize: number): Record<string, TypedValue> {
  if ((t.model.continuing_subword_prefix ?? '##') !== '##') throw new GgufConversionError('only WordPiece with ## continuations converts to GGUF')
  const { tokens, types } = tokenTable(t, vocabSize, () => NORMAL)
  const unk = t.model.unk_token == null ? undefined : t.model.vocab[t.model.unk_token]
  return {
    'tokenizer.ggml.model': { type: 'string', value: 'bert' },
    'tokenizer.ggml.pre': { type: 'string', value: 'default' },
    'tokenizer.ggml.tokens': { type: 'array', of: 'string', value: tokens.map((piece, id) => types[id] === NORMAL ? phantomSpace(piece) : piece) },
    'tokenizer.ggml.token_type': { type: 'array', of: 'int32', value: types },
    // llama.cpp's bert puts [CLS] before a text and [SEP] after it, as the tokenizer's post-processor does.
    'tokenizer.ggml.add_bos_token': { type: 'bool', value: true },
    'tokenizer.ggml.add_sep_token': { type: 'bool', value: true },
    ...(unk != null ? { 'tokenizer.ggml.unknown_token_id': { type: 'uint32', value: unk } } : {})
  }
}

export interface HfTokenizerFiles {
  tokenizerJson: Record<string, unknown>
  tokenizerConfig: Record<string, unknown>
  /** Ids that end a generation: eos and end of turn. */
  eosIds: number[]
}

/**
 * A GGUF file's tokenizer as tokenizer.json and tokenizer_config.json:
 * byte-level BPE (tokenizer.ggml.model gpt2, pre-tokenizer gpt-2 or
 * llama-bpe), or SentencePiece's BPE with byte fallback (llama).
 */
export function hfTokenizer (metadata: Record<string, GgufValue>): HfTokenizerFiles {
  const model = metadata['tokenizer.ggml.model']
  if (model !== 'gpt2' && model !== 'llama' && model !== 'bert') throw new GgufConversionError(`the GGUF tokenizer ${JSON.stringify(model ?? null)} is not supported: only byte-level BPE (gpt2), SentencePiece (llama) and WordPiece (bert)`)
  const tokens = metadata['tokenizer.ggml.tokens']
  if (!Array.isArray(tokens)) throw new GgufConversionError('the GGUF file lacks tokenizer.ggml.tokens')
  const types = metadata['tokenizer.ggml.token_type']
  const typeOf = (id: number): number => Array.isArray(types) ? Number(types[id]) : NORMAL
  const vocab: Record<string, number> = {}
  const added: Array<AddedToken & Record<string, unknown>> = []
  // WordPiece's pieces as tokenizer.json spells them: ## before a continuation, none before a word's start.
  const spelled = (piece: string): string => model !== 'bert' || (piece.startsWith('[') && piece.endsWith(']')) ? piece : piece.startsWith(SPACE) ? piece.slice(1) : `##${piece}`
  tokens.forEach((piece, id) => {
    const type = typeOf(id)
    if (type === CONTROL || type === USER_DEFINED) {
      added.push({ id, content: String(piece), single_word: false, lstrip: false, rstrip: false, normalized: false, special: type === CONTROL })
    }
    // A BERT's vocabulary holds its special tokens too: WordPiece finds [UNK] there.
    if (type !== UNUSED && (model === 'bert' || (type !== CONTROL && type !== USER_DEFINED))) vocab[spelled(String(piece))] = id
  })
  const id = (key: string): number | undefined => {
    const v = metadata[`tokenizer.ggml.${key}_token_id`]
    return typeof v === 'number' ? v : undefined
  }
  const name = (n: number | undefined): string | null => n == null ? null : String(tokens[n])
  const template = metadata['tokenizer.chat_template']
  const addBos = metadata['tokenizer.ggml.add_bos_token'] === true
  const tokenizerJson = model === 'gpt2'
    ? byteLevelJson(metadata, vocab)
    : model === 'llama'
      ? sentencePieceJson(metadata, tokens.map(String), typeOf, vocab, addBos ? name(id('bos')) : null, name(id('unknown')))
      // convert_hf_to_gguf.py names [CLS] as the cls token, or as the bos in older files; [SEP] under llama.cpp's spelling.
      : wordPieceJson(vocab, name(id('cls') ?? id('bos')), name(id('seperator')), name(id('unknown')))
  return {
    tokenizerJson: { version: '1.0', truncation: null, padding: null, added_tokens: added, ...tokenizerJson },
    tokenizerConfig: {
      add_bos_token: addBos,
      bos_token: name(id('bos')),
      eos_token: name(id('eos')),
      ...(typeof template === 'string' ? { chat_template: template } : {})
    },
    eosIds: [id('eos'), id('eot'), id('eom')].filter((n): n is number => n != null)
  }
}

function byteLevelJson (metadata: Record<string, GgufValue>, vocab: Record<string, number>): Record<string, unknown> {
  const merges = metadata['tokenizer.ggml.merges']
  if (!Array.isArray(merges)) throw new GgufConversionError('the GGUF file lacks tokenizer.ggml.merges')
  // Files without the key predate it and split as GPT-2 did.
  const preTokenizer = PRE_TOKENIZERS[String(metadata['tokenizer.ggml.pre'] ?? 'gpt-2')]
  if (preTokenizer == null) throw new GgufConversionError(`the GGUF pre-tokenizer ${JSON.stringify(metadata['tokenizer.ggml.pre'])} is not supported: only gpt-2 and llama-bpe`)
  return {
    normalizer: null,
    pre_tokenizer: preTokenizer,
    post_processor: null,
    decoder: PRE_TOKENIZERS['gpt-2'],
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: merges.map(m => String(m).split(' ')) }
  }
}

/**
 * SentencePiece's BPE as transformers converts it (its LlamaConverter): a
 * merge for every split of a piece into two pieces, ordered by the joined
 * piece's score, then by the halves' ids, so that Hugging Face's BPE merges
 * as llama.cpp's tokenizer does; '▁' for spaces, one before the text unless
 * the file says not (Gemma's), and <0xNN> tokens for bytes out of the
 * vocabulary.
 */
function sentencePieceJson (metadata: Record<string, GgufValue>, tokens: string[], typeOf: (id: number) => number, vocab: Record<string, number>, bos: string | null, unk: string | null): Record<string, unknown> {
  const scores = metadata['tokenizer.ggml.scores']
  const score = (id: number): number => Array.isArray(scores) ? Number(scores[id]) : -id
  const normal = new Map<string, number>()
  tokens.forEach((piece, id) => { if (typeOf(id) === NORMAL) normal.set(piece, id) })
  const merges: Array<{ left: string, right: string, score: number, id: number, l: number, r: number }> = []
  for (const [piece, id] of normal) {
    const chars = [...piece]
    for (let i = 1; i < chars.length; i++) {
      const left = chars.slice(0, i).join('')
      const right = chars.slice(i).join('')
      const l = normal.get(left)
      const r = normal.get(right)
      if (l != null && r != null) merges.push({ left, right, score: score(id), id, l, r })
    }
  }
  merges.sort((a, b) => b.score - a.score || a.id - b.id || a.l - b.l || a.r - b.r)
  const prepend = metadata['tokenizer.ggml.add_space_prefix'] !== false
  return {
    ...sentencePieceFrame(prepend, bos == null ? undefined : { token: bos, id: tokens.indexOf(bos) }),
    model: { type: 'BPE', dropout: null, unk_token: unk, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges: merges.map(m => [m.left, m.right]) }
  }
}

/**
 * BERT's uncased WordPiece as its tokenizer.json has it: lower-cased,
 * accents stripped (llama.cpp's own tokenizer keeps them, as combining
 * marks), split at spaces and punctuation, [CLS] before a text and [SEP]
 * after it, and between the two of a pair.
 */
function wordPieceJson (vocab: Record<string, number>, cls: string | null, sep: string | null, unk: string | null): Record<string, unknown> {
  const special = (token: string): object => ({ [token]: { id: token, ids: [vocab[token] ?? -1], tokens: [token] } })
  return {
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: cls == null || sep == null
      ? null
      : {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: cls, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: sep, type_id: 0 } }],
          pair: [{ SpecialToken: { id: cls, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: sep, type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: sep, type_id: 1 } }],
          special_tokens: { ...special(cls), ...special(sep) }
        },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: unk ?? '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab }
  }
}
