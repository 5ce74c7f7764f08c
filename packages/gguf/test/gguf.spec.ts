import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { F16, F32, GgufFormatError, readGguf, summarize, writeGguf } from '../src/index.ts'

describe('GGUF reader and writer', () => {
  let dir: string
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'gguf-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('reads back the metadata of every type and the tensor infos it wrote, with the data aligned', async () => {
    const path = join(dir, 'a.gguf')
    const weights = Float32Array.from({ length: 6 }, (_, i) => i / 2)
    await writeGguf(path, {
      'general.architecture': { type: 'string', value: 'llama' },
      'general.file_type': { type: 'uint32', value: 15 },
      'llama.context_length': { type: 'uint32', value: 8192 },
      'llama.rope.freq_base': { type: 'float32', value: 500000 },
      'llama.big': { type: 'uint64', value: 2n ** 40n },
      'llama.negative': { type: 'int32', value: -3 },
      'tokenizer.ggml.add_bos_token': { type: 'bool', value: true },
      'tokenizer.ggml.tokens': { type: 'array', of: 'string', value: ['a', 'ü', '<s>'] },
      'tokenizer.ggml.token_type': { type: 'array', of: 'int32', value: [1, 1, 3] }
    }, [
      { name: 'w', dims: [3, 2], type: F32, data: new Uint8Array(weights.buffer) },
      { name: 'h', dims: [3], type: F16, data: new Uint8Array(6) }
    ])
    const file = await readGguf(path)
    assert.equal(file.version, 3)
    assert.deepEqual(file.metadata, {
      'general.architecture': 'llama',
      'general.file_type': 15,
      'llama.context_length': 8192,
      'llama.rope.freq_base': 500000,
      'llama.big': 2 ** 40,
      'llama.negative': -3,
      'tokenizer.ggml.add_bos_token': true,
      'tokenizer.ggml.tokens': ['a', 'ü', '<s>'],
      'tokenizer.ggml.token_type': [1, 1, 3]
    })
    assert.deepEqual(file.tensors, [{ name: 'w', dims: [3, 2], type: F32, offset: 0 }, { name: 'h', dims: [3], type: F16, offset: 32 }])
    assert.equal(file.dataOffset % 32, 0)
    const bytes = await readFile(path)
    assert.deepEqual(new Float32Array(bytes.buffer.slice(bytes.byteOffset + file.dataOffset, bytes.byteOffset + file.dataOffset + 24)), weights)
    assert.deepEqual(summarize(file), { architecture: 'llama', parameters: 9, quantization: 'Q4_K_M', contextLength: 8192 })
  })

  it('names the quantization by the weights most of the elements have when the file has no file type', async () => {
    const path = join(dir, 'b.gguf')
    await writeGguf(path, { 'general.architecture': { type: 'string', value: 'bert' } }, [
      { name: 'norm', dims: [32], type: F32, data: new Uint8Array(128) },
      { name: 'q', dims: [64, 2], type: 8, data: new Uint8Array(4 * 34) }
    ])
    assert.deepEqual(summarize(await readGguf(path)), { architecture: 'bert', parameters: 160, quantization: 'Q8_0' })
  })

  it('refuses what is not a GGUF file, and a truncated header', async () => {
    const other = join(dir, 'c.onnx')
    await writeFile(other, 'not gguf at all')
    await assert.rejects(readGguf(other), GgufFormatError)
    const path = join(dir, 'd.gguf')
    await writeGguf(path, { 'general.name': { type: 'string', value: 'x'.repeat(100) } }, [])
    const truncated = join(dir, 'e.gguf')
    await writeFile(truncated, (await readFile(path)).subarray(0, 60))
    await assert.rejects(readGguf(truncated), (err: Error) => err.name === 'GgufFormatError' && /truncated/.test(err.message))
  })
})
