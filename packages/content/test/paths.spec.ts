import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseCID, parsePath, toExporterPath } from '../src/paths.ts'

const V0 = 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o'
const V1 = 'bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e'

describe('paths', () => {
  describe('parsePath', () => {
    it('reads a bare CIDv0 or CIDv1', () => {
      const v0 = parsePath(V0)
      assert.equal(v0.cid.toString(), V0)
      assert.equal(v0.cid.version, 0)
      assert.deepEqual(v0.rest, [])
      const v1 = parsePath(V1)
      assert.equal(v1.cid.toString(), V1)
      assert.equal(v1.cid.version, 1)
      assert.deepEqual(v1.rest, [])
    })

    it('reads /ipfs/<cid>/path and <cid>/path, dropping empty segments', () => {
      for (const input of [`/ipfs/${V0}/a/b`, `${V0}/a/b`, `/ipfs/${V0}//a/b/`, `${V0}/a//b//`]) {
        const parsed = parsePath(input)
        assert.equal(parsed.cid.toString(), V0, input)
        assert.deepEqual(parsed.rest, ['a', 'b'], input)
      }
      assert.deepEqual(parsePath(`/ipfs/${V1}/`).rest, [])
    })

    it('keeps the CID as given: a CIDv0 stays v0, a base32 CIDv1 stays base32', () => {
      assert.equal(parsePath(`/ipfs/${V0}`).cid.toString(), V0)
      assert.equal(parsePath(`/ipfs/${V1}/x`).cid.toString(), V1)
    })

    it('refuses an empty input, other namespaces and bad CIDs with InvalidCIDError', () => {
      for (const input of ['', '/', '/ipfs/', '/ipns/k51qzi5uqu5dgy', '/ipld/' + V1, 'not-a-cid', 'Qm', `${V0.slice(0, -1)}0/a`, '/ipfs/bafy']) {
        assert.throws(() => parsePath(input), { name: 'InvalidCIDError' }, JSON.stringify(input))
      }
      assert.throws(() => parsePath(undefined as unknown as string), { name: 'InvalidCIDError' })
    })
  })

  describe('parseCID', () => {
    it('parses a CID and refuses anything else with InvalidCIDError', () => {
      assert.equal(parseCID(V1).toString(), V1)
      assert.throws(() => parseCID(`/ipfs/${V1}`), { name: 'InvalidCIDError' })
      assert.throws(() => parseCID(''), { name: 'InvalidCIDError' })
    })

    it('parses a CID seen lately once: a cluster pin request names it three times on its way', () => {
      assert.equal(parseCID(V0), parseCID(V0))
      assert.equal(parsePath(`/ipfs/${V0}/a`).cid, parseCID(V0))
      assert.notEqual(parseCID(V0), parseCID(V1))
      assert.throws(() => parseCID(`${V0.slice(0, -1)}0`), { name: 'InvalidCIDError' })
    })
  })

  describe('toExporterPath', () => {
    it('joins the CID and the segments with slashes', () => {
      assert.equal(toExporterPath(parsePath(`/ipfs/${V0}//a/b/`)), `${V0}/a/b`)
      assert.equal(toExporterPath(parsePath(V1)), V1)
    })
  })
})
