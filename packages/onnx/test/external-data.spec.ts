import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { buildGptDecoder, externalDataLocations, initGptWeights, writeModel } from '../src/index.ts'
import type { GptConfig } from '../src/index.ts'

const CONFIG: GptConfig = { vocabSize: 64, hiddenSize: 16, layers: 1, heads: 2, maxPositions: 32, layerNormEps: 1e-5 }

describe('externalDataLocations', () => {
  let dir: string
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'external-data-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  const model = buildGptDecoder(CONFIG, initGptWeights(CONFIG, 1))

  it('finds the file every external tensor names, without reading the tensors', async () => {
    await writeFile(join(dir, 'split.onnx'), writeModel(model, { externalData: { location: 'weights/../model.onnx_data', threshold: 256 } }).model)
    assert.deepEqual(await externalDataLocations(join(dir, 'split.onnx')), ['weights/../model.onnx_data'])
    await writeFile(join(dir, 'whole.onnx'), writeModel(model).model)
    assert.deepEqual(await externalDataLocations(join(dir, 'whole.onnx')), [])
  })

  it('refuses a file that is not a model rather than reading past it', async () => {
    const bytes = writeModel(model, { externalData: { location: 'x', threshold: 256 } }).model
    await writeFile(join(dir, 'cut.onnx'), bytes.subarray(0, bytes.byteLength - 7))
    await assert.rejects(externalDataLocations(join(dir, 'cut.onnx')), { name: 'ModelFormatError' })
    await writeFile(join(dir, 'text.onnx'), 'not a model at all, just some words\n')
    await assert.rejects(externalDataLocations(join(dir, 'text.onnx')), { name: 'ModelFormatError' })
  })
})
