/**
 * Search verbs over the /api/v0/search routes: `search collection
 * create|ls|rm`, `search index` (a CID, or a JSON file of LangChain or
 * LlamaIndex documents) with a line per batch until the job ends, and
 * `search query` for document 000's hybrid search.
 */
import { readFile } from 'node:fs/promises'
import { InvalidArgumentError } from 'commander'
import { ndjson, post } from '../client.ts'
import { apiOf, clientCommand, print, request, table } from '../command.ts'
import type { ClientOptions } from '../command.ts'
import type { Command } from 'commander'

interface Collection {
  name: string
  version: number
  embedding_model: string
  chunk_tokens: number
  overlap_tokens: number
  head_cid: string | null
  replication_factor: number
  chunks: number
}

interface IndexJob {
  id: string
  collection: string
  status: string
  documents: number
  skipped: number
  chunks: number
  batches: number
  head_cid?: string
  version?: number
  error?: string
}

interface Result {
  entity_type: string
  id: string
  score: number
  text?: string
  path?: string
  cid?: string
  source_cid?: string
  hop_path: Array<{ relation: string }>
}

function integer (min: number): (value: string) => number {
  return (value) => {
    const n = Number(value)
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`an integer of at least ${min} is expected`)
    return n
  }
}

/** `name:type` of a metadata field, repeated. */
function field (value: string, fields: Record<string, string> = {}): Record<string, string> {
  const [name, type] = value.split(':')
  if (name === '' || !['string', 'number', 'boolean'].includes(type)) throw new InvalidArgumentError('a field is name:string, name:number or name:boolean')
  return { ...fields, [name]: type }
}

function json (value: string): Record<string, unknown> {
  try {
    const parsed = JSON.parse(value)
    if (parsed != null && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed
  } catch {}
  throw new InvalidArgumentError('a JSON object is expected')
}

const collect = (value: string, list: string[] = []): string[] => [...list, value]

function jobLine (job: IndexJob): string {
  const head = job.head_cid == null ? '' : ` head ${job.head_cid} (v${job.version ?? 0})`
  return `${job.id} ${job.status}: ${job.documents} documents, ${job.chunks} chunks, ${job.batches} batches${job.skipped > 0 ? `, ${job.skipped} skipped` : ''}${head}${job.error == null ? '' : ` - ${job.error}`}`
}

/** Follows a job's progress lines until it ends; its last state. */
async function follow (opts: ClientOptions, job: IndexJob): Promise<IndexJob> {
  const api = await apiOf(opts)
  const res = await post(api, new URL(`${api.base}/api/v0/search/index/progress?id=${encodeURIComponent(job.id)}`), { method: 'GET' })
  let last = job
  for await (const line of ndjson<IndexJob>(res)) {
    last = line
    if (opts.json !== true) process.stderr.write(`${jobLine(line)}\n`)
  }
  return last
}

export function searchCommands (program: Command): void {
  const search = program.command('search').description('search collections over the cluster\'s content')
  const collection = search.command('collection').description('search collections')
  clientCommand(collection, 'create')
    .description('create a collection, recorded in the cluster state')
    .argument('<name>')
    .option('--model <name>', 'the embedding model (default the embedded default)')
    .option('--chunk-tokens <n>', 'tokens per chunk', integer(8))
    .option('--overlap-tokens <n>', 'tokens each chunk repeats of the one before', integer(0))
    .option('--field <name:type>', 'a metadata field filters may name (string, number, boolean); repeat for more', field)
    .option('--replication <n>', 'copies of each snapshot in the cluster; -1 is every node', integer(-1))
    .action(async (name: string, opts) => {
      const body = await request<{ collection: Collection }>(await apiOf(opts), 'POST', '/api/v0/search/collection/create', {
        name, embedding_model: opts.model, chunk_tokens: opts.chunkTokens, overlap_tokens: opts.overlapTokens, metadata_schema: opts.field, replication_factor: opts.replication
      })
      print(opts, body, b => `created ${b.collection.name}: ${b.collection.embedding_model}, ${b.collection.chunk_tokens} tokens per chunk, ${b.collection.overlap_tokens} overlapping`)
    })
  clientCommand(collection, 'ls')
    .description('the collections of the cluster')
    .action(async (opts) => {
      const body = await request<{ collections: Collection[] }>(await apiOf(opts), 'POST', '/api/v0/search/collection/list')
      print(opts, body, b => table(['NAME', 'VERSION', 'CHUNKS', 'MODEL', 'COPIES', 'HEAD'], b.collections.map(c => [c.name, c.version, c.chunks, c.embedding_model, c.replication_factor === -1 ? 'all' : c.replication_factor, c.head_cid ?? '-'])))
    })
  clientCommand(collection, 'rm')
    .description('delete a collection; its snapshot is unpinned')
    .argument('<name>')
    .action(async (name: string, opts) => {
      const body = await request(await apiOf(opts), 'POST', `/api/v0/search/collection/rm?arg=${encodeURIComponent(name)}`)
      print(opts, body, () => `removed ${name}`)
    })

  clientCommand(search, 'index')
    .description('index a CID (a file or a directory), or the documents of a JSON file (LangChain page_content or LlamaIndex text, with metadata), into a collection')
    .argument('<collection>')
    .argument('[cid]')
    .option('--documents <file>', 'a JSON array of documents')
    .option('--metadata <json>', 'metadata of every document of the CID', json)
    .option('--detach', 'print the job and return at once instead of following it')
    .action(async (name: string, cid: string | undefined, opts) => {
      if ((cid == null) === (opts.documents == null)) throw new InvalidArgumentError('give either a CID or --documents')
      const documents = opts.documents == null ? undefined : JSON.parse(await readFile(opts.documents, 'utf8'))
      const { job } = await request<{ job: IndexJob }>(await apiOf(opts), 'POST', '/api/v0/search/index', { collection: name, cid, documents, metadata: opts.metadata })
      const last = opts.detach === true ? job : await follow(opts, job)
      print(opts, { job: last }, b => jobLine(b.job))
      if (last.status === 'failed') process.exitCode = 1
    })

  clientCommand(search, 'query')
    .description('hybrid search: the text by vector and BM25, fused, with hops from the chunks found')
    .argument('<text>')
    .option('--collection <name>', 'one collection (default all)')
    .option('--top-k <n>', 'chunks to return', integer(1), 10)
    .option('--hops <n>', 'hops from the chunks to files, directories and registry entries', integer(0), 0)
    .option('--type <entity>', 'an entity type the results may have (chunk, file, directory, model, dataset, training_job, checkpoint); repeat for more', collect)
    .option('--filter <json>', 'metadata filters, e.g. {"year": {"$gte": 1800}}', json)
    .action(async (text: string, opts) => {
      const body = await request<{ results: Result[] }>(await apiOf(opts), 'POST', '/api/v0/search/hybrid', {
        query_text: text, collection: opts.collection, top_k: opts.topK, hop_count: opts.hops, entity_types: opts.type, metadata_filters: opts.filter
      })
      print(opts, body, b => b.results.flatMap(r => r.entity_type === 'chunk'
        ? [`${r.score.toFixed(4)}  ${r.source_cid ?? ''}${r.path == null || r.path === '' ? '' : `/${r.path}`}`, `    ${(r.text ?? '').replace(/\s+/g, ' ').slice(0, 200)}`]
        : [`${r.score.toFixed(4)}  ${r.entity_type} ${r.cid ?? r.id}${r.path == null ? '' : ` ${r.path}`} (${r.hop_path.map(h => h.relation).join(' > ')})`]))
    })
}
