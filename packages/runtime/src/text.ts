/**
 * Text in and out of a model: @huggingface/tokenizers for the tokenizer.json,
 * @huggingface/jinja for the chat template in tokenizer_config.json, and
 * incremental decoding that never emits half a UTF-8 character.
 */
import { Template } from '@huggingface/jinja'
import { Tokenizer } from '@huggingface/tokenizers'
import { vocabularyFromTokenizer } from '@node-daemon/grammar'
import { InvalidModelError } from './errors.ts'
import type { Vocabulary } from '@node-daemon/grammar'

export interface ChatMessage {
  role: string
  content: string
  /** An assistant's calls of tools. */
  tool_calls?: Array<{ id?: string, name: string, arguments: Record<string, unknown> }>
  /** Which call a `tool` message answers. */
  tool_call_id?: string
  /** The tool that answered, on a `tool` message. */
  name?: string
}

/** What the runtime uses of @huggingface/tokenizers' Tokenizer, whose published types do not resolve under NodeNext. */
interface HfTokenizer {
  encode (text: string, options?: { add_special_tokens?: boolean, text_pair?: string, return_token_type_ids?: boolean }): { ids: number[], token_type_ids?: number[] }
  decode (ids: number[], options?: { skip_special_tokens?: boolean }): string
  token_to_id (token: string): number | undefined
  id_to_token (id: number): string | undefined
  get_added_tokens_decoder (): Map<number, unknown>
  get_vocab (withAddedTokens?: boolean): Map<string, number>
}

/** The fill-in-the-middle tokens of the tokenizers that have them: StarCoder's and Qwen's, SantaCoder's, CodeLlama's. */
const FIM_TOKENS = [
  ['<|fim_prefix|>', '<|fim_suffix|>', '<|fim_middle|>'],
  ['<fim_prefix>', '<fim_suffix>', '<fim_middle>'],
  ['<fim-prefix>', '<fim-suffix>', '<fim-middle>'],
  ['▁<PRE>', '▁<SUF>', '▁<MID>']
]

/**
 * GPT-2's byte-level BPE writes each byte as a printable character; this is
 * the way back (bytes_to_unicode, inverted).
 */
const BYTE_OF_CHAR: ReadonlyMap<string, number> = (() => {
  const printable = (b: number): boolean => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)
  const map = new Map<string, number>()
  let extra = 0
  for (let b = 0; b < 256; b++) map.set(String.fromCodePoint(printable(b) ? b : 256 + extra++), b)
  return map
})()

const utf8 = new TextEncoder()

/**
 * The BPE model's cache of words' pieces, in place of tokenizers.js's LRU,
 * which deletes and sets a Map entry at every hit: that took half the time
 * of encoding the search bench's corpus. Two generations of at most
 * `capacity` words each: a hit in the young one writes nothing, a hit in the
 * old one moves the word to the young one, and a full young generation
 * becomes the old one, dropping what was not used since.
 */
export class WordCache<V> {
  readonly #capacity: number
  #young = new Map<string, V>()
  #old = new Map<string, V>()

  constructor (capacity: number) {
    this.#capacity = Math.max(1, capacity)
  }

  get size (): number {
    return this.#young.size + this.#old.size
  }

  get (key: string): V | undefined {
    const young = this.#young.get(key)
    if (young !== undefined) return young
    const old = this.#old.get(key)
    if (old !== undefined) this.put(key, old)
    return old
  }

  put (key: string, value: V): void {
    this.#young.set(key, value)
    if (this.#young.size >= this.#capacity) {
      this.#old = this.#young
      this.#young = new Map()
    }
  }

  clear (): void {
    this.#young.clear()
    this.#old.clear()
  }
}

/** What tokenizers.js's BPE model keeps its cache in: `cache_capacity` words. */
interface CachingModel { cache: { get: unknown, put: unknown, clear: unknown }, cache_capacity?: number }

function isCachingModel (model: unknown): model is CachingModel {
  const cache = (model as { cache?: Record<string, unknown> } | null)?.cache
  return typeof cache?.get === 'function' && typeof cache.put === 'function' && typeof cache.clear === 'function'
}

export class TextCodec {
  readonly #tokenizer: HfTokenizer
  readonly #template?: Template
  readonly #config: Record<string, unknown>
  /** Kept until the vocabulary is first asked for: only constrained decoding needs it. */
  #tokenizerJson?: object
  #vocabulary?: Vocabulary
  /** Token ids that end a generation: the eos token and the chat template's end of turn. */
  readonly stopIds: ReadonlySet<number>
  readonly templateSource?: string
  #wrapping?: { prefix: number[], suffix: number[] }
  /** The ids of the fill-in-the-middle prefix, suffix and middle tokens, when the tokenizer has them. */
  readonly fim?: { prefix: number, suffix: number, middle: number }
  readonly #byteLevel: boolean
  readonly #added: ReadonlySet<number>
  #vocabSize?: number

  constructor (tokenizerJson: object, tokenizerConfig: Record<string, unknown>, eosIds: number[] = []) {
    try {
      this.#tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig)
    } catch (err: any) {
      throw new InvalidModelError(`tokenizer.json: ${err.message}`)
    }
    const model = (this.#tokenizer as { model?: unknown }).model
    if (isCachingModel(model)) model.cache = new WordCache(model.cache_capacity ?? 10_000)
    this.#config = tokenizerConfig
    this.#tokenizerJson = tokenizerJson
    const template = chatTemplate(tokenizerConfig.chat_template)
    if (template != null) {
      this.templateSource = template
      try {
        this.#template = new Template(template)
      } catch (err: any) {
        throw new InvalidModelError(`chat_template: ${err.message}`)
      }
    }
    const stops = new Set(eosIds)
    for (const name of ['eos_token', '<|im_end|>', '<|endoftext|>', '<|eot_id|>', '<|end|>']) {
      const token = name === 'eos_token' ? tokenName(tokenizerConfig.eos_token) : name
      const id = token == null ? undefined : this.#tokenizer.token_to_id(token)
      if (id != null) stops.add(id)
    }
    this.stopIds = stops
    for (const names of FIM_TOKENS) {
      const [prefix, suffix, middle] = names.map(name => this.#tokenizer.token_to_id(name))
      if (prefix != null && suffix != null && middle != null) {
        this.fim = { prefix, suffix, middle }
        break
      }
    }
    this.#added = new Set(this.#tokenizer.get_added_tokens_decoder().keys())
    this.#byteLevel = JSON.stringify((tokenizerJson as { decoder?: unknown }).decoder ?? null).includes('"ByteLevel"')
  }

  /** Tokens in the vocabulary, added ones included. */
  get vocabSize (): number {
    this.#vocabSize ??= this.#tokenizer.get_vocab(true).size
    return this.#vocabSize
  }

  /**
   * The bytes one token stands for, as OpenAI's logprobs report them: a
   * byte-level token may hold part of a UTF-8 character, which no text of
   * its own can show.
   */
  tokenBytes (id: number): number[] {
    const piece = this.#tokenizer.id_to_token(id)
    if (piece == null) return []
    if (this.#added.has(id)) return [...utf8.encode(piece)]
    if (this.#byteLevel && [...piece].every(ch => BYTE_OF_CHAR.has(ch))) return [...piece].map(ch => BYTE_OF_CHAR.get(ch) as number)
    // SentencePiece's byte fallback and its word-start marker.
    const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece)
    if (byte != null) return [Number.parseInt(byte[1], 16)]
    return [...utf8.encode(piece.replaceAll('▁', ' '))]
  }

  encode (text: string): number[] {
    return this.#tokenizer.encode(text, { add_special_tokens: false }).ids
  }

  /** Encodes with the tokenizer's own special tokens, e.g. BERT's [CLS] and [SEP]. */
  encodeForModel (text: string): number[] {
    return this.#tokenizer.encode(text).ids
  }

  /** Two texts with the tokenizer's pair template (a BERT's [CLS] a [SEP] b [SEP]), and each token's type: 0 in the first, 1 in the second. */
  encodePair (text: string, pair: string): { ids: number[], types: number[] } {
    const { ids, token_type_ids: types } = this.#tokenizer.encode(text, { text_pair: pair, return_token_type_ids: true })
    return { ids, types: types ?? new Array<number>(ids.length).fill(0) }
  }

  /** Whether `id` is a token of the vocabulary. */
  hasToken (id: number): boolean {
    return Number.isSafeInteger(id) && id >= 0 && this.#tokenizer.id_to_token(id) != null
  }

  /**
   * The special tokens the tokenizer's post-processor puts around one
   * sequence (BERT's [CLS] before and [SEP] after, a Llama's BOS before),
   * found once by encoding a probe with and without them: the post-processor
   * itself is not exposed.
   */
  get wrapping (): { prefix: number[], suffix: number[] } {
    if (this.#wrapping == null) {
      const bare = this.encode('a')
      const full = this.encodeForModel('a')
      const at = full.findIndex((_, i) => bare.length > 0 && bare.every((id, k) => full[i + k] === id))
      this.#wrapping = at < 0 ? { prefix: [], suffix: [] } : { prefix: full.slice(0, at), suffix: full.slice(at + bare.length) }
    }
    return this.#wrapping
  }

  /**
   * The bos token a prompt starts with where the tokenizer's own encoding
   * adds one: tokenizer_config.json's add_bos_token says, else its
   * post-processor (Llama 3's adds <|begin_of_text|>); GPT-2's and Qwen's
   * add none. Prompts are encoded without special tokens, as chat
   * templates write the bos themselves.
   */
  get bos (): number | undefined {
    const add = this.#config.add_bos_token
    if (add === false) return undefined
    const name = tokenName(this.#config.bos_token)
    if (add === true) return name == null ? undefined : this.#tokenizer.token_to_id(name)
    const { prefix } = this.wrapping
    return prefix.length === 1 ? prefix[0] : undefined
  }

  decode (ids: readonly number[]): string {
    // tokenizers.js refuses an empty list.
    return ids.length === 0 ? '' : this.#tokenizer.decode([...ids], { skip_special_tokens: true })
  }

  /** The bytes of every token, for grammars to mask by. */
  get vocabulary (): Vocabulary {
    if (this.#vocabulary == null) {
      this.#vocabulary = vocabularyFromTokenizer(this.#tokenizerJson as object, [...this.stopIds])
      this.#tokenizerJson = undefined
    }
    return this.#vocabulary
  }

  get hasChatTemplate (): boolean {
    return this.#template != null
  }

  /**
   * Renders a conversation with the model's chat template, or a plain
   * "role: content" transcript when the model has none, as Ollama does.
   */
  chat (messages: ChatMessage[], template?: string, tools?: object[]): string {
    if (template != null && isGoTemplate(template)) return renderGoTemplate(template, messages)
    const compiled = template != null ? new Template(template) : this.#template
    if (compiled == null) return messages.map(m => `${m.role}: ${m.content}\n`).join('') + 'assistant: '
    return compiled.render({
      messages,
      ...(tools != null && tools.length > 0 ? { tools } : {}),
      add_generation_prompt: true,
      bos_token: tokenName(this.#config.bos_token) ?? '',
      eos_token: tokenName(this.#config.eos_token) ?? ''
    })
  }
}

/** Ollama's Modelfiles write templates in Go's syntax: `{{ .Prompt }}`, `{{ if .System }}…{{ end }}`. */
function isGoTemplate (template: string): boolean {
  return /\{\{-?\s*(if\s+)?\.(System|Prompt|Response)\b/.test(template) && !template.includes('{%')
}

/**
 * The subset of Ollama's Go templates that single-turn templates use: the
 * system prompt, the last user message as .Prompt, and `if` blocks on them.
 */
function renderGoTemplate (template: string, messages: ChatMessage[]): string {
  const vars: Record<string, string> = {
    System: messages.filter(m => m.role === 'system').map(m => m.content).join('\n'),
    Prompt: messages.filter(m => m.role === 'user').at(-1)?.content ?? '',
    Response: ''
  }
  return template
    .replace(/\{\{-?\s*if\s+\.(\w+)\s*-?\}\}([\s\S]*?)\{\{-?\s*end\s*-?\}\}/g, (_all, name: string, body: string) => (vars[name] ?? '') !== '' ? body : '')
    .replace(/\{\{-?\s*\.(\w+)\s*-?\}\}/g, (_all, name: string) => vars[name] ?? '')
}

/** A chat_template is a string, or on some Hub models a list of named templates of which `default` is the one. */
function chatTemplate (value: unknown): string | undefined {
  if (typeof value === 'string') return value
  if (Array.isArray(value)) {
    const named = value.find(t => t?.name === 'default') ?? value[0]
    return typeof named?.template === 'string' ? named.template : undefined
  }
  return undefined
}

/** tokenizer_config.json names a token either as a string or as an AddedToken object. */
function tokenName (value: unknown): string | undefined {
  if (typeof value === 'string') return value
  if (value != null && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') return (value as { content: string }).content
  return undefined
}

/**
 * Decodes a growing list of ids into text deltas, looking only at the last
 * few tokens each time (as vLLM does): the text of the ids since `prefix`,
 * less the text of those up to `read`, is what is new. Byte-level tokens can
 * split a character, so text ending in U+FFFD waits for the rest; decoding
 * from a few tokens back keeps decoders that treat a leading space
 * specially (SentencePiece's) right.
 */
export class IncrementalDecoder {
  readonly #codec: TextCodec
  readonly #ids: number[] = []
  #prefix = 0
  #read = 0
  #text = ''

  constructor (codec: TextCodec) {
    this.#codec = codec
  }

  push (id: number): string {
    this.#ids.push(id)
    const before = this.#codec.decode(this.#ids.slice(this.#prefix, this.#read))
    const after = this.#codec.decode(this.#ids.slice(this.#prefix))
    if (after.length <= before.length || after.endsWith('\uFFFD')) return ''
    const delta = after.slice(before.length)
    this.#prefix = this.#read
    this.#read = this.#ids.length
    this.#text += delta
    return delta
  }

  /** Everything emitted so far. */
  get text (): string {
    return this.#text
  }
}
