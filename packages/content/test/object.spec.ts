import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { goRandomBytes } from './fixtures/go-random.ts'
import { bytes, collect, startContent } from './fixtures/node.ts'
import type { Content } from '../src/content.ts'
import type { DirectoryEntry } from '../src/object.ts'

describe('linkDirectory', () => {
  let content: Content
  before(async () => { content = await startContent() })
  after(async () => { await content?.stop() })

  // Nested, with a file of several leaves: the links' sizes must be the importer's for the CIDs to agree.
  const files = [
    { path: 'a.txt', content: bytes('alpha\n') },
    { path: 'data/big.bin', content: goRandomBytes(600_000, 7) },
    { path: 'data/deeper/c.txt', content: bytes('gamma\n') },
    { path: 'b.txt', content: bytes('beta\n') }
  ]

  for (const cidVersion of [0, 1] as const) {
    it(`gives the CID addDirectory gives the same files (CIDv${cidVersion}), reading none of them`, async () => {
      const whole = await content.addDirectory(files, { pin: false, cidVersion })
      const entries: DirectoryEntry[] = []
      for (const file of files) {
        for await (const event of content.addAll([{ content: file.content }], { pin: false, cidVersion })) {
          if (event.type === 'entry') entries.push({ path: file.path, cid: event.cid, size: event.size })
        }
      }
      const linked = await content.linkDirectory(entries, { cidVersion })
      assert.equal(linked.toString(), whole?.toString())
      assert.deepEqual((await collect(content.cat(`${linked.toString()}/data/deeper/c.txt`))).map(b => Buffer.from(b).toString()), ['gamma\n'])
    })
  }

  it('refuses a path named twice, or as a file and a directory', async () => {
    const [cid] = (await collect(content.addAll([{ content: bytes('x') }], { pin: false }))).flatMap(e => e.type === 'entry' ? [e.cid] : [])
    await assert.rejects(content.linkDirectory([{ path: 'x', cid, size: 1 }, { path: 'x', cid, size: 1 }]), { name: 'InvalidParameterError' })
    await assert.rejects(content.linkDirectory([{ path: 'x', cid, size: 1 }, { path: 'x/y', cid, size: 1 }]), { name: 'InvalidParameterError' })
  })
})
