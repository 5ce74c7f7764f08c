/**
 * Greedy decoding the plain way, as a reference for the runtime: the whole
 * sequence through model.onnx at every step, no cache (every past empty, of
 * the shape and type the graph declares), the argmax appended, until `steps`
 * tokens or a stop id.
 */
import { join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { argmax } from '../../src/sampling.ts'

export async function bareGreedy (dir: string, prompt: number[], steps: number, stops: ReadonlySet<number> = new Set()): Promise<number[]> {
  const session = await ort.InferenceSession.create(join(dir, 'model.onnx'))
  const ids = [...prompt]
  try {
    for (let s = 0; s < steps; s++) {
      const n = ids.length
      const feeds: Record<string, ort.Tensor> = {
        input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, n]),
        attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n])
      }
      if (session.inputNames.includes('position_ids')) feeds.position_ids = new ort.Tensor('int64', BigInt64Array.from(ids.map((_, i) => BigInt(i))), [1, n])
      for (const meta of session.inputMetadata) {
        if (!meta.name.startsWith('past_key_values.') || !meta.isTensor) continue
        const [, heads, , headDim] = meta.shape
        feeds[meta.name] = new ort.Tensor(meta.type as 'float32' | 'float16', [], [1, Number(heads), 0, Number(headDim)])
      }
      const out = await session.run(feeds)
      const vocab = out.logits.dims[2]
      const last = Float32Array.from(out.logits.data as Float32Array).subarray((n - 1) * vocab, n * vocab)
      const next = argmax(last)
      if (stops.has(next)) break
      ids.push(next)
    }
  } finally {
    await session.release()
  }
  return ids.slice(prompt.length)
}
