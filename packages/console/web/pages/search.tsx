// Search: the cluster's collections, a form that makes one, indexing a CID or uploaded documents with the job's progress live from /ws/v0/events, and hybrid queries.
import { useEffect, useState } from 'preact/hooks'
import { get, rpc, short, socket, upload } from '../api.ts'
import { Section, Status, useAction, usePoll } from '../ui.tsx'
import type { ComponentChildren } from 'preact'

interface Collection { name: string, version: number, embedding_model: string, chunk_tokens: number, overlap_tokens: number, metadata_schema: Record<string, string>, head_cid: string | null, replication_factor: number, chunks: number, updated_at: string }
interface IndexJob { id: string, collection: string, status: string, documents: number, skipped: number, chunks: number, batches: number, head_cid?: string, version?: number, error?: string, started_at: string }
interface Hop { from: string, relation: string, to: string }
interface Result { entity_type: string, id: string, score: number, collection?: string, text?: string, cid?: string, source_cid?: string, path?: string, metadata?: Record<string, unknown>, name?: string, hop_path: Hop[] }

const ENTITY_TYPES = ['chunk', 'file', 'directory', 'model', 'dataset', 'training_job', 'checkpoint']

/** A JSON object typed into a field, or undefined when the field is empty. */
function jsonObject (text: string, field: string): Record<string, unknown> | undefined {
  if (text.trim() === '') return undefined
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new Error(`${field} is not JSON`)
  }
  if (value == null || typeof value !== 'object' || Array.isArray(value)) throw new Error(`${field} must be a JSON object`)
  return value as Record<string, unknown>
}

function CreateCollection ({ onCreated }: { onCreated: () => void }): ComponentChildren {
  const models = usePoll(async () => (await get<{ models: Array<{ name: string }> }>('/api/tags')).models.map(m => m.name))
  const [form, setForm] = useState({ name: '', embedding_model: '', chunk_tokens: '', overlap_tokens: '', replication_factor: '', metadata_schema: '' })
  const action = useAction()
  const field = (key: keyof typeof form, label: string, placeholder = ''): ComponentChildren =>
    <label>{label} <input name={`collection-${key}`} placeholder={placeholder} value={form[key]} onInput={e => setForm({ ...form, [key]: e.currentTarget.value })} list={key === 'embedding_model' ? 'search-models' : undefined} /></label>
  const create = async (): Promise<void> => action.run(async () => {
    const number = (text: string): number | undefined => text.trim() === '' ? undefined : Number(text)
    const { collection } = await get<{ collection: Collection }>('/api/v0/search/collection/create', {
      json: {
        name: form.name.trim(),
        ...(form.embedding_model.trim() === '' ? {} : { embedding_model: form.embedding_model.trim() }),
        chunk_tokens: number(form.chunk_tokens),
        overlap_tokens: number(form.overlap_tokens),
        replication_factor: number(form.replication_factor),
        metadata_schema: jsonObject(form.metadata_schema, 'the metadata schema')
      }
    })
    onCreated()
    return `collection ${collection.name}: ${collection.embedding_model}, chunks of ${collection.chunk_tokens} tokens`
  })
  return (
    <>
      <form onSubmit={e => { e.preventDefault(); void create() }}>
        {field('name', 'Name')}
        {field('embedding_model', 'Embedding model', 'the default')}
        <datalist id='search-models'>{(models.data ?? []).map(m => <option key={m} value={m} />)}</datalist>
        {field('chunk_tokens', 'Chunk tokens', 'up to 256')}
        {field('overlap_tokens', 'Overlap tokens', 'an eighth')}
        {field('replication_factor', 'Replication (-1: every node)', '3')}
        {field('metadata_schema', 'Metadata schema (JSON)', '{"author": "string", "year": "number"}')}
        <button type='submit' disabled={action.busy || form.name.trim() === ''}>Create collection</button>
      </form>
      <Status error={action.error ?? models.error} message={action.message} />
    </>
  )
}

function Collections ({ collections, onChange }: { collections: Collection[], onChange: () => void }): ComponentChildren {
  const action = useAction()
  const remove = (name: string): void => {
    if (!confirm(`Delete the collection ${name}? Its snapshot is unpinned.`)) return
    void action.run(async () => { await rpc('search/collection/rm', { arg: name }); onChange() })
  }
  return (
    <>
      <Status error={action.error} />
      <table>
        <thead><tr><th>Name</th><th>Version</th><th>Model</th><th>Chunking</th><th>Head CID</th><th>Chunks</th><th>Replication</th><th /></tr></thead>
        <tbody>
          {collections.map(c => (
            <tr key={c.name} data-collection={c.name} data-version={c.version} data-chunks={c.chunks} data-head={c.head_cid ?? ''}>
              <td>{c.name}</td><td>{c.version}</td><td>{c.embedding_model}</td>
              <td>{c.chunk_tokens} tokens, {c.overlap_tokens} overlap{Object.keys(c.metadata_schema).length > 0 && <><br /><code>{JSON.stringify(c.metadata_schema)}</code></>}</td>
              <td>{c.head_cid == null ? '–' : <code title={c.head_cid}>{short(c.head_cid)}</code>}</td>
              <td>{c.chunks}</td><td>{c.replication_factor === -1 ? 'every node' : c.replication_factor}</td>
              <td><button class='secondary' onClick={() => remove(c.name)}>Delete</button></td>
            </tr>
          ))}
        </tbody>
      </table>
      {collections.length === 0 && <p>No collections yet.</p>}
    </>
  )
}

/** LangChain's documents (page_content) or LlamaIndex's (text), as a JSON array or an object holding one under `documents`. */
function documentsOf (text: string, name: string): unknown[] {
  let value: any
  try {
    value = JSON.parse(text)
  } catch {
    throw new Error(`${name} is not JSON`)
  }
  const docs = Array.isArray(value) ? value : value?.documents
  if (!Array.isArray(docs) || docs.length === 0) throw new Error(`${name} holds no documents: expected an array of {page_content or text, metadata}`)
  return docs
}

function Index ({ collections, onStarted }: { collections: Collection[], onStarted: (job: IndexJob, documents?: number) => void }): ComponentChildren {
  const [collection, setCollection] = useState('')
  const [cid, setCid] = useState('')
  const [metadata, setMetadata] = useState('')
  const [files, setFiles] = useState<File[]>([])
  const [uploaded, setUploaded] = useState<number>()
  const action = useAction()
  const target = collection !== '' ? collection : collections[0]?.name ?? ''
  const start = async (source: Record<string, unknown>, documents?: number): Promise<string> => {
    const { job } = await get<{ job: IndexJob }>('/api/v0/search/index', { json: { collection: target, ...source } })
    onStarted(job, documents)
    return `indexing job ${job.id}`
  }
  const indexCid = async (): Promise<void> => action.run(async () => start({ cid: cid.trim(), metadata: jsonObject(metadata, 'the metadata') }))
  /** JSON files of documents go in as they are; any other file is added as content, all of them in one directory, whose CID is indexed. */
  const indexFiles = async (): Promise<void> => action.run(async () => {
    const json = files.filter(f => f.name.endsWith('.json'))
    const documents = (await Promise.all(json.map(async f => documentsOf(await f.text(), f.name)))).flat()
    const other = files.filter(f => !json.includes(f))
    const started: string[] = []
    if (documents.length > 0) started.push(await start({ documents }, documents.length))
    if (other.length > 0) {
      const form = new FormData()
      for (const file of other) form.append('file', file, encodeURIComponent(file.name))
      setUploaded(0)
      const answer = await upload('/api/v0/add?pin=true&wrap-with-directory=true', form, setUploaded)
      setUploaded(undefined)
      const root = JSON.parse(answer.trim().split('\n').at(-1) as string) as { Hash: string }
      started.push(await start({ cid: root.Hash, metadata: jsonObject(metadata, 'the metadata') }, other.length))
    }
    setFiles([])
    return started.join('; ')
  })
  return (
    <>
      <form onSubmit={e => e.preventDefault()}>
        <label>Collection
          <select name='index-collection' value={target} onChange={e => setCollection(e.currentTarget.value)}>
            {collections.map(c => <option key={c.name} value={c.name}>{c.name}</option>)}
          </select>
        </label>
        <label>Metadata of each document (JSON) <input name='index-metadata' size={30} value={metadata} onInput={e => setMetadata(e.currentTarget.value)} /></label>
      </form>
      <form onSubmit={e => { e.preventDefault(); void indexCid() }}>
        <label>CID (a file or a directory) <input name='index-cid' size={60} value={cid} onInput={e => setCid(e.currentTarget.value)} /></label>
        <button type='submit' disabled={action.busy || target === '' || cid.trim() === ''}>Index CID</button>
      </form>
      <form onSubmit={e => { e.preventDefault(); void indexFiles() }}>
        <label>Documents: text, Markdown, HTML, CSV, PDF, or JSON of LangChain or LlamaIndex documents <input type='file' multiple name='index-files' onChange={e => setFiles([...e.currentTarget.files ?? []])} /></label>
        <button type='submit' disabled={action.busy || target === '' || files.length === 0}>Index documents</button>
      </form>
      {uploaded != null && <p>uploading <progress value={uploaded} max={1} /></p>}
      <Status error={action.error} message={action.message} />
    </>
  )
}

/** Whether `a` is an older state of the job than `b`. */
const behind = (a: IndexJob, b: IndexJob): boolean => (a.status === 'running' && b.status !== 'running') || a.batches < b.batches || a.documents < b.documents

/** The event socket gives the job as the search service has it (headCID, startedAt), the routes in snake case. */
function fromEvent (data: IndexJob & { headCID?: string, startedAt?: string }): IndexJob {
  const { headCID, startedAt, ...rest } = data
  return { ...rest, head_cid: rest.head_cid ?? headCID, started_at: rest.started_at ?? startedAt ?? '' }
}

function Jobs ({ jobs, totals }: { jobs: IndexJob[], totals: Record<string, number> }): ComponentChildren {
  return (
    <table>
      <thead><tr><th>Job</th><th>Collection</th><th>Status</th><th>Progress</th><th>Documents</th><th>Chunks</th><th>Batches</th><th>Head</th></tr></thead>
      <tbody>
        {jobs.map(j => (
          <tr key={j.id} data-job={j.id} data-status={j.status} data-chunks={j.chunks} data-batches={j.batches}>
            <td><code title={j.id}>{short(j.id, 10)}</code></td><td>{j.collection}</td>
            <td><span class={`badge ${j.status}`}>{j.status}</span>{j.error != null && <div class='error'>{j.error}</div>}</td>
            {/* The documents of a job started here are known: the bar fills as they are taken in; else it runs until the job ends. */}
            <td>{j.status === 'running' ? <progress value={totals[j.id] != null ? j.documents + j.skipped : undefined} max={totals[j.id]} /> : <progress value={1} max={1} />}</td>
            <td>{j.documents}{totals[j.id] != null && ` of ${totals[j.id]}`}{j.skipped > 0 && ` (${j.skipped} skipped)`}</td>
            <td>{j.chunks}</td><td>{j.batches}</td>
            <td>{j.head_cid != null && <code title={j.head_cid}>{short(j.head_cid)}</code>}{j.version != null && ` v${j.version}`}</td>
          </tr>
        ))}
      </tbody>
    </table>
  )
}

function Query ({ collections }: { collections: Collection[] }): ComponentChildren {
  const [form, setForm] = useState({ collection: '', query_text: '', top_k: '10', hop_count: '1', metadata_filters: '' })
  const [types, setTypes] = useState<string[]>(ENTITY_TYPES)
  const [results, setResults] = useState<Result[]>()
  const action = useAction()
  const search = async (): Promise<void> => action.run(async () => {
    const answer = await get<{ results: Result[], count: number }>('/api/v0/search/hybrid', {
      json: {
        query_text: form.query_text,
        top_k: Number(form.top_k),
        hop_count: Number(form.hop_count),
        ...(form.collection === '' ? {} : { collection: form.collection }),
        metadata_filters: jsonObject(form.metadata_filters, 'the metadata filters'),
        ...(types.length === ENTITY_TYPES.length ? {} : { entity_types: types })
      }
    })
    setResults(answer.results)
  })
  const field = (key: 'query_text' | 'top_k' | 'hop_count' | 'metadata_filters', label: string, size?: number, placeholder = ''): ComponentChildren =>
    <label>{label} <input name={key} size={size} placeholder={placeholder} value={form[key]} onInput={e => setForm({ ...form, [key]: e.currentTarget.value })} /></label>
  return (
    <>
      <form onSubmit={e => { e.preventDefault(); void search() }}>
        {field('query_text', 'Query', 50)}
        <label>Collection
          <select name='query-collection' value={form.collection} onChange={e => setForm({ ...form, collection: e.currentTarget.value })}>
            <option value=''>every collection</option>
            {collections.map(c => <option key={c.name} value={c.name}>{c.name}</option>)}
          </select>
        </label>
        {field('top_k', 'Top k', 4)}
        {field('hop_count', 'Hops', 3)}
        {field('metadata_filters', 'Metadata filters (JSON)', 30, '{"year": {"$gte": 1800}}')}
        <button type='submit' disabled={action.busy || form.query_text.trim() === '' || types.length === 0}>Search</button>
      </form>
      <form class='checks'>
        {ENTITY_TYPES.map(t => (
          <label key={t}><span><input type='checkbox' name={`entity-${t}`} checked={types.includes(t)} onChange={e => { const on = e.currentTarget.checked; setTypes(list => on ? ENTITY_TYPES.filter(x => x === t || list.includes(x)) : list.filter(x => x !== t)) }} /> {t}</span></label>
        ))}
      </form>
      <Status error={action.error} />
      {results != null && <p data-results={results.length}>{results.length} result{results.length === 1 ? '' : 's'}</p>}
      {results != null && results.length > 0 && (
        <table class='results'>
          <thead><tr><th>Score</th><th>Type</th><th>Text or name</th><th>Source</th><th>Metadata</th><th>Hop path</th></tr></thead>
          <tbody>
            {results.map(r => (
              <tr key={`${r.entity_type}:${r.id}`} data-result={r.entity_type} data-id={r.id}>
                <td>{r.score.toFixed(4)}</td>
                <td><span class='badge'>{r.entity_type}</span></td>
                <td class='text'>{r.text ?? r.name ?? r.path ?? r.id}</td>
                <td>{(r.source_cid ?? r.cid) != null && <code title={r.source_cid ?? r.cid}>{short(r.source_cid ?? r.cid)}</code>}{r.path != null && r.path !== '' && <div data-path={r.path}>{r.path}</div>}{r.collection != null && <div>in {r.collection}</div>}</td>
                <td>{r.metadata != null && Object.keys(r.metadata).length > 0 && <code>{JSON.stringify(r.metadata)}</code>}</td>
                <td data-hops={r.hop_path.length}>{r.hop_path.map((h, i) => <div key={i}><code title={h.from}>{short(h.from, 6)}</code> {h.relation} <code title={h.to}>{short(h.to, 6)}</code></div>)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  )
}

export function SearchPage (): ComponentChildren {
  const collections = usePoll(async () => (await get<{ collections: Collection[] }>('/api/v0/search/collection/list')).collections, 5000)
  const [jobs, setJobs] = useState<IndexJob[]>([])
  // Documents of the jobs started from this page, for their progress bars.
  const [totals, setTotals] = useState<Record<string, number>>({})
  const [error, setError] = useState<string>()
  // The answer that started a job may come after its first events: a job's state only moves forward.
  const upsert = (job: IndexJob): void => { setJobs(list => list.some(j => j.id === job.id) ? list.map(j => j.id === job.id && !behind(job, j) ? job : j) : [job, ...list]) }

  useEffect(() => {
    get<{ jobs: IndexJob[] }>('/api/v0/search/index/status').then(answer => { setJobs(list => [...list, ...answer.jobs.filter(j => !list.some(k => k.id === j.id))]) }, (err: Error) => { setError(err.message) })
    // Each batch an indexing job of this node takes in, and its end; and every head moved by any node.
    const ws = socket('/ws/v0/events')
    ws.onopen = () => { ws.send(JSON.stringify({ events: ['index_progress', 'collection_changed'] })) }
    ws.onmessage = (e) => {
      const message = JSON.parse(e.data as string) as { event?: string, data?: any, error?: string }
      if (message.event === 'index_progress') upsert(fromEvent(message.data))
      else if (message.event === 'collection_changed') collections.reload()
      else if (message.error != null) setError(message.error)
    }
    ws.onerror = () => { setError('the event socket /ws/v0/events failed') }
    return () => { ws.close() }
  }, [])

  const list = collections.data ?? []
  return (
    <>
      <Section title='Collections'>
        <Collections collections={list} onChange={() => collections.reload()} />
        <Status error={collections.error} />
      </Section>
      <Section title='New collection'>
        <CreateCollection onCreated={() => collections.reload()} />
      </Section>
      <Section title='Index'>
        <Index collections={list} onStarted={(job, documents) => { if (documents != null) setTotals(t => ({ ...t, [job.id]: documents })); upsert(job) }} />
        <Jobs jobs={jobs} totals={totals} />
        <Status error={error} />
      </Section>
      <Section title='Hybrid search'>
        <Query collections={list} />
      </Section>
    </>
  )
}
