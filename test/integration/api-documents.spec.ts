/**
 * Document 000's stored framework documents on a cluster of two nodes: a
 * LangChain chain and a LlamaIndex index stored at one node load at the
 * other by name, name and version, or CID, in the frameworks' own serialised
 * forms unchanged; versions never change once stored.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { load } from '@langchain/core/load'
import { StringOutputParser } from '@langchain/core/output_parsers'
import { PromptTemplate } from '@langchain/core/prompts'
import { call, waitFor } from '../helpers/cluster.ts'
import { rpc, startTestDaemon } from '../helpers/daemon.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

async function json (d: TestDaemon, path: string, init: RequestInit & { json?: unknown } = {}): Promise<{ status: number, body: any }> {
  return call({ api: d.url }, path, init)
}

/** LlamaIndex's persisted storage context (`storage_context.persist()`): its docstore and index store, as its documentation gives them. */
const LLAMA_INDEX_STORAGE = {
  'docstore.json': {
    'docstore/data': {
      'c3a1-doc': {
        __data__: { id_: 'c3a1-doc', embedding: null, metadata: { file_name: 'moby.txt' }, excluded_embed_metadata_keys: [], excluded_llm_metadata_keys: [], relationships: {}, text: 'Call me Ishmael.', mimetype: 'text/plain', start_char_idx: null, end_char_idx: null, text_template: '{metadata_str}\n\n{content}', metadata_template: '{key}: {value}', metadata_seperator: '\n', class_name: 'Document' },
        __type__: '4'
      }
    },
    'docstore/metadata': { 'c3a1-doc': { doc_hash: '5b8e0c0e6d3f', ref_doc_id: null } }
  },
  'index_store.json': {
    'index_store/data': {
      'f0e2-index': { __type__: 'vector_store', __data__: '{"index_id": "f0e2-index", "summary": null, "nodes_dict": {"c3a1-doc": "c3a1-doc"}, "doc_id_dict": {}, "embeddings_dict": {}}' }
    }
  },
  'vector_store.json': { embedding_dict: { 'c3a1-doc': [0.25, -0.5, 1e-7, 3.0000001] }, text_id_to_ref_doc_id: { 'c3a1-doc': 'c3a1-doc' }, metadata_dict: {} }
}

describe('stored LangChain chains and LlamaIndex indexes on two nodes', { timeout: 180_000 }, () => {
  const daemons: TestDaemon[] = []

  before(async () => {
    daemons.push(await startTestDaemon())
    daemons.push(await startTestDaemon({ swarm: { bootstrap: [daemons[0].swarmAddr] } }))
    await waitFor('two members', async () => (await daemons[0].node.cluster.nodes()).length === 2 && daemons[1].node.cluster.isReady(), 60_000)
  })
  after(async () => { await Promise.allSettled(daemons.map(async d => d.cleanup())) })

  it("round-trips LangChain's own serialised chain through another node, which revives it", async () => {
    // The parser reads a model's output: its input type is not the prompt's, which without a model is what it gets.
    const chain = PromptTemplate.fromTemplate('Tell me about {topic}').pipe(new StringOutputParser() as never)
    const serialised = JSON.parse(JSON.stringify(chain))
    const stored = await json(daemons[0], '/api/v0/ai/langchain/chain/store', { json: { chain: serialised, name: 'topic-chain', version: '1.0.0', metadata: { author: 'test' } } })
    assert.equal(stored.status, 200, JSON.stringify(stored.body))
    assert.equal(stored.body.success, true)
    assert.match(stored.body.cid, /^Qm/)

    const loaded = await json(daemons[1], '/api/v0/ai/langchain/chain/load?name=topic-chain&version=1.0.0')
    assert.equal(loaded.status, 200, JSON.stringify(loaded.body))
    assert.equal(loaded.body.success, true)
    assert.deepEqual(loaded.body.chain, serialised)
    assert.equal(loaded.body.cid, stored.body.cid)
    assert.deepEqual(loaded.body.metadata, { author: 'test' })
    const revived: any = await load(JSON.stringify(loaded.body.chain))
    assert.equal(revived.constructor.name, 'RunnableSequence')
    assert.equal(await revived.first.format({ topic: 'whales' }), 'Tell me about whales')
  })

  it('loads the latest version by name, a given one by name and version, and names the version of a CID', async () => {
    const v1 = await json(daemons[1], '/api/v0/ai/langchain/chain/store', { json: { chain: { step: 1 }, name: 'versions', version: 'a' } })
    const v2 = await json(daemons[0], '/api/v0/ai/langchain/chain/store', { json: { chain: { step: 2 }, name: 'versions', version: 'b' } })
    assert.equal(v1.status, 200, JSON.stringify(v1.body))
    assert.equal(v2.status, 200, JSON.stringify(v2.body))
    const latest = await json(daemons[1], '/api/v0/ai/langchain/chain/load?name=versions')
    assert.deepEqual([latest.body.version, latest.body.chain], ['b', { step: 2 }])
    const first = await json(daemons[0], '/api/v0/ai/langchain/chain/load', { json: { name: 'versions', version: 'a' } })
    assert.deepEqual([first.body.version, first.body.chain, first.body.cid], ['a', { step: 1 }, v1.body.cid])
    const byCid = await json(daemons[1], `/api/v0/ai/langchain/chain/load?cid=${String(v2.body.cid)}`)
    assert.equal(byCid.status, 200, JSON.stringify(byCid.body))
    assert.deepEqual([byCid.body.name, byCid.body.version, byCid.body.chain], ['versions', 'b', { step: 2 }])
    // Both versions are pinned in the cluster, so an old one stays loadable.
    const pins = await json(daemons[0], '/api/v0/cluster/pins')
    for (const cid of [v1.body.cid, v2.body.cid]) assert.ok(pins.body.pins.some((p: any) => p.cid === cid), JSON.stringify(pins.body))
  })

  it('keeps a version for good: the same content again is no change, other content a 409', async () => {
    const body = { chain: { keep: true }, name: 'fixed', version: '1' }
    const once = await json(daemons[0], '/api/v0/ai/langchain/chain/store', { json: body })
    const again = await json(daemons[1], '/api/v0/ai/langchain/chain/store', { json: body })
    assert.equal(again.status, 200, JSON.stringify(again.body))
    assert.equal(again.body.cid, once.body.cid)
    const other = await json(daemons[1], '/api/v0/ai/langchain/chain/store', { json: { ...body, chain: { keep: false } } })
    assert.equal(other.status, 409, JSON.stringify(other.body))
    assert.equal(other.body.success, false)
    assert.equal(other.body.error_type, 'DocumentVersionExistsError')
    assert.equal(other.body.status_code, 409)
    const loaded = await json(daemons[0], '/api/v0/ai/langchain/chain/load?name=fixed')
    assert.deepEqual(loaded.body.chain, { keep: true })
  })

  it("round-trips LlamaIndex's persisted storage context, given as its serialised text, byte for byte", async () => {
    const text = JSON.stringify(LLAMA_INDEX_STORAGE, null, 2)
    const stored = await json(daemons[1], '/api/v0/ai/llamaindex/index/store', { json: { index: text, name: 'moby', version: '0.1' } })
    assert.equal(stored.status, 200, JSON.stringify(stored.body))
    const loaded = await json(daemons[0], '/api/v0/ai/llamaindex/index/load?name=moby&version=0.1')
    assert.equal(loaded.status, 200, JSON.stringify(loaded.body))
    assert.deepEqual(loaded.body.index, LLAMA_INDEX_STORAGE)
    const cat = await rpc(daemons[0], 'cat', { arg: stored.body.cid })
    assert.equal(await cat.text(), text)
    // A chain of the same name is another family's: indexes and chains do not share names.
    const chain = await json(daemons[0], '/api/v0/ai/langchain/chain/load?name=moby')
    assert.equal(chain.status, 404, JSON.stringify(chain.body))
  })

  it('reaches the same operations through GraphQL', async () => {
    const query = async (d: TestDaemon, text: string): Promise<any> => (await json(d, '/api/v0/graphql', { json: { query: text } })).body
    const stored = await query(daemons[1], 'mutation { storeChain(chain: {a: [1, 2]}, name: "gql", version: "1") { cid name version } }')
    assert.equal(stored.errors, undefined, JSON.stringify(stored))
    const loaded = await query(daemons[0], '{ chain(name: "gql") { cid version document } }')
    assert.deepEqual(loaded.data.chain, { cid: stored.data.storeChain.cid, version: '1', document: { a: [1, 2] } })
    const missing = await query(daemons[0], '{ llamaIndex(name: "gql") { cid } }')
    assert.equal(missing.errors[0].extensions.code, 'DocumentNotFoundError')
  })

  it('reaches the same operations through the method caller', async () => {
    const stored = await json(daemons[0], '/api/ai_llama_index_store_index', { json: { args: [{ nodes: ['n1'] }, 'caller', '1'] } })
    assert.equal(stored.status, 200, JSON.stringify(stored.body))
    const loaded = await json(daemons[1], '/api/ai_llama_index_load_index', { json: { args: ['caller'] } })
    assert.equal(loaded.status, 200, JSON.stringify(loaded.body))
    assert.deepEqual(loaded.body.index, { nodes: ['n1'] })
  })

  it("answers bad input and missing documents in document 000's error shape", async () => {
    const missing = await json(daemons[1], '/api/v0/ai/langchain/chain/load?name=nothing-here')
    assert.equal(missing.status, 404)
    assert.deepEqual([missing.body.success, missing.body.error_type, missing.body.status_code], [false, 'DocumentNotFoundError', 404])
    const noVersion = await json(daemons[1], '/api/v0/ai/langchain/chain/load?name=versions&version=zz')
    assert.equal(noVersion.status, 404)
    assert.match(noVersion.body.error, /a, b/)
    for (const [path, init] of [
      ['/api/v0/ai/langchain/chain/store', { json: { name: 'x', version: '1' } }],
      ['/api/v0/ai/langchain/chain/store', { json: { chain: {}, name: '', version: '1' } }],
      ['/api/v0/ai/langchain/chain/store', { json: { chain: 'not json {', name: 'x', version: '1' } }],
      ['/api/v0/ai/llamaindex/index/store', { json: { index: {}, name: 'x', version: '1', extra: 1 } }],
      ['/api/v0/ai/llamaindex/index/store', { json: { index: {}, name: 'x', version: '1', metadata: { note: 'x'.repeat(20_000) } } }],
      ['/api/v0/ai/langchain/chain/load', {}],
      ['/api/v0/ai/langchain/chain/load?cid=not-a-cid', {}],
      ['/api/v0/ai/langchain/chain/load?version=1', {}]
    ] as const) {
      const res = await json(daemons[0], path, init as RequestInit & { json?: unknown })
      assert.ok(res.status >= 400 && res.status < 500, `${path} ${JSON.stringify(init)}: ${res.status} ${JSON.stringify(res.body)}`)
      assert.equal(res.body.success, false)
      assert.equal(typeof res.body.error_type, 'string')
    }
    // A CID of content that is not JSON is no chain.
    const added = await (await rpc(daemons[0], 'add', {}, { body: (() => { const f = new FormData(); f.append('file', new Blob(['plain words'])); return f })() })).json() as { Hash: string }
    const notJson = await json(daemons[1], `/api/v0/ai/langchain/chain/load?cid=${added.Hash}`)
    assert.equal(notJson.status, 400, JSON.stringify(notJson.body))
  })
})
