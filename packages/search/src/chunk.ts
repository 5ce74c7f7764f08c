/**
 * Chunking by the embedding model's tokens: windows of `chunkTokens` tokens,
 * each repeating the last `overlapTokens` of the one before, with the byte
 * range each covers in the text's UTF-8. A byte-level tokenizer's tokens
 * add up to the text's bytes, which gives exact ranges; for any other, words
 * are counted in tokens one by one and packed into windows.
 */
import type { ChunkingPolicy } from '@node-daemon/cluster'

/** What chunking needs of a tokenizer; the runtime's TextCodec has it. */
export interface ChunkTokenizer {
  encode (text: string): number[]
  /** The bytes of the text one token stands for. */
  tokenBytes (id: number): number[]
}

export interface TextChunk {
  text: string
  /** Byte range in the text's UTF-8, end exclusive. */
  start: number
  end: number
  tokens: number
  /** The chunk's tokens as the tokenizer gives its text, where chunking has them: a text that is one chunk. */
  ids?: number[]
}

const utf8 = new TextEncoder()
const decoder = new TextDecoder()

export function chunkText (text: string, tokenizer: ChunkTokenizer, policy: ChunkingPolicy): TextChunk[] {
  if (text.trim() === '') return []
  const ids = tokenizer.encode(text)
  // A text of one chunk needs no token boundaries, and its tokens are the chunk's.
  if (ids.length <= policy.chunkTokens) return [{ text, start: 0, end: Buffer.byteLength(text), tokens: ids.length, ids }]
  const bytes = utf8.encode(text)
  const lengths = ids.map(id => tokenizer.tokenBytes(id).length)
  const sum = lengths.reduce((a, b) => a + b, 0)
  // Token boundaries as byte offsets: exact when the tokens spell the bytes out, else from words.
  const bounds = sum === bytes.length ? offsets(lengths) : wordBounds(text, tokenizer)
  const count = bounds.length - 1
  const step = policy.chunkTokens - policy.overlapTokens
  const out: TextChunk[] = []
  for (let first = 0; first < count; first += step) {
    const last = Math.min(count, first + policy.chunkTokens)
    const start = charStart(bytes, bounds[first])
    const end = charStart(bytes, bounds[last])
    const chunk = decoder.decode(bytes.subarray(start, end))
    if (chunk.trim() !== '') out.push({ text: chunk, start, end, tokens: last - first })
    if (last === count) break
  }
  return out
}

function offsets (lengths: number[]): number[] {
  const out = [0]
  for (const n of lengths) out.push(out[out.length - 1] + n)
  return out
}

/** Byte offsets of token boundaries from words: each word with the spaces before it counts as many tokens as it encodes to, spread over its bytes. */
function wordBounds (text: string, tokenizer: ChunkTokenizer): number[] {
  const out = [0]
  let at = 0
  for (const word of text.match(/\s*\S+|\s+$/g) ?? []) {
    const size = utf8.encode(word).length
    const tokens = Math.max(1, tokenizer.encode(word).length)
    for (let k = 1; k <= tokens; k++) out.push(at + Math.round(size * k / tokens))
    at += size
  }
  return out
}

/** The offset moved back to the start of the UTF-8 character it falls in, so that no chunk starts or ends inside one. */
function charStart (bytes: Uint8Array, offset: number): number {
  let at = Math.min(offset, bytes.length)
  while (at > 0 && at < bytes.length && (bytes[at] & 0xc0) === 0x80) at--
  return at
}
