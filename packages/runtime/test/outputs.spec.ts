import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import * as ort from 'onnxruntime-node'
import { freeOutputs } from '../src/worker-session.ts'

describe('freeOutputs', () => {
  it('frees at once a buffer a tensor has to itself, and leaves views of shared buffers alone', () => {
    const own = new ort.Tensor('float32', new Float32Array(1 << 20), [1 << 20])
    const shared = new Float32Array(1024)
    const head = new ort.Tensor('float32', shared.subarray(0, 512), [512])
    const tail = new ort.Tensor('float32', shared.subarray(512), [512])
    const before = process.memoryUsage().arrayBuffers
    freeOutputs([own, head, tail])
    assert.equal((own.data as Float32Array).length, 0, 'detached')
    assert.ok(before - process.memoryUsage().arrayBuffers >= 4 << 20, 'its 4 MiB are given back without a collection')
    assert.equal(shared.length, 1024)
    assert.equal((head.data as Float32Array).length, 512)
  })
})
