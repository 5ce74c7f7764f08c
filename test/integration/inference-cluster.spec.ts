/**
 * Inference across three daemons, each its own process: a request made at a
 * node that lacks the model runs on the node that holds it, with the same
 * greedy output; and when that node is killed mid-stream, the job runs again
 * on another node, which pulls the model by CID, and the client's stream
 * goes on to the same text.
 */
import assert from 'node:assert/strict'
import { cp, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Ollama } from 'ollama'
import { tinyModels } from '../../packages/runtime/test/helpers/tiny-models.ts'
import { FAST, ProcessCluster, agreedLeader, call, lastWorker, pinnedOn, upload, waitFor } from '../helpers/cluster.ts'
import type { TinyModels } from '../../packages/runtime/test/helpers/tiny-models.ts'
import type { Member } from '../helpers/cluster.ts'

const MODEL = 'tiny-test'
const LONG = { temperature: 0, repeat_penalty: 1, num_predict: 400 }
const PROMPT = 'The Musgroves came back'

describe('inference across a three-node cluster', () => {
  const cluster = new ProcessCluster(FAST)
  let models: TinyModels
  let cid: string
  let holder: Member
  let other: Member
  let reference: { response?: string, done_reason: string, context: number[] }

  before(async () => {
    models = await tinyModels()
    const first = await cluster.add()
    await cluster.add()
    await cluster.add()
    await agreedLeader(cluster.members)
    cid = await upload(first, MODEL, models.decoder)
    await pinnedOn(first, cid, 3)
    // One replica only, so that two nodes lack the model.
    const pinned = await call(first, '/api/v0/cluster/pin/add', { json: { cid, replication_factor: 1 } })
    assert.equal(pinned.status, 200, JSON.stringify(pinned.body))
    const [holderId] = await pinnedOn(first, cid, 1)
    holder = cluster.members.find(m => m.peerId === holderId) as Member
    // Not the importer either, which keeps the bytes it added.
    other = cluster.members.find(m => m !== holder && m !== first) as Member
    reference = await new Ollama({ host: holder.api }).generate({ model: MODEL, prompt: PROMPT, raw: true, stream: false, options: LONG })
    assert.equal(reference.done_reason, 'length', 'the reference runs to num_predict, so a kill lands mid-stream')
  })
  after(async () => {
    await cluster.stop()
    await rm(models.root, { recursive: true, force: true })
  })

  it('runs a request made at a node without the model on the node that holds it, with the same greedy output', async () => {
    const res = await new Ollama({ host: other.api }).generate({ model: MODEL, prompt: PROMPT, raw: true, stream: false, options: LONG, logprobs: true, top_logprobs: 2 })
    assert.equal(res.response, reference.response)
    // The worker's log-probabilities and tokens come back over the inference protocol.
    const logprobs = res.logprobs ?? []
    assert.equal(logprobs.length, res.eval_count)
    // ollama-js does not type Ollama's bytes, which the node sends.
    assert.ok(logprobs.every(l => Array.isArray((l as { bytes?: number[] }).bytes)))
    assert.ok(logprobs.every(l => l.top_logprobs?.length === 2))
    assert.deepEqual(res.context, reference.context)
    assert.equal(await lastWorker(other), holder.peerId)
    const local = await readdir(join(other.repo, 'models')).catch((): string[] => [])
    assert.ok(!local.includes(cid), 'the node without the model did not fetch it')
  })

  it('runs the job again elsewhere when its worker dies mid-stream, and the stream goes on unbroken', async () => {
    let text = ''
    let done: any
    let killed = false
    let tokens = 0
    for await (const part of await new Ollama({ host: other.api }).generate({ model: MODEL, prompt: PROMPT, raw: true, stream: true, options: LONG, logprobs: true })) {
      tokens += part.logprobs?.length ?? 0
      if (!killed && (part.response ?? '') !== '') {
        killed = true
        await cluster.kill(holder)
      }
      if (part.done) done = part
      else text += part.response ?? ''
    }
    assert.ok(killed)
    assert.equal(done?.done_reason, 'length')
    assert.equal(text, reference.response, 'the replacement replays the same tokens, and only the new ones reach the client')
    assert.equal(tokens, done?.eval_count, 'and only the new tokens\' log-probabilities')
    const worker = await waitFor('the job completed by the replacement', async () => {
      const w = await lastWorker(other)
      return w !== holder.peerId ? w : undefined
    })
    assert.equal(worker, other.peerId, 'the requesting node pulled the model and ran it')
    assert.ok((await readdir(join(other.repo, 'models'))).includes(cid))
  })

  it('pulls a model by CID from the cluster with Ollama\'s progress lines', async () => {
    // The first node may have been the holder that was killed.
    const [importer, puller] = cluster.live()
    // The same model with one more file: a directory of its own, new to the puller.
    const variant = join(models.root, 'variant')
    await cp(models.decoder, variant, { recursive: true })
    await writeFile(join(variant, 'README.md'), 'a variant to pull\n')
    const variantCid = await upload(importer, 'tiny-variant', variant)
    const lines: Array<{ status: string, total?: number, completed?: number }> = []
    for await (const line of await new Ollama({ host: puller.api }).pull({ model: variantCid, stream: true })) lines.push(line)
    assert.equal(lines[0].status, 'pulling manifest')
    assert.equal(lines.at(-1)?.status, 'success')
    const biggest = Math.max(...lines.map(l => l.total ?? 0))
    const model = lines.filter(l => l.total === biggest)
    assert.ok(biggest > 100_000 && model.at(-1)?.completed === biggest, 'model.onnx pulled to its last byte')
    assert.ok((await readdir(join(puller.repo, 'models'))).includes(variantCid))
    const pins = await call(puller, `/api/v0/pin/ls?arg=${variantCid}`, { method: 'POST' })
    assert.equal(pins.status, 200, 'and pinned there')
  })
})
