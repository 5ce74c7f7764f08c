import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import onnxProto from 'onnx-proto'
import { InferenceSession, Tensor } from 'onnxruntime-node'
import { ModelFormatError } from '../src/errors.ts'
import { appendedKeyValues } from '../src/kv-outputs.ts'
import { buildEncoder, initEncoderWeights } from '../src/models/encoder.ts'
import type { EncoderConfig } from '../src/models/encoder.ts'
import { buildGptDecoder, initGptWeights } from '../src/models/gpt.ts'
import type { GptConfig } from '../src/models/gpt.ts'
import { writeModel } from '../src/writer.ts'

const { onnx } = onnxProto
const GPT: GptConfig = { vocabSize: 64, hiddenSize: 16, layers: 2, heads: 2, maxPositions: 32, layerNormEps: 1e-5 }
const ENCODER: EncoderConfig = { vocabSize: 64, hiddenSize: 16, layers: 1, heads: 2, maxPositions: 32, typeVocabSize: 2, layerNormEps: 1e-12 }
const HEAD = GPT.hiddenSize / GPT.heads
const gpt = writeModel(buildGptDecoder(GPT, initGptWeights(GPT, 3))).model
const presents = Array.from({ length: GPT.layers }, (_, l) => [`present.${l}.key`, `present.${l}.value`]).flat()

const int64 = (values: number[], dims: number[]): Tensor => new Tensor('int64', BigInt64Array.from(values.map(BigInt)), dims)

/** One step of `ids` after `past` (per present, keys or values of the positions before). */
async function step (session: InferenceSession, ids: number[], past: Tensor[] | undefined): Promise<InferenceSession.OnnxValueMapType> {
  const before = past?.[0].dims[2] ?? 0
  const feeds: Record<string, Tensor> = {
    input_ids: int64(ids, [1, ids.length]),
    attention_mask: int64(Array(before + ids.length).fill(1), [1, before + ids.length]),
    position_ids: int64(ids.map((_, i) => before + i), [1, ids.length])
  }
  presents.forEach((name, i) => { feeds[name.replace('present', 'past_key_values')] = past?.[i] ?? new Tensor('float32', new Float32Array(0), [1, GPT.heads, 0, HEAD]) })
  return session.run(feeds)
}

/** The positions from `from` on of a [1, heads, length, head size] tensor. */
function positions (t: Tensor, from: number): number[] {
  const [, heads, length, size] = t.dims
  const data = t.data as Float32Array
  const kept: number[] = []
  for (let h = 0; h < heads; h++) kept.push(...data.subarray((h * length + from) * size, (h + 1) * length * size))
  return kept
}

describe('appendedKeyValues', () => {
  it('makes a decoder return only what each step adds, with the same logits', async () => {
    const rewritten = appendedKeyValues(gpt)
    assert.ok(rewritten != null)
    assert.deepEqual(Object.keys(rewritten.outputs).sort(), [...presents].sort())
    const original = await InferenceSession.create(gpt)
    const appended = await InferenceSession.create(rewritten.model)
    try {
      assert.deepEqual([...appended.outputNames].sort(), ['logits', ...presents.map(p => rewritten.outputs[p])].sort())
      // The prompt: what it adds is the whole present.
      const a = await step(original, [5, 9, 2], undefined)
      const b = await step(appended, [5, 9, 2], undefined)
      assert.deepEqual(b.logits.data, a.logits.data)
      for (const p of presents) assert.deepEqual(b[rewritten.outputs[p]].data, a[p].data)
      // A decoding step: one position, the last of the grown present.
      const past = presents.map(p => a[p] as Tensor)
      const c = await step(original, [7], past)
      const d = await step(appended, [7], past)
      assert.deepEqual(d.logits.data, c.logits.data)
      for (const p of presents) {
        assert.deepEqual(d[rewritten.outputs[p]].dims, [1, GPT.heads, 1, HEAD])
        assert.deepEqual(positions(d[rewritten.outputs[p]] as Tensor, 0), positions(c[p] as Tensor, 3))
      }
    } finally {
      await original.release()
      await appended.release()
    }
  })

  it('takes each past with room past its end, sliced off by the length the attention mask gives', async () => {
    const rewritten = appendedKeyValues(gpt)
    assert.ok(rewritten != null)
    const original = await InferenceSession.create(gpt)
    const appended = await InferenceSession.create(rewritten.model)
    try {
      const a = await step(original, [5, 9, 2], undefined)
      const exact = await step(original, [7], presents.map(p => a[p] as Tensor))
      // Three positions of the past, then two of room holding anything: the mask covers the three.
      const roomy = presents.map(p => {
        const t = a[p] as Tensor
        const data = new Float32Array(GPT.heads * 5 * HEAD).fill(1e3)
        for (let h = 0; h < GPT.heads; h++) data.set((t.data as Float32Array).subarray(h * 3 * HEAD, (h + 1) * 3 * HEAD), h * 5 * HEAD)
        return new Tensor('float32', data, [1, GPT.heads, 5, HEAD])
      })
      const feeds: Record<string, Tensor> = { input_ids: int64([7], [1, 1]), attention_mask: int64([1, 1, 1, 1], [1, 4]), position_ids: int64([3], [1, 1]) }
      presents.forEach((name, i) => { feeds[name.replace('present', 'past_key_values')] = roomy[i] })
      const d = await appended.run(feeds)
      assert.deepEqual(d.logits.data, exact.logits.data)
    } finally {
      await original.release()
      await appended.release()
    }
  })

  it('leaves alone a model without a cache, and a decoder whose cache is not grown by a Concat on the sequence axis', () => {
    assert.equal(appendedKeyValues(writeModel(buildEncoder(ENCODER, initEncoderWeights(ENCODER, 3))).model), undefined)
    const proto = onnx.ModelProto.decode(gpt)
    const concat = proto.graph?.node?.find(n => n.output?.[0] === 'present.1.value')
    const axis = concat?.attribute?.find(a => a.name === 'axis')
    assert.ok(axis != null)
    axis.i = 3
    assert.equal(appendedKeyValues(onnx.ModelProto.encode(proto).finish()), undefined)
  })

  it('refuses bytes that are no ONNX model', () => {
    assert.throws(() => appendedKeyValues(Uint8Array.of(0xff, 0xff, 0xff)), ModelFormatError)
  })
})
