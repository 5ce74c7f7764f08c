import assert from 'node:assert/strict'
import { cp, mkdir, rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { buildGptDecoder, initGptWeights, writeModel } from '@node-daemon/onnx'
import type { GptConfig } from '@node-daemon/onnx'
import { loadModel } from '../src/index.ts'
import { mappedBytes } from './helpers/mapped.ts'
import { GPT, tinyModels } from './helpers/tiny-models.ts'
import type { TinyModels } from './helpers/tiny-models.ts'

describe('external data', { timeout: 120_000 }, () => {
  let models: TinyModels
  before(async () => { models = await tinyModels() })
  after(async () => { await rm(models.root, { recursive: true, force: true }) })

  /** A copy of the decoder whose weights go to `location`; `place` puts the bytes where the test wants them. */
  async function decoderWith (name: string, location: string, place: (dir: string, bytes: Uint8Array) => Promise<void>, config: GptConfig = GPT): Promise<string> {
    const dir = join(models.root, name, 'model')
    await cp(models.decoder, dir, { recursive: true })
    const written = writeModel(buildGptDecoder(config, initGptWeights(config, 7)), { externalData: { location, threshold: 1024 } })
    await writeFile(join(dir, 'model.onnx'), written.model)
    await place(dir, written.externalData as Uint8Array)
    return dir
  }

  it('loads weights that stay inside the model directory', async () => {
    const dir = await decoderWith('inside', 'weights/model.onnx_data', async (dir, bytes) => {
      await mkdir(join(dir, 'weights'))
      await writeFile(join(dir, 'weights', 'model.onnx_data'), bytes)
    })
    const model = await loadModel(dir)
    await model.release()
  })

  it('maps the weights in place, in the model\'s worker, rather than reading them into the heap', async () => {
    // A position table of 64 MiB: a Gather reads it, which onnxruntime runs on the mapped bytes (it copies the weights of the ops that prepack them, MatMul's).
    const config = { ...GPT, maxPositions: 1 << 19 }
    const table = config.maxPositions * config.hiddenSize * 4
    const dir = await decoderWith('mapped', 'model.onnx_data', async (dir, bytes) => { await writeFile(join(dir, 'model.onnx_data'), bytes) }, config)
    const data = join(dir, 'model.onnx_data')
    const model = await loadModel(dir)
    try {
      assert.ok(await mappedBytes(data) >= table, `${await mappedBytes(data)} bytes of model.onnx_data mapped, fewer than the table's ${table}`)
    } finally {
      await model.release()
    }
    assert.equal(await mappedBytes(data), 0, 'the mapping outlives the model')
  })

  it('refuses a location outside the directory, and names no path of the host', async () => {
    const dir = await decoderWith('outside', '../identity.key', async (dir, bytes) => { await writeFile(join(dir, '..', 'identity.key'), bytes) })
    await assert.rejects(loadModel(dir), (err: Error) => err.name === 'InvalidModelError' && /outside the model directory/.test(err.message) && !err.message.includes(models.root))
  })

  it('refuses an absolute location', async () => {
    const target = join(models.root, 'absolute.bin')
    const dir = await decoderWith('absolute', target, async (_dir, bytes) => { await writeFile(target, bytes) })
    await assert.rejects(loadModel(dir), { name: 'InvalidModelError', message: /outside the model directory/ })
  })

  it('refuses a location behind a symbolic link, of a file or of a directory', async () => {
    const file = await decoderWith('link', 'model.onnx_data', async (dir, bytes) => {
      await writeFile(join(dir, '..', 'real.bin'), bytes)
      await symlink(join(dir, '..', 'real.bin'), join(dir, 'model.onnx_data'))
    })
    await assert.rejects(loadModel(file), { name: 'InvalidModelError', message: /symbolic link/ })
    const directory = await decoderWith('linked-dir', 'w/model.onnx_data', async (dir, bytes) => {
      await mkdir(join(dir, '..', 'elsewhere'))
      await writeFile(join(dir, '..', 'elsewhere', 'model.onnx_data'), bytes)
      await symlink(join(dir, '..', 'elsewhere'), join(dir, 'w'))
    })
    await assert.rejects(loadModel(directory), { name: 'InvalidModelError', message: /symbolic link/ })
  })

  it('says which external file is missing without naming the host path', async () => {
    const dir = await decoderWith('missing', 'gone.bin', async () => {})
    await assert.rejects(loadModel(dir), (err: Error) => err.name === 'InvalidModelError' && /gone\.bin/.test(err.message) && !err.message.includes(models.root))
  })
})
