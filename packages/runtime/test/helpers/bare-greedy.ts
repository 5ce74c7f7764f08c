/**
 * Greedy decoding the plain way, as a reference for the runtime: the whole
 * sequence through model.onnx at every step, no cache, the argmax appended,
 * until `steps` tokens or a stop id.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { argmax } from '../../src/sampling.ts'

export async function bareGreedy (dir: string, prompt: number[], steps: number, stops: ReadonlySet<number> = new Set()): Promise<number[]> {
  const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'))
  const session = await ort.InferenceSession.create(join(dir, 'model.onnx'))
  const ids = [...prompt]
  try {
    for (let s = 0; s < steps; s++) {
      const n = ids.length
      const feeds: Record<string, ort.Tensor> = {
        input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, n]),
        attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
        position_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map((_, i) => BigInt(i))), [1, n])
      }
      for (let l = 0; l < config.n_layer; l++) {
        for (const kv of ['key', 'value']) feeds[`past_key_values.${l}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [1, config.n_head, 0, config.n_embd / config.n_head])
      }
      const out = await session.run(feeds)
      const vocab = out.logits.dims[2]
      const next = argmax((out.logits.data as Float32Array).subarray((n - 1) * vocab, n * vocab))
      if (stops.has(next)) break
      ids.push(next)
    }
  } finally {
    await session.release()
  }
  return ids.slice(prompt.length)
}
