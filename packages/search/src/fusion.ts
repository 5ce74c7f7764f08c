/**
 * Reciprocal rank fusion (Cormack, Clarke and Büttcher 2009): each list
 * gives an item 1 / (k + rank), and the sum ranks the union. It needs no
 * calibration between BM25 scores and cosine distances, which share no scale.
 */

/** The constant of the original paper: damps the weight of the very first ranks. */
export const RRF_K = 60

/** Items of several ranked lists (best first), fused: each with its score and its 1-based rank in each list it was in. */
export function reciprocalRankFusion<T> (lists: Record<string, T[]>, key: (item: T) => string, k = RRF_K): Array<{ item: T, score: number, ranks: Record<string, number> }> {
  const fused = new Map<string, { item: T, score: number, ranks: Record<string, number> }>()
  for (const [name, list] of Object.entries(lists)) {
    list.forEach((item, i) => {
      const id = key(item)
      const entry = fused.get(id) ?? { item, score: 0, ranks: {} }
      entry.score += 1 / (k + i + 1)
      entry.ranks[name] = i + 1
      fused.set(id, entry)
    })
  }
  return [...fused.values()].sort((a, b) => b.score - a.score)
}
