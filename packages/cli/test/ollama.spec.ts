import assert from 'node:assert/strict'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { readOllamaModels } from '../src/ollama.ts'
import { writeOllamaTree } from './helpers/ollama-tree.ts'

describe('reading an Ollama installation', () => {
  let dir: string
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'ollama-models-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('names each model as Ollama does and reads its template, system prompt, parameters and license', async () => {
    const root = join(dir, 'good')
    await writeOllamaTree(root, [
      { name: 'llama3.2', tag: '1b', layers: { model: 'GGUF-a', template: '{{ .Prompt }}', system: 'Be brief.', params: '{"stop":["<|eot_id|>"],"temperature":0.6}', license: 'LLAMA 3.2 LICENSE' } },
      { path: 'registry.ollama.ai/someone', name: 'tiny', tag: 'latest', layers: { model: 'GGUF-b' } },
      { path: 'hf.co/org', name: 'thing-GGUF', tag: 'Q4_K_M', layers: { model: 'GGUF-c' } }
    ])
    const models = await readOllamaModels(root)
    assert.deepEqual(models.map(m => m.name), ['hf.co/org/thing-GGUF:Q4_K_M', 'llama3.2:1b', 'someone/tiny:latest'])
    const llama = models[1]
    assert.deepEqual({ template: llama.template, system: llama.system, parameters: llama.parameters, size: llama.model.size }, { template: '{{ .Prompt }}', system: 'Be brief.', parameters: { stop: ['<|eot_id|>'], temperature: 0.6 }, size: 6 })
    assert.equal(llama.license?.size, 17)
    assert.equal(models[2].template, undefined)
  })

  it('refuses a blob that does not match its digest, and a missing one', async () => {
    const root = join(dir, 'bad')
    await writeOllamaTree(root, [{ name: 'x', tag: 'latest', layers: { model: 'GGUF-x' } }])
    const [blob] = await readdir(join(root, 'blobs'))
    await writeFile(join(root, 'blobs', blob), 'GGUF-y')
    await assert.rejects(readOllamaModels(root), /x:latest: the blob sha256:\w+ does not match its digest/)
    await rm(join(root, 'blobs', blob))
    await assert.rejects(readOllamaModels(root), /x:latest: the blob sha256:\w+ is missing/)
  })

  it('finds nothing where there is no installation', async () => {
    assert.deepEqual(await readOllamaModels(join(dir, 'absent')), [])
  })
})
