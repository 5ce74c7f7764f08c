import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { chooseExecutionProvider, measureResources, parseNvidiaSmi } from '../src/resources.ts'

describe('measureResources', () => {
  let dir: string

  before(async () => { dir = await mkdtemp(join(tmpdir(), 'node-daemon-resources-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('measures this machine', async () => {
    const r = await measureResources(dir)
    assert.ok(Number.isInteger(r.cpu.cores) && r.cpu.cores >= 1)
    assert.ok(r.cpu.model.length > 0)
    assert.ok(r.cpu.load1 >= 0)
    assert.ok(r.cpu.usage >= 0 && r.cpu.usage <= 1)
    assert.ok(r.memory.total > r.memory.free && r.memory.free > 0, JSON.stringify(r.memory))
    assert.ok(r.disk.total >= r.disk.free && r.disk.free >= 0 && r.disk.total > 0, JSON.stringify(r.disk))
    assert.ok(Array.isArray(r.gpus))
    assert.ok(r.executionProviders.includes('cpu'), r.executionProviders.join())
    if (r.gpus.length === 0) assert.ok(!r.executionProviders.includes('cuda'), 'no CUDA without a GPU')
    assert.equal(r.executionProvider, r.executionProviders.includes('cuda') ? 'cuda' : 'cpu')
    assert.equal((await measureResources(dir, { executionProvider: 'cpu' })).executionProvider, 'cpu')
  })

  it('chooses CUDA only when it can run here, unless told', () => {
    assert.equal(chooseExecutionProvider('auto', ['cpu', 'cuda']), 'cuda')
    assert.equal(chooseExecutionProvider('auto', ['cpu', 'webgpu']), 'cpu')
    assert.equal(chooseExecutionProvider('cpu', ['cpu', 'cuda']), 'cpu')
  })

  it('measures CPU usage between calls, and keeps the slow probes', async () => {
    const first = await measureResources(dir)
    // Work for longer than the shortest window, so that the second sample sees busy time.
    const until = Date.now() + 400
    while (Date.now() < until) Math.sqrt(Math.random())
    const started = performance.now()
    const second = await measureResources(dir)
    assert.ok(performance.now() - started < 500, 'GPUs and providers come from the cache')
    assert.ok(second.cpu.usage > 0 && second.cpu.usage <= 1, String(second.cpu.usage))
    const third = await measureResources(dir)
    assert.equal(third.cpu.usage, second.cpu.usage, 'a call right after another repeats its usage')
    assert.deepEqual(second.executionProviders, first.executionProviders)
    assert.deepEqual(second.gpus, first.gpus)
  })

  it('finds the disk of a repo that does not exist yet', async () => {
    const r = await measureResources(join(dir, 'not', 'yet'))
    assert.ok(r.disk.total > 0)
  })

  it('stops on an aborted signal', async () => {
    await assert.rejects(measureResources(dir, { signal: AbortSignal.abort() }), { name: 'AbortError' })
  })
})

describe('parseNvidiaSmi', () => {
  it('reads nvidia-smi CSV in MiB as bytes, with commas in names', () => {
    const csv = '0, NVIDIA GeForce RTX 3090, 24576, 1024\n1, Tesla T4, 15360, 0\n\nNo devices were found\n'
    assert.deepEqual(parseNvidiaSmi(csv), [
      { id: 0, name: 'NVIDIA GeForce RTX 3090', vram: { total: 24576 * 1_048_576, used: 1024 * 1_048_576 } },
      { id: 1, name: 'Tesla T4', vram: { total: 15360 * 1_048_576, used: 0 } }
    ])
    assert.equal(parseNvidiaSmi('2, Odd, Name, 100, 5\n')[0].name, 'Odd, Name')
  })
})
