/**
 * Document 000's high-level methods as operations: the method caller serves
 * each at POST /api/<name>, and the REST routes of the same operations
 * (pin/add, name/publish, cluster/status...) are mapped onto these objects.
 */
import { Type } from 'typebox'
import { peerJson, pinJson, pinStatusJson } from './cluster-views.ts'
import { BadRequestError } from './errors.ts'
import { DEFAULT_EMBED_MODEL, defined, InputTypeField } from './inference.ts'
import { defineOperation, Loose } from './operations.ts'
import { SEARCH_OPERATIONS } from './search.ts'
import { duration } from './args.ts'
import { aiDatasetAdd, aiDatasetGet, RegisteredInfoFields } from './job-operations.ts'
import { filesOf } from './tar.ts'
import { addContent } from './add-content.ts'
import { loadChain, loadIndex, storeChain, storeIndex } from './documents.ts'
import { closeDataLoader, dataLoader } from './loaders.ts'
import type { Operation } from './operations.ts'
import type { ModelSummary } from '@node-daemon/inference'
import type { Node } from '@node-daemon/daemon'

/** `get` answers in JSON; past this, a file is read by /api/v0/cat, which streams. */
export const MAX_GET_BYTES = 16 * 1_048_576

const Cid = Type.String({ minLength: 1, description: 'CID or /ipfs/ path' })
const Cids = Type.Union([Cid, Type.Array(Cid, { minItems: 1 })])
const listOf = (cids: string | string[]): string[] => Array.isArray(cids) ? cids : [cids]

const AddInput = {
  content: Type.String({ description: 'The bytes to add: text, or base64 with encoding "base64". A path is never read from the server\'s disk' }),
  encoding: Type.Optional(Type.Union([Type.Literal('utf8'), Type.Literal('base64')], { default: 'utf8' })),
  name: Type.Optional(Type.String({ minLength: 1, description: 'File name; with wrap_with_directory, its name in the directory' })),
  cid_version: Type.Optional(Type.Union([Type.Literal(0), Type.Literal(1)]))
}

const AddOutput = Type.Object({ cid: Type.String(), name: Type.String(), size: Type.Integer() })

export const add = defineOperation({
  name: 'add',
  summary: 'Add content given in the call (text or base64) and answer its CID',
  tags: ['content'],
  permission: 'content:write',
  input: Type.Object({
    ...AddInput,
    pin: Type.Optional(Type.Boolean({ default: true })),
    wrap_with_directory: Type.Optional(Type.Boolean({ default: false }))
  }, { additionalProperties: false }),
  args: ['content', 'pin', 'wrap_with_directory'],
  output: AddOutput,
  run: async (node, input, signal) => addContent(node, input, { pin: input.pin, wrapWithDirectory: input.wrap_with_directory, signal })
})

export const get = defineOperation({
  name: 'get',
  summary: `The bytes of a file, base64 in JSON; up to ${MAX_GET_BYTES / 1_048_576} MiB (larger ones stream from /api/v0/cat)`,
  tags: ['content'],
  permission: 'content:read',
  input: Type.Object({ cid: Cid }, { additionalProperties: false }),
  args: ['cid'],
  output: Type.Object({ cid: Type.String(), size: Type.Integer(), encoding: Type.Literal('base64'), data: Type.String() }),
  run: async (node, { cid }, signal) => {
    const stat = await node.content.stat(cid, { signal })
    if (stat.size > MAX_GET_BYTES) throw new BadRequestError(`${cid} has ${stat.size} bytes, more than get answers in JSON: read it with /api/v0/cat`)
    const bytes = await node.content.readFile(cid, { signal })
    return { cid: stat.cid.toString(), size: bytes.byteLength, encoding: 'base64' as const, data: Buffer.from(bytes).toString('base64') }
  }
})

const PinInput = Type.Object({
  cid: Cids,
  recursive: Type.Optional(Type.Boolean({ default: true })),
  offline: Type.Optional(Type.Boolean({ description: 'Pin only what is on this node already' })),
  name: Type.Optional(Type.String({ maxLength: 255, description: 'A name for the pin, which pin/ls --name finds' }))
}, { additionalProperties: false })

const PinOutput = Type.Object({ pins: Type.Array(Type.String()) })

export const pin = defineOperation({
  name: 'pin',
  summary: 'Pin content recursively (default) or directly, fetching what is missing',
  tags: ['pins'],
  permission: 'pins',
  input: PinInput,
  args: ['cid', 'recursive'],
  output: PinOutput,
  run: async (node, input, signal) => {
    const pins: string[] = []
    for (const path of listOf(input.cid)) pins.push((await node.content.pinAdd(path, input.recursive, { signal, offline: input.offline, name: input.name })).toString())
    return { pins }
  }
})

export const unpin = defineOperation({
  name: 'unpin',
  summary: 'Remove pins',
  tags: ['pins'],
  permission: 'pins',
  input: Type.Omit(PinInput, ['offline', 'name'], { additionalProperties: false }),
  args: ['cid', 'recursive'],
  output: PinOutput,
  run: async (node, input, signal) => {
    const pins: string[] = []
    for (const path of listOf(input.cid)) pins.push((await node.content.pinRm(path, input.recursive, { signal })).toString())
    return { pins }
  }
})

const PinType = Type.Union([Type.Literal('all'), Type.Literal('recursive'), Type.Literal('direct'), Type.Literal('indirect')], { default: 'all' })

export const listPins = defineOperation({
  name: 'list_pins',
  summary: 'Pins of type all, recursive, direct or indirect, keyed by CID; with quiet, their CIDs alone',
  tags: ['pins'],
  permission: 'pins',
  input: Type.Object({
    type: Type.Optional(PinType),
    quiet: Type.Optional(Type.Boolean({ default: false })),
    cid: Type.Optional(Type.Array(Cid, { description: 'Only these, as Kubo\'s arg' }))
  }, { additionalProperties: false }),
  args: ['type', 'quiet'],
  output: Type.Object({ pins: Type.Union([Type.Record(Type.String(), Type.Object({ Type: Type.String() })), Type.Array(Type.String())]) }),
  run: async (node, input, signal) => {
    const keys: Record<string, { Type: string }> = {}
    for await (const entry of node.content.pinLs(input.type, input.cid, { signal })) keys[entry.cid.toString()] = { Type: entry.type }
    return { pins: input.quiet === true ? Object.keys(keys) : keys }
  }
})

const Entry = Type.Object({ name: Type.String(), cid: Type.String(), size: Type.Integer(), type: Type.String() })

export const ls = defineOperation({
  name: 'ls',
  summary: 'Entries of directories',
  tags: ['content'],
  permission: 'content:read',
  input: Type.Object({
    cid: Cids,
    detail: Type.Optional(Type.Boolean({ default: true, description: 'Without it, entry names alone' })),
    offline: Type.Optional(Type.Boolean())
  }, { additionalProperties: false }),
  args: ['cid', 'detail'],
  output: Type.Object({
    entries: Type.Union([Type.Array(Entry), Type.Array(Type.String())]),
    objects: Type.Array(Type.Object({ cid: Type.String(), entries: Type.Array(Entry) }))
  }),
  run: async (node, input, signal) => {
    const objects = []
    for (const path of listOf(input.cid)) {
      const listing = await node.content.ls(path, { signal, offline: input.offline })
      objects.push({ cid: path, entries: listing.entries.map(e => ({ name: e.name, cid: e.cid.toString(), size: e.size, type: e.type })) })
    }
    const entries = objects.flatMap(o => o.entries)
    return { entries: input.detail === false ? entries.map(e => e.name) : entries, objects }
  }
})

export const exists = defineOperation({
  name: 'exists',
  summary: 'Whether the content is on this node (nothing is fetched)',
  tags: ['content'],
  permission: 'content:read',
  input: Type.Object({ cid: Cid }, { additionalProperties: false }),
  args: ['cid'],
  output: Type.Object({ cid: Type.String(), exists: Type.Boolean() }),
  run: async (node, { cid }, signal) => {
    try {
      await node.content.blockStat(cid, { signal, offline: true })
      return { cid, exists: true }
    } catch (err: any) {
      if (err.name === 'NotFoundError') return { cid, exists: false }
      throw err
    }
  }
})

export const publish = defineOperation({
  name: 'publish',
  summary: 'Publish an IPNS record for a path, signed with a named key',
  tags: ['ipns'],
  permission: 'names',
  input: Type.Object({
    cid: Type.String({ minLength: 1, description: '/ipfs/ path or CID to publish' }),
    key: Type.Optional(Type.String({ default: 'self' })),
    lifetime: Type.Optional(Type.String({ description: 'Kubo duration; 48h when missing' })),
    ttl: Type.Optional(Type.String({ description: 'Kubo duration, the caching hint' }))
  }, { additionalProperties: false }),
  args: ['cid', 'key', 'lifetime', 'ttl'],
  output: Type.Object({ ipns_name: Type.String(), name: Type.String(), value: Type.String() }),
  run: async (node, input, signal) => {
    const published = await node.content.names.publish(input.cid, { key: input.key, lifetime: duration(input.lifetime, 'lifetime'), ttl: duration(input.ttl, 'ttl'), signal })
    return { ipns_name: published.name, name: published.name, value: published.value }
  }
})

export const resolve = defineOperation({
  name: 'resolve',
  summary: 'Resolve an IPNS name to a path',
  tags: ['ipns'],
  permission: 'names',
  input: Type.Object({
    ipns_name: Type.Optional(Type.String({ minLength: 1, description: 'IPNS name; this node when missing' })),
    recursive: Type.Optional(Type.Boolean({ default: true })),
    nocache: Type.Optional(Type.Boolean())
  }, { additionalProperties: false }),
  args: ['ipns_name', 'recursive'],
  output: Type.Object({ path: Type.String(), resolved_cid: Type.String() }),
  run: async (node, input, signal) => {
    const path = await node.content.names.resolve(input.ipns_name ?? node.peerId, { recursive: input.recursive, nocache: input.nocache, signal })
    return { path, resolved_cid: path.replace(/^\/ipfs\//, '') }
  }
})

export const connect = defineOperation({
  name: 'connect',
  summary: 'Connect to peers by multiaddr',
  tags: ['peers'],
  permission: 'swarm',
  input: Type.Object({ peer_addr: Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })], { description: 'Multiaddrs ending in /p2p/<peer id>' }) }, { additionalProperties: false }),
  args: ['peer_addr'],
  output: Type.Object({ added: Type.Array(Type.String()), peers: Type.Array(Type.String()) }),
  run: async (node, input, signal) => {
    const added = listOf(input.peer_addr)
    const peers: string[] = []
    for (const addr of added) peers.push(await node.connect(addr, { signal }))
    return { added, peers }
  }
})

export const peers = defineOperation({
  name: 'peers',
  summary: 'Connected peers',
  tags: ['peers'],
  permission: 'swarm',
  input: Type.Object({
    verbose: Type.Optional(Type.Boolean({ default: false })),
    latency: Type.Optional(Type.Boolean({ default: false })),
    direction: Type.Optional(Type.Boolean({ default: false }))
  }, { additionalProperties: false }),
  args: ['verbose', 'latency', 'direction'],
  output: Type.Object({ peers: Type.Array(Loose), count: Type.Integer() }),
  run: async (node, input) => {
    const connected = node.peers()
    const peers = connected.map(p => ({
      peer: p.peer,
      addr: p.addr,
      ...input.direction === true || input.verbose === true ? { direction: p.direction } : {},
      ...input.latency === true || input.verbose === true ? { latency_ms: p.latencyMs ?? null } : {},
      ...input.verbose === true ? { streams: p.streams, muxer: p.muxer } : {}
    }))
    return { peers, count: connected.length }
  }
})

export const ClusterPinOptions = {
  name: Type.Optional(Type.String()),
  replication_factor: Type.Optional(Type.Integer({ minimum: -1, description: 'Both factors at once; -1 is every node' })),
  replication_factor_min: Type.Optional(Type.Integer({ minimum: -1, description: 'Fewest nodes that must hold the content; -1 is every node' })),
  replication_factor_max: Type.Optional(Type.Integer({ minimum: -1, description: 'Most nodes that hold the content; -1 is every node' }))
}

type ClusterPinInput = { name?: string, replication_factor?: number, replication_factor_min?: number, replication_factor_max?: number }

async function clusterPin (node: Node, cid: string, input: ClusterPinInput, signal: AbortSignal): Promise<object> {
  const record = await node.cluster.pinAdd(cid, defined({
    name: input.name,
    replicationFactor: input.replication_factor,
    replicationFactorMin: input.replication_factor_min,
    replicationFactorMax: input.replication_factor_max,
    signal
  }))
  return { ...pinJson(record), peers: record.allocations }
}

const ClusterPinOutput = Type.Object({ cid: Type.String(), peers: Type.Array(Type.String()) }, { additionalProperties: true })

export const clusterAdd = defineOperation({
  name: 'cluster_add',
  summary: 'Add content given in the call (pinned here, as add pins) and pin it in the cluster',
  tags: ['cluster'],
  permission: 'pins',
  input: Type.Object({ ...AddInput, ...ClusterPinOptions }, { additionalProperties: false }),
  args: ['content', 'replication_factor', 'name'],
  output: ClusterPinOutput,
  run: async (node, input, signal) => {
    // Pinned here too, as add pins: until the nodes the cluster allocates have fetched it, this node holds its only copy.
    const added = await addContent(node, input, { pin: true, signal })
    return await clusterPin(node, added.cid, input, signal) as { cid: string, peers: string[] }
  }
})

export const clusterPinOp = defineOperation({
  name: 'cluster_pin',
  summary: 'Pin a CID in the cluster; answers the nodes it is allocated to',
  tags: ['cluster'],
  permission: 'pins',
  input: Type.Object({ cid: Cid, ...ClusterPinOptions }, { additionalProperties: false }),
  args: ['cid', 'replication_factor', 'name'],
  output: ClusterPinOutput,
  run: async (node, input, signal) => await clusterPin(node, input.cid, input, signal) as { cid: string, peers: string[] }
})

export const clusterStatus = defineOperation({
  name: 'cluster_status',
  summary: 'Status of one pin (cid) or of all, on every node, keyed by CID',
  tags: ['cluster'],
  permission: 'cluster:read',
  input: Type.Object({ cid: Type.Optional(Cid), local: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
  args: ['cid'],
  output: Type.Object({ status: Type.Record(Type.String(), Loose) }),
  run: async (node, input, signal) => {
    const reports = await node.cluster.pinStatus(input.cid, { signal, local: input.local })
    return { status: Object.fromEntries(reports.map(r => [r.cid, pinStatusJson(r)])) }
  }
})

export const clusterPeers = defineOperation({
  name: 'cluster_peers',
  summary: 'Members of the cluster',
  tags: ['cluster'],
  permission: 'cluster:read',
  input: Type.Object({ local: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
  args: [],
  output: Type.Object({ peers: Type.Array(Loose), count: Type.Integer() }),
  run: async (node, input, signal) => {
    const nodes = await node.cluster.nodes({ signal, local: input.local })
    return { peers: nodes.map(peerJson), count: nodes.length }
  }
})

/** A registry entry as document 000's metadata. */
export function modelMetadata (model: ModelSummary): object {
  return {
    name: model.name,
    cid: model.cid,
    kind: model.kind,
    family: model.family,
    description: model.description,
    size: model.size,
    parameters: model.parameters,
    context_length: model.contextLength,
    active: model.active,
    version: model.version,
    modified_at: model.modifiedAt.toISOString(),
    framework: model.framework,
    license: model.license
  }
}

const ModelOutput = Type.Object({ cid: Type.String(), metadata: Loose })

export const aiModelAdd = defineOperation({
  name: 'ai_model_add',
  summary: 'Register a model directory already in IPFS (Hugging Face ONNX layout) under a name',
  tags: ['ai'],
  permission: 'models:write',
  input: Type.Object({
    model: Type.String({ minLength: 1, description: 'CID or /ipfs/ path of the model directory' }),
    metadata: Type.Object({
      name: Type.String({ minLength: 1 }),
      description: Type.Optional(Type.String()),
      dtype: Type.Optional(Type.String({ description: 'The ONNX variant to run: fp32, fp16, q4…' })),
      ...RegisteredInfoFields
    }, { additionalProperties: false })
  }, { additionalProperties: false }),
  args: ['model', 'metadata'],
  output: ModelOutput,
  run: async (node, { model, metadata }, signal) => {
    const files = await filesOf(node.content, model, { signal })
    const imported = await node.inference.import(defined({ ...metadata, files }), { signal })
    return { cid: imported.cid, metadata: modelMetadata(imported) }
  }
})

export const aiModelGet = defineOperation({
  name: 'ai_model_get',
  summary: "A registered model's CID and metadata (its files: /api/v0/ai/model/get)",
  tags: ['ai'],
  permission: 'models:read',
  input: Type.Object({ model_cid: Type.String({ minLength: 1, description: "The model's CID, or its registry name" }) }, { additionalProperties: false }),
  args: ['model_cid'],
  output: ModelOutput,
  run: async (node, { model_cid: ref }, signal) => {
    const model = await node.inference.show(ref, { signal })
    return { cid: model.cid, metadata: modelMetadata(model) }
  }
})

export const aiModelList = defineOperation({
  name: 'ai_model_list',
  summary: 'Registered models with their metadata',
  tags: ['ai'],
  permission: 'models:read',
  input: Type.Object({}, { additionalProperties: false }),
  args: [],
  output: Type.Object({ models: Type.Array(Loose) }),
  run: async (node, _input, signal) => ({ models: (await node.inference.models({ signal })).map(modelMetadata) })
})

export const generateEmbeddings = defineOperation({
  name: 'generate_embeddings',
  summary: `Embeddings of texts, by default with ${DEFAULT_EMBED_MODEL}`,
  tags: ['embeddings'],
  permission: 'inference',
  input: Type.Object({
    texts: Type.Array(Type.String(), { minItems: 1 }),
    model: Type.Optional(Type.String({ minLength: 1, default: DEFAULT_EMBED_MODEL })),
    input_type: InputTypeField
  }, { additionalProperties: false }),
  args: ['texts', 'model'],
  output: Type.Object({ model: Type.String(), embeddings: Type.Array(Type.Array(Type.Number())), dimensions: Type.Integer() }),
  run: async (node, input, signal) => {
    const model = input.model ?? DEFAULT_EMBED_MODEL
    const result = await node.inference.embed(defined({ model, input: input.texts, inputType: input.input_type }), { signal })
    return { model, embeddings: result.embeddings, dimensions: result.embeddings[0]?.length ?? 0 }
  }
})

/** The operations GraphQL reaches that are not methods of document 000's caller. */

export const nodeInfo = defineOperation({
  name: 'node_info',
  summary: "This node's identity and version",
  tags: ['peers'],
  permission: 'swarm',
  input: Type.Object({}, { additionalProperties: false }),
  args: [],
  output: Type.Object({ id: Type.String(), version: Type.String(), addresses: Type.Array(Type.String()), agent_version: Type.String() }),
  run: async (node, _input, signal) => {
    const id = await node.identity(undefined, { signal })
    return { id: id.id, version: node.version().version, addresses: id.addresses, agent_version: id.agentVersion }
  }
})

export const contentSize = defineOperation({
  name: 'content_size',
  summary: "A file's size, or the sum of a directory's entries' sizes",
  tags: ['content'],
  permission: 'content:read',
  input: Type.Object({ cid: Cid }, { additionalProperties: false }),
  args: ['cid'],
  output: Type.Object({ cid: Type.String(), size: Type.Integer() }),
  run: async (node, { cid }, signal) => {
    try {
      return { cid, size: (await node.content.stat(cid, { signal })).size }
    } catch (err: any) {
      if (err.name !== 'WrongContentTypeError') throw err
      const listing = await node.content.ls(cid, { signal })
      return { cid, size: listing.entries.reduce((sum, e) => sum + e.size, 0) }
    }
  }
})

export const keyGen = defineOperation({
  name: 'key_gen',
  summary: 'Create a named Ed25519 or RSA key, to publish IPNS records with',
  tags: ['ipns'],
  permission: 'names',
  input: Type.Object({
    name: Type.String({ minLength: 1 }),
    type: Type.Optional(Type.Union([Type.Literal('ed25519'), Type.Literal('rsa')], { default: 'ed25519' })),
    size: Type.Optional(Type.Integer({ minimum: 2048, maximum: 4096, description: 'RSA modulus bits, 2048 unless given; at most 4096, whose key takes about a second to make (8192 bits would hold a request for tens of seconds)' }))
  }, { additionalProperties: false }),
  args: ['name', 'type', 'size'],
  output: Type.Object({ name: Type.String(), id: Type.String() }),
  run: async (node, { name, type, size }, signal) => {
    const key = await node.content.names.generateKey(name, { type, size, signal })
    return { name: key.name, id: key.id }
  }
})

/** Every method of the caller, by name. */
export const METHODS: ReadonlyMap<string, Operation<any, any>> = new Map([
  add, get, pin, unpin, listPins, ls, exists, publish, resolve, connect, peers,
  clusterAdd, clusterPinOp, clusterStatus, clusterPeers, aiModelAdd, aiModelGet, aiModelList, aiDatasetAdd, aiDatasetGet, generateEmbeddings,
  storeChain, loadChain, storeIndex, loadIndex, dataLoader, closeDataLoader, ...SEARCH_OPERATIONS
].map(op => [op.name, op as Operation<any, any>]))
