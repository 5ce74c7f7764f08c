/**
 * Registers the embedded default models (packages/models/assets) when the
 * cluster lacks them, so that a fresh node answers /api/generate and
 * /api/embed. Every node tries once it has caught up with the cluster; the
 * same bytes give the same CIDs, so a node that loses the race changes nothing.
 */
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { DEFAULT_MODELS, assetDir } from '@node-daemon/models'
import type { Logger } from './logger.ts'
import type { Cluster } from '@node-daemon/cluster'
import type { Inference, ImportFile } from '@node-daemon/inference'

const DESCRIPTIONS: Record<string, string> = {
  [DEFAULT_MODELS.generate]: 'A small GPT-style decoder trained on three Jane Austen novels: the embedded default for generation',
  [DEFAULT_MODELS.embed]: 'A small BERT-style encoder trained by masked LM on the same corpus: the embedded default for embeddings'
}

async function filesOf (dir: string, prefix = ''): Promise<ImportFile[]> {
  const out: ImportFile[] = []
  for (const entry of (await readdir(join(dir, prefix), { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const path = prefix === '' ? entry.name : `${prefix}/${entry.name}`
    if (entry.isDirectory()) out.push(...await filesOf(dir, path))
    else if (entry.isFile()) out.push({ path, content: await readFile(join(dir, path)) })
  }
  return out
}

export async function registerDefaultModels (cluster: Cluster, inference: Inference, log: Logger, signal: AbortSignal): Promise<void> {
  // Until it has caught up a node cannot tell whether the models are registered already.
  for (let i = 0; !cluster.isReady(); i++) {
    signal.throwIfAborted()
    await new Promise(resolve => setTimeout(resolve, Math.min(1000, 50 * 2 ** Math.min(i, 5))))
  }
  const registered = new Set((await cluster.getAllModels({ signal })).map(m => m.modelId))
  for (const name of Object.values(DEFAULT_MODELS)) {
    if (registered.has(`${name}:latest`)) continue
    const dir = assetDir(name)
    if (!(await stat(dir).then(s => s.isDirectory(), () => false))) {
      log.warn({ dir }, `default model ${name} is missing from this install`)
      continue
    }
    try {
      const model = await inference.import({ name, description: DESCRIPTIONS[name], files: await filesOf(dir) }, { signal })
      log.info({ model: model.name, cid: model.cid }, 'registered a default model')
    } catch (err: any) {
      // Another node registered it between our read and our write.
      if (err.name !== 'ModelExistsError') throw err
    }
  }
}
