/**
 * A fake Ollama models directory, laid out as Ollama writes one: each layer
 * a blob named by its SHA-256, each model a manifest listing its layers by
 * media type under manifests/<registry>/<namespace>/<name>/<tag>.
 */
import { createHash } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

export interface FakeOllamaModel {
  /** registry.ollama.ai/library unless given. */
  path?: string
  name: string
  tag: string
  /** By the last part of the media type: model, template, system, params, license. */
  layers: Record<string, Uint8Array | string>
}

export async function writeOllamaTree (modelsDir: string, models: FakeOllamaModel[]): Promise<void> {
  await mkdir(join(modelsDir, 'blobs'), { recursive: true })
  for (const m of models) {
    const layers = []
    for (const [type, content] of Object.entries(m.layers)) {
      const bytes = typeof content === 'string' ? Buffer.from(content) : content
      const hex = createHash('sha256').update(bytes).digest('hex')
      await writeFile(join(modelsDir, 'blobs', `sha256-${hex}`), bytes)
      layers.push({ mediaType: `application/vnd.ollama.image.${type}`, digest: `sha256:${hex}`, size: bytes.length })
    }
    const dir = join(modelsDir, 'manifests', m.path ?? 'registry.ollama.ai/library', m.name)
    await mkdir(dir, { recursive: true })
    const config = { mediaType: 'application/vnd.docker.container.image.v1+json', digest: `sha256:${'0'.repeat(64)}`, size: 2 }
    await writeFile(join(dir, m.tag), JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.v2+json', config, layers }))
  }
}
