import type { Cluster, ModelRecord, ReadOptions } from '@node-daemon/cluster'

/**
 * The registered model a client names: its exact id, else, for a bare name,
 * Ollama's `name:latest`, the id the registry keeps Ollama models under
 * (see fullName in @node-daemon/inference). Datasets and trained models keep
 * the ids they were given, tag or not, so the exact id is tried first.
 */
export async function registeredModel (cluster: Pick<Cluster, 'getModel'>, name: string, options?: ReadOptions): Promise<ModelRecord> {
  try {
    return await cluster.getModel(name, options)
  } catch (err: any) {
    if (err.name !== 'ModelNotFoundError' || name.includes(':')) throw err
    return await cluster.getModel(`${name}:latest`, options).catch(() => { throw err })
  }
}
