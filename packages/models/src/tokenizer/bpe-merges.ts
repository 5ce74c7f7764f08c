/**
 * Greedy BPE merge learning over counted words. Each step merges the most
 * frequent adjacent pair; ties go to the pair with the smaller ids (first
 * symbol, then second), as in Hugging Face's BpeTrainer, so the result
 * depends only on the word counts.
 *
 * A lazy max-heap holds (count, pair) entries and every changed count is
 * pushed anew, stale entries being skipped when popped; an index from pair
 * to the words containing it limits each step to the words it changes.
 */

export interface LearnedMerges {
  /** The alphabet followed by each new token in the order learned; a token's index is its id offset. */
  symbols: string[]
  /** Merges in rank order. */
  merges: Array<[string, string]>
}

/**
 * Learns merges until `maxNewTokens` new tokens exist or no adjacent pair is
 * left. `words` maps a word, as a string of alphabet symbols, to its count.
 */
export function learnMerges (words: ReadonlyMap<string, number>, alphabet: readonly string[], maxNewTokens: number): LearnedMerges {
  const symbols = [...alphabet]
  const idOf = new Map(symbols.map((symbol, id) => [symbol, id]))
  // Pairs are keyed as first * stride + second, which orders keys as the tie-break wants.
  const stride = alphabet.length + maxNewTokens
  const sequences: number[][] = []
  const counts: number[] = []
  for (const [word, count] of words) {
    sequences.push(Array.from(word, (symbol) => {
      const id = idOf.get(symbol)
      if (id === undefined) throw new RangeError(`symbol ${JSON.stringify(symbol)} is not in the alphabet`)
      return id
    }))
    counts.push(count)
  }

  const pairCounts = new Map<number, number>()
  const pairWords = new Map<number, number[]>()
  const addPairs = (w: number, sign: 1 | -1, touched: Set<number>): void => {
    const sequence = sequences[w]
    for (let i = 0; i + 1 < sequence.length; i++) {
      const key = sequence[i] * stride + sequence[i + 1]
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + sign * counts[w])
      touched.add(key)
    }
  }
  const indexWord = (w: number, onlyWith: number): void => {
    const sequence = sequences[w]
    for (let i = 0; i + 1 < sequence.length; i++) {
      if (onlyWith >= 0 && sequence[i] !== onlyWith && sequence[i + 1] !== onlyWith) continue
      const key = sequence[i] * stride + sequence[i + 1]
      let list = pairWords.get(key)
      if (list === undefined) pairWords.set(key, list = [])
      // Duplicates from one word are cheap to skip later; only adjacent ones are avoided here.
      if (list[list.length - 1] !== w) list.push(w)
    }
  }

  const initial = new Set<number>()
  for (let w = 0; w < sequences.length; w++) {
    addPairs(w, 1, initial)
    indexWord(w, -1)
  }
  const heap = new PairHeap()
  for (const key of initial) heap.push(pairCounts.get(key) ?? 0, key)

  const merges: Array<[string, string]> = []
  const visitedAt = new Int32Array(sequences.length).fill(-1)
  let added = 0
  while (added < maxNewTokens && heap.size > 0) {
    const { count, key } = heap.pop()
    if (pairCounts.get(key) !== count) continue
    const first = Math.floor(key / stride)
    const second = key % stride
    const content = symbols[first] + symbols[second]
    // Should two pairs ever spell the same token, it keeps one id, as in Hugging Face's trainer.
    let merged = idOf.get(content)
    if (merged === undefined) {
      merged = symbols.length
      symbols.push(content)
      idOf.set(content, merged)
      added++
    }
    merges.push([symbols[first], symbols[second]])

    const touched = new Set<number>()
    const step = merges.length
    for (const w of pairWords.get(key) ?? []) {
      if (visitedAt[w] === step) continue
      visitedAt[w] = step
      const sequence = sequences[w]
      const next: number[] = []
      for (let i = 0; i < sequence.length; i++) {
        if (i + 1 < sequence.length && sequence[i] === first && sequence[i + 1] === second) {
          next.push(merged)
          i++
        } else {
          next.push(sequence[i])
        }
      }
      if (next.length === sequence.length) continue
      addPairs(w, -1, touched)
      sequences[w] = next
      addPairs(w, 1, touched)
      indexWord(w, merged)
    }
    pairWords.delete(key)
    for (const changed of touched) {
      const current = pairCounts.get(changed) ?? 0
      if (current > 0) heap.push(current, changed)
      else pairCounts.delete(changed)
    }
  }
  return { symbols, merges }
}

/** A binary max-heap of (count, key), larger count first, then smaller key. */
class PairHeap {
  private readonly counts: number[] = []
  private readonly keys: number[] = []

  get size (): number {
    return this.counts.length
  }

  push (count: number, key: number): void {
    this.counts.push(count)
    this.keys.push(key)
    let i = this.counts.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!this.before(i, parent)) break
      this.swap(i, parent)
      i = parent
    }
  }

  pop (): { count: number, key: number } {
    const top = { count: this.counts[0], key: this.keys[0] }
    const lastCount = this.counts.pop() as number
    const lastKey = this.keys.pop() as number
    if (this.counts.length > 0) {
      this.counts[0] = lastCount
      this.keys[0] = lastKey
      let i = 0
      for (;;) {
        const left = 2 * i + 1
        const right = left + 1
        let best = i
        if (left < this.counts.length && this.before(left, best)) best = left
        if (right < this.counts.length && this.before(right, best)) best = right
        if (best === i) break
        this.swap(i, best)
        i = best
      }
    }
    return top
  }

  private before (i: number, j: number): boolean {
    return this.counts[i] > this.counts[j] || (this.counts[i] === this.counts[j] && this.keys[i] < this.keys[j])
  }

  private swap (i: number, j: number): void {
    const count = this.counts[i]
    this.counts[i] = this.counts[j]
    this.counts[j] = count
    const key = this.keys[i]
    this.keys[i] = this.keys[j]
    this.keys[j] = key
  }
}
