/**
 * An Ollama installation's models as its own files hold them: the manifests
 * under manifests/<registry>/<namespace>/<name>/<tag>, each a JSON list of
 * layers by media type, and the blobs they name under blobs/sha256-<hex>,
 * checked against their digests before anything is imported.
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readdir, readFile, stat } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'

const LAYER = 'application/vnd.ollama.image.'

export interface OllamaModel {
  /** As Ollama names it: llama3.2:1b, or namespace/name:tag outside its library. */
  name: string
  /** The GGUF blob. */
  model: { file: string, size: number }
  /** The license blob, whose text becomes the model's LICENSE. */
  license?: { file: string, size: number }
  template?: string
  system?: string
  parameters?: Record<string, unknown>
}

/** Where Ollama keeps its models: $OLLAMA_MODELS, else ~/.ollama/models. */
export function defaultOllamaModels (): string {
  return process.env.OLLAMA_MODELS ?? join(homedir(), '.ollama', 'models')
}

interface Layer { mediaType: string, digest: string, size: number }

/** Every model of the installation at `modelsDir`, its blobs checked; fails on the first blob that is missing or does not match its digest. */
export async function readOllamaModels (modelsDir: string): Promise<OllamaModel[]> {
  const root = join(modelsDir, 'manifests')
  const models: OllamaModel[] = []
  for (const host of await dirs(root)) {
    for (const namespace of await dirs(join(root, host))) {
      for (const repository of await dirs(join(root, host, namespace))) {
        const tags = await readdir(join(root, host, namespace, repository), { withFileTypes: true })
        for (const tag of tags.filter(t => t.isFile())) {
          const prefix = host === 'registry.ollama.ai' ? (namespace === 'library' ? '' : `${namespace}/`) : `${host}/${namespace}/`
          const name = `${prefix}${repository}:${tag.name}`
          models.push(await readModel(modelsDir, name, join(root, host, namespace, repository, tag.name)))
        }
      }
    }
  }
  return models
}

async function dirs (path: string): Promise<string[]> {
  const entries = await readdir(path, { withFileTypes: true }).catch(() => [])
  return entries.filter(e => e.isDirectory()).map(e => e.name).sort()
}

async function readModel (modelsDir: string, name: string, manifestPath: string): Promise<OllamaModel> {
  let layers: Layer[]
  try {
    layers = JSON.parse(await readFile(manifestPath, 'utf8')).layers
    if (!Array.isArray(layers)) throw new Error('no layers')
  } catch (err: any) {
    throw new Error(`${name}: the manifest cannot be read (${err.message})`)
  }
  const blob = async (layer: Layer): Promise<{ file: string, size: number }> => checkedBlob(modelsDir, name, layer)
  const text = async (layer: Layer): Promise<string> => readFile((await blob(layer)).file, 'utf8')
  const of = (type: string): Layer | undefined => layers.find(l => l.mediaType === `${LAYER}${type}`)
  const model = of('model')
  if (model == null) throw new Error(`${name}: the manifest has no model layer`)
  const out: OllamaModel = { name, model: await blob(model) }
  const license = of('license')
  if (license != null) out.license = await blob(license)
  const template = of('template')
  if (template != null) out.template = await text(template)
  const system = of('system')
  if (system != null) out.system = await text(system)
  const params = of('params')
  if (params != null) {
    try {
      out.parameters = JSON.parse(await text(params))
    } catch (err: any) {
      throw new Error(`${name}: the params layer is not JSON (${err.message})`)
    }
  }
  return out
}

/** The blob of a layer, after its size and SHA-256 are checked against the manifest. */
async function checkedBlob (modelsDir: string, name: string, layer: Layer): Promise<{ file: string, size: number }> {
  const match = /^sha256:([0-9a-f]{64})$/.exec(String(layer.digest))
  if (match == null) throw new Error(`${name}: a layer has the digest ${JSON.stringify(layer.digest)}, which is no sha256 digest`)
  const file = join(modelsDir, 'blobs', `sha256-${match[1]}`)
  const size = await stat(file).then(s => s.size, () => undefined)
  if (size == null) throw new Error(`${name}: the blob ${layer.digest} is missing`)
  if (size !== layer.size) throw new Error(`${name}: the blob ${layer.digest} has ${size} bytes, and the manifest says ${layer.size}`)
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(file, { highWaterMark: 1_048_576 })) hash.update(chunk)
  if (hash.digest('hex') !== match[1]) throw new Error(`${name}: the blob ${layer.digest} does not match its digest`)
  return { file, size }
}
