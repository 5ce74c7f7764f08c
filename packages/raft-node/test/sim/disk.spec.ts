/**
 * The simulated disk keeps exactly what POSIX promises and no more, since the
 * simulation's findings about the storage are only as good as this.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Rng } from '../../../raft/test/sim/rng.ts'
import { SimDisk } from './disk.ts'
import { Process, Scheduler } from './scheduler.ts'
import type { RaftFs } from '../../src/fs.ts'

const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder()

function setup (seed = 1): { sched: Scheduler, disk: SimDisk, proc: Process, fs: RaftFs, run: <T>(p: Promise<T>) => Promise<T> } {
  const sched = new Scheduler()
  const disk = new SimDisk(sched, new Rng(seed), { op: 0.5, sync: 2 })
  disk.mkdirSynced('/repo')
  const proc = new Process('p')
  return { sched, disk, proc, fs: disk.fsFor(proc), run: async (p) => await sched.settle(p) }
}

async function text (run: <T>(p: Promise<T>) => Promise<T>, fs: RaftFs, path: string): Promise<string | undefined> {
  try {
    return fromUtf8.decode(await run(fs.readFile(path)))
  } catch (err: any) {
    if (err.code === 'ENOENT') return undefined
    throw err
  }
}

async function append (run: <T>(p: Promise<T>) => Promise<T>, fs: RaftFs, path: string, parts: string[], sync: boolean[]): Promise<void> {
  const f = await run(fs.open(path, 'w'))
  let at = 0
  for (const [i, part] of parts.entries()) {
    const bytes = utf8.encode(part)
    await run(f.write(bytes, 0, bytes.byteLength, at))
    at += bytes.byteLength
    if (sync[i]) await run(f.datasync())
  }
  await run(f.close())
}

describe('simulated disk', () => {
  it('keeps synced data and names through a power loss, and loses what was not synced', async () => {
    const { disk, fs, run } = setup()
    await append(run, fs, '/repo/a', ['synced ', 'not'], [true, false])
    const dir = await run(fs.open('/repo', 'r'))
    await run(dir.sync())
    await run(fs.rename('/repo/a', '/repo/b'))
    assert.equal(await text(run, fs, '/repo/b'), 'synced not', 'reads see the page cache')
    disk.powerLoss(true)
    const after = disk.fsFor(new Process('q'))
    assert.equal(await text(run, after, '/repo/a'), 'synced ', 'the rename was not synced in its directory')
    assert.equal(await text(run, after, '/repo/b'), undefined)
  })

  it('needs a new directory\'s parent synced for its name to last', async () => {
    const { disk, fs, run } = setup()
    assert.equal(await run(fs.mkdir('/repo/x/y')), '/repo/x')
    assert.equal(await run(fs.mkdir('/repo/x/y')), undefined)
    await append(run, fs, '/repo/x/y/f', ['data'], [true])
    for (const d of ['/repo/x/y', '/repo/x']) await run((await run(fs.open(d, 'r'))).sync())
    disk.powerLoss(true)
    assert.deepEqual(await run(disk.fsFor(new Process('q')).readdir('/repo')), [], 'the parent of x was never synced')
  })

  it('keeps everything a killed process wrote, but never answers it again', async () => {
    const { sched, disk, proc, fs, run } = setup()
    await append(run, fs, '/repo/a', ['unsynced'], [false])
    const f = await run(fs.open('/repo/a', 'r+'))
    proc.alive = false
    let answered = false
    void f.datasync().then(() => { answered = true })
    await sched.run(sched.now + 100, () => false)
    assert.equal(answered, false)
    assert.equal(await text(run, disk.fsFor(new Process('q')), '/repo/a'), 'unsynced')
  })

  it('keeps a prefix of the unsynced writes, the last one torn, under random power losses', async () => {
    const parts = ['one.', 'two.', 'three.']
    const seen = new Set<string>()
    for (let seed = 1; seed <= 200; seed++) {
      const { disk, fs, run } = setup(seed)
      await append(run, fs, '/repo/a', ['synced.', ...parts], [true, false, false, false])
      await run((await run(fs.open('/repo', 'r'))).sync())
      disk.powerLoss()
      const got = await text(run, disk.fsFor(new Process('q')), '/repo/a') as string
      assert.ok(got.startsWith('synced.'), got)
      const rest = got.slice('synced.'.length).replace(/\0+$/, '')
      assert.ok(parts.join('').startsWith(rest), `seed ${seed}: ${JSON.stringify(got)} is not a prefix of the writes`)
      seen.add(got.endsWith('\0') ? 'zeros' : parts.some((_, i) => rest === parts.slice(0, i).join('')) || rest === parts.join('') ? 'whole' : 'torn')
    }
    assert.deepEqual([...seen].sort(), ['torn', 'whole', 'zeros'])
  })
})
