import assert from 'node:assert/strict'

/** The items of a stream, at most `max` of them, so that a stream that does not end cannot hang a test. */
export async function collect<T> (source: AsyncIterable<T> | Iterable<T>, max = 10_000): Promise<T[]> {
  const out: T[] = []
  for await (const item of source) {
    out.push(item)
    if (out.length >= max) break
  }
  return out
}

/** The lines of a 200 NDJSON answer, parsed. */
export async function ndjson (res: Response): Promise<any[]> {
  assert.equal(res.status, 200)
  return (await res.text()).trim().split('\n').filter(l => l !== '').map(l => JSON.parse(l))
}
