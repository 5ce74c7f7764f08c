/**
 * The keys and values of recent sequences, so that a prompt that begins as
 * one of them did (the next turn of a chat, the same system prompt) is
 * prefilled only past the longest shared prefix, as vLLM's automatic prefix
 * caching and llama.cpp's prompt cache do. Bounded in bytes, least recently
 * used first out.
 */
import type { Decoder, DecoderCache } from './decoder.ts'

interface Entry<C extends DecoderCache> {
  /** The tokens whose keys and values the cache holds, in order. */
  tokens: number[]
  /** One row, no padding. */
  cache: C
  bytes: number
}

/** Shorter shared prefixes are cheaper to prefill again than to copy. */
const MIN_PREFIX = 8

export interface PrefixHit<C extends DecoderCache = DecoderCache> {
  /** A copy of the cached keys and values of the prompt's first `length` tokens, for this sequence alone. */
  cache: C
  length: number
}

export class PrefixCache<C extends DecoderCache = DecoderCache> {
  readonly #model: Decoder<C>
  readonly #maxBytes: number
  /** Least recently used first. */
  #entries: Array<Entry<C>> = []
  #bytes = 0

  constructor (model: Decoder<C>, maxBytes: number) {
    this.#model = model
    this.#maxBytes = maxBytes
  }

  get bytes (): number {
    return this.#bytes
  }

  /** The longest cached prefix of `prompt`, leaving at least its last token to run: a step must return logits. */
  take (prompt: readonly number[]): PrefixHit<C> | undefined {
    let best: Entry<C> | undefined
    let length = 0
    for (const entry of this.#entries) {
      const shared = sharedLength(entry.tokens, prompt, prompt.length - 1)
      if (shared > length) {
        best = entry
        length = shared
      }
    }
    if (best == null || length < MIN_PREFIX) return undefined
    this.#touch(best)
    // Copied: the batch writes into its caches in place.
    const cache = this.#model.regroup([{ cache: { ...best.cache, length }, rows: [0] }])
    return { cache, length }
  }

  /** Keeps row `row` of `cache`, which holds the keys and values of `tokens`. */
  store (tokens: readonly number[], cache: C, row: number): void {
    const size = cache.length - cache.pads[row]
    if (size < MIN_PREFIX || this.#maxBytes <= 0) return
    const bytes = this.#model.cacheBytes(1, size)
    if (bytes > this.#maxBytes) return
    const kept = tokens.slice(0, size)
    // An entry that this one extends is no longer needed; one that extends this one makes it useless.
    for (const entry of this.#entries) {
      if (entry.tokens.length >= size && sharedLength(entry.tokens, kept, size) === size) {
        this.#touch(entry)
        return
      }
    }
    this.#entries = this.#entries.filter(entry => {
      const superseded = sharedLength(entry.tokens, kept, entry.tokens.length) === entry.tokens.length
      if (superseded) this.#bytes -= entry.bytes
      return !superseded
    })
    const copy = this.#model.regroup([{ cache, rows: [row] }])
    this.#entries.push({ tokens: kept, cache: copy, bytes })
    this.#bytes += bytes
    while (this.#bytes > this.#maxBytes) {
      const evicted = this.#entries.shift() as Entry<C>
      this.#bytes -= evicted.bytes
    }
  }

  #touch (entry: Entry<C>): void {
    this.#entries = [...this.#entries.filter(e => e !== entry), entry]
  }
}

/** How many first items `a` and `b` share, at most `limit`. */
export function sharedLength (a: readonly number[], b: readonly number[], limit: number): number {
  const end = Math.min(a.length, b.length, limit)
  let n = 0
  while (n < end && a[n] === b[n]) n++
  return n
}
