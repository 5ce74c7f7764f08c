/**
 * A GGUF model in a three-node cluster of processes: imported at one node,
 * it is replicated by CID like any model, and a client of a node that does
 * not hold it is served by the node that does (Ollama's generate, streamed,
 * and chat with the file's template); /api/ps shows it loaded there.
 */
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Ollama } from 'ollama'
import { convertDecoder } from '@node-daemon/gguf'
import { assetDir } from '@node-daemon/models'
import { FAST, ProcessCluster, agreedLeader, call, lastWorker, pinnedOn, upload } from '../helpers/cluster.ts'
import type { Member } from '../helpers/cluster.ts'

const MODEL = 'tiny-gguf:f32'
const GREEDY = { temperature: 0, repeat_penalty: 1, num_predict: 24 }
const PROMPT = 'It was a fine morning, and Elizabeth'
const MESSAGES = [{ role: 'user', content: 'Tell me about the weather.' }]

describe('a GGUF model across a three-node cluster', () => {
  const cluster = new ProcessCluster(FAST)
  let dir: string
  let cid: string
  let holder: Member
  let other: Member

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'inference-gguf-cluster-'))
    await mkdir(join(dir, 'model'))
    await convertDecoder(assetDir('tiny-gpt'), join(dir, 'model', 'tiny-gpt.F32.gguf'))
    const first = await cluster.add()
    await cluster.add()
    await cluster.add()
    await agreedLeader(cluster.members)
    cid = await upload(first, MODEL, join(dir, 'model'))
  })
  after(async () => {
    await cluster.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('is replicated by CID to every node, and registered as GGUF in the cluster', async () => {
    await pinnedOn(cluster.members[0], cid, 3)
    for (const m of cluster.members) {
      const listed = (await new Ollama({ host: m.api }).list()).models.find(x => x.name === MODEL)
      assert.deepEqual(listed && { digest: listed.digest.length > 0, format: listed.details.format, family: listed.details.family }, { digest: true, format: 'gguf', family: 'gpt2' }, m.api)
    }
    // One replica from here on, so that two nodes lack the model and must send its requests to the holder.
    const pinned = await call(cluster.members[0], '/api/v0/cluster/pin/add', { json: { cid, replication_factor: 1 } })
    assert.equal(pinned.status, 200, JSON.stringify(pinned.body))
    const [holderId] = await pinnedOn(cluster.members[0], cid, 1)
    holder = cluster.members.find(m => m.peerId === holderId) as Member
    other = cluster.members.find(m => m !== holder && m !== cluster.members[0]) as Member
    assert.ok(holder != null && other != null)
  })

  it('serves a client of a node without the model from the node that holds it: generate streamed, and chat', async () => {
    const reference = await new Ollama({ host: holder.api }).generate({ model: MODEL, prompt: PROMPT, raw: true, stream: false, options: GREEDY })
    assert.ok((reference.response ?? '').length > 0)
    const client = new Ollama({ host: other.api })
    let streamed = ''
    let parts = 0
    for await (const part of await client.generate({ model: MODEL, prompt: PROMPT, raw: true, stream: true, options: GREEDY })) {
      streamed += part.response ?? ''
      parts++
    }
    assert.equal(streamed, reference.response)
    assert.ok(parts > 2, 'streamed in parts')
    assert.equal(await lastWorker(other), holder.peerId)

    const localChat = await new Ollama({ host: holder.api }).chat({ model: MODEL, messages: MESSAGES, stream: false, options: { ...GREEDY, num_predict: 16 } })
    const chat = await client.chat({ model: MODEL, messages: MESSAGES, stream: false, options: { ...GREEDY, num_predict: 16 } })
    assert.equal(chat.message.content, localChat.message.content)
    assert.equal(await lastWorker(other), holder.peerId)
    const local = await readdir(join(other.repo, 'models')).catch((): string[] => [])
    assert.ok(!local.includes(cid), 'the node without the model did not fetch it')
  })

  it('shows in /api/ps on the node that loaded it, and not on the one that sent it the requests', async () => {
    const ps = async (m: Member): Promise<string[]> => (await new Ollama({ host: m.api }).ps()).models.map(x => x.name)
    assert.ok((await ps(holder)).includes(MODEL))
    assert.ok(!(await ps(other)).includes(MODEL))
  })
})
