/**
 * Document 000's stored framework documents: a LangChain chain and a
 * LlamaIndex index are JSON kept as content under a name and a version. The
 * bytes are the client's serialised form, unchanged, so the CID names exactly
 * what was sent; the cluster state records each version's CID through Raft,
 * so any node loads the latest version, a given one, or a CID. One mechanism
 * serves both families: only the family's name and its field differ.
 */
import { DocumentNotFoundError } from '@node-daemon/cluster'
import { Type } from 'typebox'
import { BadRequestError } from './errors.ts'
import { defined } from './inference.ts'
import { addContent } from './add-content.ts'
import { defineOperation, Loose } from './operations.ts'
import type { Operation } from './operations.ts'
import type { DocumentRecord } from '@node-daemon/cluster'
import type { Node } from '@node-daemon/daemon'

/** The largest document stored or loaded, and the JSON body of a store (an index with its embeddings is large). */
export const MAX_DOCUMENT_BYTES = 32 * 1_048_576

export interface DocumentFamily {
  /** The family's key in the cluster state. */
  family: 'langchain/chain' | 'llamaindex/index'
  /** The field that carries the document, in a store's body and a load's answer. */
  field: 'chain' | 'index'
  /** Document 000's method names. */
  store: string
  load: string
  /** What the document is, for summaries and messages. */
  what: string
}

export const CHAIN: DocumentFamily = { family: 'langchain/chain', field: 'chain', store: 'ai_langchain_store_chain', load: 'ai_langchain_load_chain', what: 'LangChain chain' }
export const INDEX: DocumentFamily = { family: 'llamaindex/index', field: 'index', store: 'ai_llama_index_store_index', load: 'ai_llama_index_load_index', what: 'LlamaIndex index' }

const Name = Type.String({ minLength: 1, maxLength: 256 })
const Version = Type.String({ minLength: 1, maxLength: 128 })
const Metadata = Type.Record(Type.String(), Type.Unknown())

/** The text stored: a string is taken as the serialised JSON itself (kept byte for byte), anything else is serialised. */
function serialised (value: unknown, what: string): string {
  if (typeof value !== 'string') return JSON.stringify(value)
  try {
    JSON.parse(value)
  } catch {
    throw new BadRequestError(`the ${what} is a string that is not JSON: give the serialised JSON, or the object itself`)
  }
  return value
}

function versionJson (record: DocumentRecord, version: DocumentRecord['versions'][number]): object {
  return { name: record.name, version: version.version, cid: version.cid, created_at: version.at, metadata: version.metadata }
}

export function storeDocument (f: DocumentFamily): Operation {
  return defineOperation({
    name: f.store,
    summary: `Store a ${f.what}'s serialised JSON as content under a name and a version, recorded in the cluster`,
    tags: ['ai'],
    permission: 'content:write',
    input: Type.Object({
      [f.field]: Type.Unknown({ description: `The ${f.what} as JSON, or its serialised JSON text (kept byte for byte)` }),
      name: Name,
      version: Version,
      metadata: Type.Optional(Metadata)
    }, { additionalProperties: false }),
    args: [f.field, 'name', 'version', 'metadata'],
    output: Type.Object({ cid: Type.String(), name: Type.String(), version: Type.String() }),
    run: async (node, input, signal) => {
      const { name, version, metadata } = input as { name: string, version: string, metadata?: Record<string, unknown> }
      const text = serialised((input as Record<string, unknown>)[f.field], f.what)
      if (Buffer.byteLength(text) > MAX_DOCUMENT_BYTES) throw new BadRequestError(`the ${f.what} is over ${MAX_DOCUMENT_BYTES} bytes`)
      const { cid } = await addContent(node, { content: text }, { pin: true, signal })
      await node.cluster.putDocument(defined({ family: f.family, name, version, cid, metadata }), { signal })
      return { cid, name, version }
    }
  })
}

/** The version a load names: the given one, else the latest. */
async function locate (node: Node, f: DocumentFamily, input: { name?: string, version?: string, cid?: string }, signal: AbortSignal): Promise<{ cid: string, record?: object }> {
  if (input.name != null) {
    const record = await node.cluster.getDocument(f.family, input.name, { signal })
    const found = input.version == null ? record.versions.at(-1) : record.versions.find(v => v.version === input.version)
    if (found == null) throw new DocumentNotFoundError(`the ${f.what} ${input.name} has no version ${JSON.stringify(input.version)}; it has ${record.versions.map(v => v.version).join(', ')}`)
    if (input.cid != null && input.cid !== found.cid) throw new BadRequestError(`${input.name} version ${found.version} is ${found.cid}, not ${input.cid}`)
    return { cid: found.cid, record: versionJson(record, found) }
  }
  if (input.cid == null) throw new BadRequestError(`a load names the ${f.what} by name (and version), or by cid`)
  if (input.version != null) throw new BadRequestError('a version is of a name: give the name too')
  const cid = input.cid.replace(/^\/ipfs\//, '')
  // A CID stored under a name answers with that name and version; any other JSON loads as well.
  for (const record of await node.cluster.documents(f.family, { signal, local: true })) {
    const found = record.versions.findLast(v => v.cid === cid)
    if (found != null) return { cid, record: versionJson(record, found) }
  }
  return { cid }
}

export function loadDocument (f: DocumentFamily): Operation {
  return defineOperation({
    name: f.load,
    summary: `Load a stored ${f.what}: by name (its latest version), name and version, or CID`,
    tags: ['ai'],
    permission: 'content:read',
    input: Type.Object({
      name: Type.Optional(Name),
      version: Type.Optional(Version),
      cid: Type.Optional(Type.String({ minLength: 1, description: 'CID or /ipfs/ path of the JSON' }))
    }, { additionalProperties: false }),
    args: ['name', 'version'],
    output: Type.Object({ [f.field]: Type.Unknown(), cid: Type.String(), name: Type.Optional(Type.String()), version: Type.Optional(Type.String()), created_at: Type.Optional(Type.String()), metadata: Type.Optional(Loose) }),
    run: async (node, input, signal) => {
      const { cid, record } = await locate(node, f, input, signal)
      const { size } = await node.content.stat(cid, { signal })
      if (size > MAX_DOCUMENT_BYTES) throw new BadRequestError(`${cid} is ${size} bytes, over the ${MAX_DOCUMENT_BYTES}-byte limit of a ${f.what}`)
      const text = new TextDecoder().decode(await node.content.readFile(cid, { signal }))
      let value: unknown
      try {
        value = JSON.parse(text)
      } catch {
        throw new BadRequestError(`${cid} is not JSON, so it is no ${f.what}`)
      }
      return { ...record, cid, [f.field]: value } as any
    }
  })
}

export const storeChain = storeDocument(CHAIN)
export const loadChain = loadDocument(CHAIN)
export const storeIndex = storeDocument(INDEX)
export const loadIndex = loadDocument(INDEX)
