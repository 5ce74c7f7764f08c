/**
 * Graph hops from search hits, breadth first: a chunk leads to its file,
 * a file to its directory, a directory to the files in it (IPLD links of
 * UnixFS); a file or directory registered as a model or dataset leads to
 * that registry entry, a dataset or model to the training jobs that used or
 * made it, and a training job to its checkpoints and models. Each entity
 * found scores its origin's score halved per hop, and carries the path of
 * relations that led to it. `entity_types` limits what is returned, not
 * what is walked through.
 */
import type { Cluster, JobRecord, ModelRecord } from '@node-daemon/cluster'
import type { Content } from '@node-daemon/content'

export type EntityType = 'chunk' | 'file' | 'directory' | 'model' | 'dataset' | 'training_job' | 'checkpoint'

export const ENTITY_TYPES: readonly EntityType[] = ['chunk', 'file', 'directory', 'model', 'dataset', 'training_job', 'checkpoint']

export interface Entity {
  type: EntityType
  /** Unique among entities of its type: a CID, a model id, a job id. */
  id: string
  cid?: string
  /** A file's or directory's path under the CID it was indexed from. */
  path?: string
  root_cid?: string
  name?: string
}

export interface Hop {
  from: string
  relation: 'part_of' | 'in_directory' | 'contains' | 'registered_as' | 'trained_on' | 'trained' | 'checkpoint_of' | 'saved_as'
  to: string
}

export interface HopResult {
  entity: Entity
  score: number
  hops: Hop[]
}

export interface HopComponents {
  content: Pick<Content, 'ls'>
  cluster: Pick<Cluster, 'getAllModels' | 'jobs'>
}

/** Files listed of one directory, at most: a hop into a huge directory stays bounded. */
const SIBLINGS = 32

const keyOf = (e: Entity): string => `${e.type}:${e.id}`

/** The entities within `hopCount` hops of the starts, each once, at its best score. */
export async function expandHops (starts: HopResult[], hopCount: number, components: HopComponents, options: { signal?: AbortSignal, limit: number }): Promise<HopResult[]> {
  const registry = lazyRegistry(components, options.signal)
  const found = new Map<string, HopResult>(starts.map(s => [keyOf(s.entity), s]))
  let frontier = starts
  for (let depth = 0; depth < hopCount && frontier.length > 0; depth++) {
    const next: HopResult[] = []
    for (const from of frontier) {
      for (const { entity, relation } of await neighbours(from.entity, components, registry, options.signal)) {
        const key = keyOf(entity)
        const score = from.score / 2
        const known = found.get(key)
        if (known != null && known.score >= score) continue
        const result = { entity, score, hops: [...from.hops, { from: keyOf(from.entity), relation, to: key }] }
        found.set(key, result)
        next.push(result)
      }
    }
    frontier = next.sort((a, b) => b.score - a.score).slice(0, options.limit)
  }
  const startKeys = new Set(starts.map(s => keyOf(s.entity)))
  return [...found.entries()].filter(([key]) => !startKeys.has(key)).map(([, r]) => r)
}

interface Registry { models: ModelRecord[], jobs: JobRecord[] }

/** The registry is read once per query, and only if a hop reaches it. */
function lazyRegistry (components: HopComponents, signal?: AbortSignal): () => Promise<Registry> {
  let registry: Promise<Registry> | undefined
  return async () => {
    registry ??= (async () => ({
      models: await components.cluster.getAllModels({ local: true, signal }),
      jobs: (await components.cluster.jobs({ limit: 10_000 }, { local: true, signal })).filter(j => j.kind === 'training')
    }))()
    return registry
  }
}

function registryEntity (m: ModelRecord): Entity {
  return { type: m.kind === 'dataset' ? 'dataset' : 'model', id: m.modelId, cid: m.modelCID, name: m.name }
}

function jobEntity (j: JobRecord): Entity {
  return { type: 'training_job', id: String(j.jobId), name: `training job ${j.jobId}` }
}

async function neighbours (e: Entity, components: HopComponents, registry: () => Promise<Registry>, signal?: AbortSignal): Promise<Array<{ entity: Entity, relation: Hop['relation'] }>> {
  const out: Array<{ entity: Entity, relation: Hop['relation'] }> = []
  const registered = async (cid: string): Promise<void> => {
    for (const m of (await registry()).models) if (m.modelCID === cid) out.push({ entity: registryEntity(m), relation: 'registered_as' })
  }
  switch (e.type) {
    case 'chunk':
      if (e.cid != null) out.push({ entity: { type: 'file', id: e.cid, cid: e.cid, path: e.path, root_cid: e.root_cid }, relation: 'part_of' })
      break
    case 'file': {
      const parent = await parentOf(e, components, signal)
      if (parent != null) out.push({ entity: parent, relation: 'in_directory' })
      if (e.cid != null) await registered(e.cid)
      break
    }
    case 'directory': {
      if (e.cid == null) break
      const listing = await components.content.ls(e.cid, { signal }).catch(() => undefined)
      for (const entry of listing?.entries.slice(0, SIBLINGS) ?? []) {
        const path = e.path == null || e.path === '' ? entry.name : `${e.path}/${entry.name}`
        const cid = entry.cid.toString()
        out.push({ entity: { type: entry.type === 'directory' ? 'directory' : 'file', id: cid, cid, path, root_cid: e.root_cid }, relation: 'contains' })
      }
      const parent = await parentOf(e, components, signal)
      if (parent != null) out.push({ entity: parent, relation: 'in_directory' })
      await registered(e.cid)
      break
    }
    case 'dataset':
    case 'model': {
      const { jobs } = await registry()
      for (const j of jobs) {
        if (e.type === 'dataset' ? j.promptCID === e.cid : j.modelCID === e.cid) out.push({ entity: jobEntity(j), relation: 'trained_on' })
        else if (j.training?.modelId === e.id) out.push({ entity: jobEntity(j), relation: 'trained' })
      }
      break
    }
    case 'training_job': {
      const { jobs, models } = await registry()
      const job = jobs.find(j => String(j.jobId) === e.id)
      if (job == null) break
      for (const c of job.training?.checkpoints ?? []) out.push({ entity: { type: 'checkpoint', id: c.cid, cid: c.cid, name: `step ${c.step}` }, relation: 'checkpoint_of' })
      for (const m of models) {
        if (m.modelCID === job.promptCID || m.modelCID === job.modelCID) out.push({ entity: registryEntity(m), relation: 'trained_on' })
        if (m.modelId === job.training?.modelId) out.push({ entity: registryEntity(m), relation: 'saved_as' })
      }
      break
    }
    case 'checkpoint':
      break
  }
  return out
}

/**
 * The directory a file or directory sits in, by its path under the CID it
 * was indexed from: that CID itself for a top-level entry, else the path's
 * directory under it. A file indexed on its own has none.
 */
async function parentOf (e: Entity, components: HopComponents, signal?: AbortSignal): Promise<Entity | undefined> {
  if (e.root_cid == null || e.path == null || e.path === '' || e.root_cid === e.cid) return undefined
  const cut = e.path.lastIndexOf('/')
  const path = cut < 0 ? '' : e.path.slice(0, cut)
  const cid = path === '' ? e.root_cid : (await components.content.ls(`${e.root_cid}/${path}`, { signal }).catch(() => undefined))?.cid.toString()
  return cid == null ? undefined : { type: 'directory', id: cid, cid, path, root_cid: e.root_cid }
}
