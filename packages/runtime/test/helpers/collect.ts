import assert from 'node:assert/strict'
import type { GenerationEvent, GenerationStats } from '../../src/batcher.ts'

/** A generation's streamed text and its done event. */
export async function collect (events: AsyncIterable<GenerationEvent>): Promise<{ streamed: string, stats: GenerationStats }> {
  let streamed = ''
  let stats: GenerationStats | undefined
  for await (const e of events) {
    if (e.type === 'chunk') streamed += e.chunk.text
    else stats = e.stats
  }
  assert.ok(stats != null, 'the stream ends with done')
  return { streamed, stats }
}
