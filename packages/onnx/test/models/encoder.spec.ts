import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { InferenceSession, Tensor } from 'onnxruntime-node'
import { buildEncoder, buildEncoderLoss, encoderHfConfig, encoderParameterShapes, initEncoderWeights } from '../../src/models/encoder.ts'
import type { EncoderConfig } from '../../src/models/encoder.ts'
import { writeModel } from '../../src/writer.ts'

const config: EncoderConfig = { vocabSize: 64, hiddenSize: 32, layers: 2, heads: 4, maxPositions: 16, typeVocabSize: 2, layerNormEps: 1e-12 }
const weights = initEncoderWeights(config, 7)
const encoder = await InferenceSession.create(writeModel(buildEncoder(config, weights)).model)

const int64 = (rows: number[][]): Tensor => new Tensor('int64', BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0].length])

async function encode (ids: number[][], mask: number[][], types: number[][]): Promise<Tensor> {
  const out = await encoder.run({ input_ids: int64(ids), attention_mask: int64(mask), token_type_ids: int64(types) })
  return out.last_hidden_state
}

describe('encoder', () => {
  it('gives a hidden state per token', async () => {
    const ids = [[2, 10, 11, 12, 3], [2, 20, 21, 22, 3]]
    const hidden = await encode(ids, ids.map(r => r.map(() => 1)), ids.map(r => r.map(() => 0)))
    assert.deepEqual(hidden.dims, [2, 5, config.hiddenSize])
    assert.equal(encoderHfConfig(config).model_type, 'bert')
  })

  it('leaves the outputs of real tokens unchanged by padding', async () => {
    const tokens = [2, 30, 31, 3]
    const types = [0, 0, 1, 1]
    const alone = (await encode([tokens], [[1, 1, 1, 1]], [types])).data as Float32Array
    // Padded to 7, with a second row so that the padding also differs across the batch.
    const padded = await encode(
      [[...tokens, 0, 5, 9], [2, 40, 41, 42, 43, 44, 3]],
      [[1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]],
      [[...types, 0, 1, 0], [0, 0, 0, 0, 0, 0, 0]]
    )
    const row = (padded.data as Float32Array).subarray(0, tokens.length * config.hiddenSize)
    for (let i = 0; i < row.length; i++) assert.ok(Math.abs(row[i] - alone[i]) < 1e-5, `at ${i}: ${row[i]} vs ${alone[i]}`)
  })

  it('computes a masked-LM loss of about ln(vocab) at init', async () => {
    const shape = { batchSize: 2, sequenceLength: 6 }
    const loss = await InferenceSession.create(writeModel(buildEncoderLoss(config, shape)).model)
    const feeds: Record<string, Tensor> = {
      input_ids: int64([[2, 4, 1, 6, 3, 0], [2, 1, 9, 10, 11, 3]]),
      attention_mask: int64([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]]),
      token_type_ids: int64([[0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1]]),
      labels: int64([[-100, -100, 5, -100, -100, -100], [-100, 8, -100, -100, -100, -100]])
    }
    for (const { name, dims } of encoderParameterShapes(config)) feeds[name] = new Tensor('float32', weights[name], dims)
    const value = ((await loss.run(feeds)).loss.data as Float32Array)[0]
    assert.ok(Math.abs(value - Math.log(config.vocabSize)) < 0.2, `${value} vs ln(64)`)
  })
})
