/**
 * A model's vocabulary as the bytes each token id stands for, read from a
 * Hugging Face tokenizer.json, and the trie of those byte strings that the
 * mask computation walks.
 */

export interface Vocabulary {
  /** The bytes each token id stands for; empty for special and control tokens, which are never allowed inside a constrained output. */
  tokens: Uint8Array[]
  /** Token ids that end generation. */
  eos: number[]
}

const EMPTY = new Uint8Array(0)
const encoder = new TextEncoder()

/** GPT-2's bytes_to_unicode, inverted: the character a byte-level BPE writes for each byte, back to the byte. */
function byteLevelDecoder (): Map<string, number> {
  const bs: number[] = []
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b)
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b)
  for (let b = 0xae; b <= 0xff; b++) bs.push(b)
  const cs = [...bs]
  let n = 0
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) { bs.push(b); cs.push(256 + n); n++ }
  }
  const map = new Map<string, number>()
  bs.forEach((b, i) => map.set(String.fromCodePoint(cs[i]), b))
  return map
}

type Json = Record<string, unknown>

/** Every component type named in a (possibly Sequence) decoder / pre-tokenizer / normalizer. */
function componentTypes (component: unknown, out: Json[] = []): Json[] {
  if (component == null || typeof component !== 'object') return out
  const c = component as Json
  out.push(c)
  for (const key of ['decoders', 'pretokenizers', 'normalizers']) {
    const list = c[key]
    if (Array.isArray(list)) for (const inner of list) componentTypes(inner, out)
  }
  return out
}

/**
 * Reads a Hugging Face tokenizer.json into the byte strings of its tokens.
 * Byte-level BPE (GPT-2's byte-to-unicode mapping) when the decoder or
 * pre-tokenizer is ByteLevel; otherwise SentencePiece conventions (▁ for a
 * space, `<0xNN>` byte fallback, Metaspace / Replace decoders); WordPiece
 * continuation pieces (`##x`) lose their prefix, other pieces are taken as
 * written (best effort: WordPiece inserts spaces between words when
 * decoding, which this does not model). Added tokens marked special are
 * empty. Note that a Metaspace decoder strips the space of the very first
 * token of a text; constrained outputs here never begin with a space.
 */
export function vocabularyFromTokenizer (tokenizerJson: object, eos: number[]): Vocabulary {
  const json = tokenizerJson as Json
  const model = (json.model ?? {}) as Json
  const decoders = componentTypes(json.decoder)
  const pre = componentTypes(json.pre_tokenizer)
  const byteLevel = [...decoders, ...pre].some(c => c.type === 'ByteLevel')
  const pieces = new Map<number, string>()
  if (Array.isArray(model.vocab)) {
    (model.vocab as Array<[string, number]>).forEach(([piece], id) => pieces.set(id, piece))
  } else if (model.vocab != null && typeof model.vocab === 'object') {
    for (const [piece, id] of Object.entries(model.vocab as Record<string, number>)) pieces.set(id, piece)
  }
  const wordPiece = model.type === 'WordPiece'
  const prefix = typeof model.continuing_subword_prefix === 'string' ? model.continuing_subword_prefix : '##'
  const byteMap = byteLevel ? byteLevelDecoder() : null
  const metaspace = [...decoders, ...pre].find(c => c.type === 'Metaspace' && typeof c.replacement === 'string')
  const space = typeof metaspace?.replacement === 'string' ? metaspace.replacement : '\u2581'
  let size = 0
  for (const id of pieces.keys()) size = Math.max(size, id + 1)
  const added = Array.isArray(json.added_tokens) ? json.added_tokens as Json[] : []
  for (const a of added) size = Math.max(size, (a.id as number) + 1)
  const tokens: Uint8Array[] = new Array(size).fill(EMPTY)
  for (const [id, piece] of pieces) tokens[id] = pieceBytes(piece)
  for (const a of added) {
    const id = a.id as number
    tokens[id] = a.special === true ? EMPTY : encoder.encode(String(a.content))
  }
  for (const id of eos) if (id >= 0 && id < tokens.length) tokens[id] = EMPTY
  return { tokens, eos: [...eos] }

  function pieceBytes (piece: string): Uint8Array {
    if (byteMap != null) {
      const out = new Uint8Array(piece.length)
      let n = 0
      for (const ch of piece) {
        const b = byteMap.get(ch)
        if (b == null) return encoder.encode(piece) // not a byte-level piece (e.g. an added token kept in vocab)
        out[n++] = b
      }
      return out.subarray(0, n)
    }
    const fallback = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece)
    if (fallback != null) return Uint8Array.of(parseInt(fallback[1], 16))
    if (wordPiece) return encoder.encode(piece.startsWith(prefix) ? piece.slice(prefix.length) : piece)
    return encoder.encode(piece.replaceAll(space, ' '))
  }
}

/**
 * The vocabulary's byte strings as a trie in preorder: node j (j ≥ 1) has a
 * byte, a depth and the index just past its subtree, so that a walk can skip
 * a whole subtree when its first byte is refused. Node 0 is the root.
 */
export interface TokenTrie {
  size: number
  byte: Uint8Array
  depth: Uint16Array
  end: Int32Array
  /** Tokens ending at node j: ids[first[j]] .. ids[first[j + 1]] */
  first: Int32Array
  ids: Int32Array
  maxDepth: number
  /** For each byte, whether a token consists of that byte alone. */
  singleByte: Uint8Array
}

const tries = new WeakMap<Vocabulary, TokenTrie>()

export function tokenTrie (vocab: Vocabulary): TokenTrie {
  let trie = tries.get(vocab)
  if (trie == null) { trie = buildTrie(vocab); tries.set(vocab, trie) }
  return trie
}

function buildTrie (vocab: Vocabulary): TokenTrie {
  const eos = new Set(vocab.eos)
  const order: number[] = []
  vocab.tokens.forEach((t, id) => { if (t.length > 0 && !eos.has(id)) order.push(id) })
  // latin1 strings compare in byte order, natively
  const keys: string[] = new Array(vocab.tokens.length)
  for (const id of order) keys[id] = Buffer.from(vocab.tokens[id].buffer, vocab.tokens[id].byteOffset, vocab.tokens[id].length).toString('latin1')
  order.sort((a, b) => keys[a] < keys[b] ? -1 : keys[a] > keys[b] ? 1 : a - b)
  let nodes = 1
  let prev: Uint8Array = EMPTY
  for (const id of order) {
    const t = vocab.tokens[id]
    let l = 0
    while (l < t.length && l < prev.length && t[l] === prev[l]) l++
    nodes += t.length - l
    prev = t
  }
  const byte = new Uint8Array(nodes)
  const depth = new Uint16Array(nodes)
  const end = new Int32Array(nodes)
  const owner = new Int32Array(order.length)
  const singleByte = new Uint8Array(256)
  let n = 1
  let maxDepth = 0
  prev = EMPTY
  order.forEach((id, i) => {
    const t = vocab.tokens[id]
    let l = 0
    while (l < t.length && l < prev.length && t[l] === prev[l]) l++
    for (let k = l; k < t.length; k++) { byte[n] = t[k]; depth[n] = k + 1; n++ }
    owner[i] = n - 1
    if (t.length === 1) singleByte[t[0]] = 1
    maxDepth = Math.max(maxDepth, t.length)
    prev = t
  })
  // end[j]: the first node after j at depth ≤ depth[j]
  const stack: number[] = []
  for (let j = 1; j < nodes; j++) {
    while (stack.length > 0 && depth[stack[stack.length - 1]] >= depth[j]) end[stack.pop() as number] = j
    stack.push(j)
  }
  for (const j of stack) end[j] = nodes
  end[0] = nodes
  const first = new Int32Array(nodes + 1)
  for (const o of owner) first[o + 1]++
  for (let j = 0; j < nodes; j++) first[j + 1] += first[j]
  const fill = first.slice(0, nodes)
  const ids = new Int32Array(order.length)
  order.forEach((id, i) => { ids[fill[owner[i]]++] = id })
  return { size: nodes, byte, depth, end, first, ids, maxDepth, singleByte }
}
