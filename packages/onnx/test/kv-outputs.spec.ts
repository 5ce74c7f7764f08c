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

  /**
   * The logits of token 7 after [5, 9, 2], run by `rewritten` on a past of
   * those three positions and then two of room holding anything, under
   * `mask`, beside the original's on the exact past.
   */
  async function afterRoom (rewritten: Uint8Array, mask: number[]): Promise<{ got: Float32Array, want: Float32Array }> {
    const original = await InferenceSession.create(gpt)
    const appended = await InferenceSession.create(rewritten)
    try {
      const a = await step(original, [5, 9, 2], undefined)
      const exact = await step(original, [7], presents.map(p => a[p] as Tensor))
      const feeds: Record<string, Tensor> = { input_ids: int64([7], [1, 1]), attention_mask: int64(mask, [1, mask.length]), position_ids: int64([3], [1, 1]) }
      for (const p of presents) {
        const data = new Float32Array(GPT.heads * 5 * HEAD).fill(1e3)
        for (let h = 0; h < GPT.heads; h++) data.set(((a[p] as Tensor).data as Float32Array).subarray(h * 3 * HEAD, (h + 1) * 3 * HEAD), h * 5 * HEAD)
        feeds[p.replace('present', 'past_key_values')] = new Tensor('float32', data, [1, GPT.heads, 5, HEAD])
      }
      const d = await appended.run(feeds)
      return { got: d.logits.data as Float32Array, want: exact.logits.data as Float32Array }
    } finally {
      await original.release()
      await appended.release()
    }
  }

  it('takes each past with room past its end, sliced off by the length the attention mask gives', async () => {
    const rewritten = appendedKeyValues(gpt)
    assert.equal(rewritten?.sliced, true)
    // The mask covers the three positions of the past and the step's.
    const { got, want } = await afterRoom(rewritten.model, [1, 1, 1, 1])
    assert.deepEqual(got, want)
  })

  it('with roomMasked, takes each past as it is fed, room and all, for the mask to hide: no slice copies it at each step', async () => {
    const rewritten = appendedKeyValues(gpt, { roomMasked: true })
    assert.equal(rewritten?.sliced, false)
    assert.deepEqual(onnx.ModelProto.decode(rewritten.model).graph?.node?.filter(n => n.opType === 'Slice' && n.name?.startsWith('appended_kv/')), [])
    const { got, want } = await afterRoom(rewritten.model, [1, 1, 1, 0, 0, 1])
    got.forEach((x, i) => { assert.ok(Math.abs(x - want[i]) < 1e-5, `logit ${i}: ${x} against ${want[i]}`) })
    // A graph that takes no position_ids counts positions along the mask: its pasts are sliced still.
    const proto = onnx.ModelProto.decode(gpt)
    for (const input of proto.graph?.input ?? []) if (input.name === 'position_ids') input.name = 'positions'
    for (const node of proto.graph?.node ?? []) node.input = (node.input ?? []).map(i => i === 'position_ids' ? 'positions' : i)
    assert.equal(appendedKeyValues(onnx.ModelProto.encode(proto).finish(), { roomMasked: true })?.sliced, true)
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
