import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { InvalidTensorFileError } from '../src/errors.ts'
import { decodeSafetensors, encodeSafetensors, MAX_SAFETENSORS_HEADER_BYTES } from '../src/safetensors.ts'
import type { Tensor } from '../src/safetensors.ts'

/** A file with any header text and data, for what the encoder would never write. */
function rawFile (header: string | object, data: ArrayLike<number> = [], declaredLength?: number | bigint): Uint8Array {
  const text = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header))
  const out = new Uint8Array(8 + text.length + data.length)
  new DataView(out.buffer).setBigUint64(0, BigInt(declaredLength ?? text.length), true)
  out.set(text, 8)
  out.set(data, 8 + text.length)
  return out
}

function headerOf (file: Uint8Array): { length: number, text: string } {
  const length = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true))
  return { length, text: new TextDecoder().decode(file.subarray(8, 8 + length)) }
}

function rejects (bytes: Uint8Array, message: RegExp): void {
  assert.throws(() => decodeSafetensors(bytes), (err: Error) => {
    assert.equal(err.name, 'InvalidTensorFileError')
    assert.ok(err instanceof InvalidTensorFileError)
    assert.match(err.message, message)
    return true
  })
}

function encodeRejects (tensors: Record<string, unknown>, message: RegExp, metadata?: Record<string, unknown>): void {
  assert.throws(() => encodeSafetensors(tensors as Record<string, Tensor>, metadata as Record<string, string>), (err: Error) => {
    assert.equal(err.name, 'InvalidTensorFileError')
    assert.match(err.message, message)
    return true
  })
}

describe('safetensors', () => {
  it('has a stable error name, static and on the instance', () => {
    assert.equal(InvalidTensorFileError.name, 'InvalidTensorFileError')
    assert.equal(new InvalidTensorFileError('x').name, 'InvalidTensorFileError')
  })

  it('round-trips every dtype, scalars, empty tensors and metadata', () => {
    const tensors: Record<string, Tensor> = {
      weight: { dtype: 'F32', shape: [2, 3], data: new Float32Array([1.5, -2, 0, Math.PI, -0, 3.4e38]) },
      steps: { dtype: 'I64', shape: [3], data: new BigInt64Array([0n, -1n, 2n ** 62n]) },
      ids: { dtype: 'I32', shape: [2, 2], data: new Int32Array([-(2 ** 31), 2 ** 31 - 1, 7, 0]) },
      mask: { dtype: 'U8', shape: [5], data: new Uint8Array([0, 1, 255, 3, 4]) },
      scale: { dtype: 'F32', shape: [], data: new Float32Array([0.5]) },
      empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
      'ünï/cödé.名前': { dtype: 'U8', shape: [1], data: new Uint8Array([9]) }
    }
    const metadata = { format: 'pt', note: 'ü ✓ "quoted"' }
    const decoded = decodeSafetensors(encodeSafetensors(tensors, metadata))
    assert.deepEqual(decoded.metadata, metadata)
    assert.deepEqual(Object.keys(decoded.tensors).sort(), Object.keys(tensors).sort())
    for (const [name, tensor] of Object.entries(tensors)) {
      const got = decoded.tensors[name]
      assert.equal(got.dtype, tensor.dtype, name)
      assert.deepEqual(got.shape, tensor.shape, name)
      assert.equal(got.data.constructor, tensor.data.constructor, name)
      assert.deepEqual(got.data, tensor.data, name)
    }
    assert.ok(Object.is(decoded.tensors.weight.data[4], -0))
  })

  it('decodes a file without metadata to an empty map, and writes none when given none', () => {
    const file = encodeSafetensors({ x: { dtype: 'U8', shape: [1], data: new Uint8Array([1]) } })
    assert.doesNotMatch(headerOf(file).text, /__metadata__/)
    assert.deepEqual(decodeSafetensors(file).metadata, {})
  })

  it('writes the bytes the reference implementation writes', () => {
    // Header in serde_json's compact form, fields in the order dtype, shape, data_offsets, padded to 8 bytes with spaces.
    const file = encodeSafetensors({ attn0: { dtype: 'F32', shape: [1, 1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) } })
    const header = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}'
    assert.equal(header.length, 65)
    assert.equal(headerOf(file).length, 72)
    assert.equal(headerOf(file).text, header + ' '.repeat(7))
    assert.deepEqual([...file.subarray(80)], [...new Uint8Array(new Float32Array([0, 1, 2, 3, 4, 5]).buffer)])
    assert.equal(file.length, 8 + 72 + 24)

    const none = encodeSafetensors({}, { framework: 'pt' })
    assert.equal(headerOf(none).text, '{"__metadata__":{"framework":"pt"}}     ')
    assert.deepEqual(decodeSafetensors(none), { tensors: {}, metadata: { framework: 'pt' } })
    assert.deepEqual([...encodeSafetensors({})], [8, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d, 32, 32, 32, 32, 32, 32])
  })

  it('orders tensors by alignment then name, so key order does not change the bytes', () => {
    const a: Record<string, Tensor> = {
      b: { dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) },
      a: { dtype: 'U8', shape: [1], data: new Uint8Array([4]) },
      f: { dtype: 'F32', shape: [1], data: new Float32Array([1]) },
      i: { dtype: 'I32', shape: [1], data: new Int32Array([2]) },
      l: { dtype: 'I64', shape: [1], data: new BigInt64Array([3n]) }
    }
    const b = Object.fromEntries(Object.entries(a).reverse())
    const file = encodeSafetensors(a)
    assert.deepEqual(file, encodeSafetensors(b))
    const { text, length } = headerOf(file)
    assert.deepEqual(Object.keys(JSON.parse(text)), ['l', 'f', 'i', 'a', 'b'])
    assert.equal((8 + length) % 8, 0)
    // Every tensor starts at a multiple of its own size.
    for (const info of Object.values(JSON.parse(text)) as Array<{ dtype: string, data_offsets: number[] }>) {
      assert.equal(info.data_offsets[0] % ({ I64: 8, F32: 4, I32: 4, U8: 1 } as Record<string, number>)[info.dtype], 0)
    }
  })

  it('encodes typed arrays that are views into a larger buffer', () => {
    const backing = new Float32Array([9, 1, 2, 3, 9])
    const view = backing.subarray(1, 4)
    const decoded = decodeSafetensors(encodeSafetensors({ v: { dtype: 'F32', shape: [3], data: view } }))
    assert.deepEqual(decoded.tensors.v.data, new Float32Array([1, 2, 3]))
  })

  it('decodes tensors at odd offsets, from input at an odd byte offset, into aligned copies', () => {
    const f32 = new Float32Array([1.25, -7, 1e-3])
    const i64 = new BigInt64Array([-5n, 2n ** 40n])
    const data = new Uint8Array(3 + 12 + 16)
    data.set([10, 20, 30])
    data.set(new Uint8Array(f32.buffer), 3)
    data.set(new Uint8Array(i64.buffer), 15)
    // An unpadded header of odd length puts the data itself at an odd file offset too.
    const file = rawFile({
      bytes: { dtype: 'U8', shape: [3], data_offsets: [0, 3] },
      floats: { dtype: 'F32', shape: [3], data_offsets: [3, 15] },
      longs: { dtype: 'I64', shape: [2], data_offsets: [15, 31] }
    }, data)
    // And the whole file sits one byte into its buffer, as a block inside a larger read might.
    const backing = new Uint8Array(file.length + 1)
    backing.set(file, 1)
    const input = backing.subarray(1)
    const { tensors } = decodeSafetensors(input)
    assert.deepEqual(tensors.bytes.data, new Uint8Array([10, 20, 30]))
    assert.deepEqual(tensors.floats.data, f32)
    assert.deepEqual(tensors.longs.data, i64)
    for (const tensor of Object.values(tensors)) assert.equal(tensor.data.byteOffset, 0)
    // Copies, not views: reusing the input leaves them alone.
    input.fill(0)
    assert.deepEqual(tensors.floats.data, f32)
  })

  it('keeps a tensor named __proto__ as a tensor', () => {
    const decoded = decodeSafetensors(encodeSafetensors({ ['__proto__']: { dtype: 'U8', shape: [1], data: new Uint8Array([1]) } } as unknown as Record<string, Tensor>))
    assert.ok(Object.hasOwn(decoded.tensors, '__proto__'))
    assert.equal(Object.getPrototypeOf(decoded.tensors), Object.prototype)
  })

  it('encodes and decodes a 10 MB F32 tensor quickly', () => {
    const data = new Float32Array(2_621_440)
    for (let i = 0; i < data.length; i++) data[i] = i * 0.5
    const started = performance.now()
    const file = encodeSafetensors({ big: { dtype: 'F32', shape: [2560, 1024], data } })
    const decoded = decodeSafetensors(file)
    const elapsed = performance.now() - started
    assert.equal(file.length, 8 + headerOf(file).length + 10 * 2 ** 20)
    const got = decoded.tensors.big.data as Float32Array
    assert.equal(got.length, data.length)
    assert.equal(got[0], 0)
    assert.equal(got[1_000_001], 500_000.5)
    assert.equal(got[data.length - 1], (data.length - 1) * 0.5)
    // Two memcpys of 10 MB take milliseconds; a per-element loop would take far longer.
    assert.ok(elapsed < 250, `took ${elapsed.toFixed(1)} ms`)
  })

  describe('rejects', () => {
    const u8 = (offsets: [number, number], shape = [offsets[1] - offsets[0]]): object => ({ dtype: 'U8', shape, data_offsets: offsets })

    it('a file shorter than 8 bytes', () => {
      rejects(new Uint8Array(5), /shorter than the 8-byte header length/)
    })

    it('a header length past the end of the file', () => {
      rejects(rawFile('{}', [], 100), /header length 100 runs past the end of the 10-byte file/)
    })

    it('a header length over the limit', () => {
      rejects(rawFile('{}', [], 2n ** 63n), /over the 100000000-byte limit/)
      rejects(rawFile('{}', [], MAX_SAFETENSORS_HEADER_BYTES + 1), /over the/)
    })

    it('a header that does not start with {', () => {
      rejects(rawFile(' {}'), /does not start with "\{"/)
      rejects(rawFile(''), /does not start with "\{"/)
    })

    it('a header that is not UTF-8', () => {
      const file = rawFile('{"a":"xx"}')
      file[14] = 0xff
      rejects(file, /not valid UTF-8/)
    })

    it('a header that is not JSON', () => {
      rejects(rawFile('{"a":'), /header is not JSON/)
      rejects(rawFile('{}x'), /header is not JSON/)
    })

    it('an entry that is not an object', () => {
      rejects(rawFile({ a: [1, 2] }), /tensor "a": entry is not an object/)
    })

    it('an unknown or unsupported dtype', () => {
      rejects(rawFile({ h: { dtype: 'F16', shape: [1], data_offsets: [0, 2] } }, [0, 0]), /tensor "h": dtype "F16" is not supported \(F32, I64, I32, U8\)/)
      rejects(rawFile({ h: { shape: [1], data_offsets: [0, 1] } }, [0]), /dtype undefined is not supported/)
    })

    it('a bad shape', () => {
      rejects(rawFile({ a: u8([0, 1], [-1]) }, [0]), /tensor "a": shape \[-1\] is not an array of non-negative integers/)
      rejects(rawFile({ a: u8([0, 1], [1.5]) }, [0]), /shape \[1.5\]/)
      rejects(rawFile({ a: { dtype: 'U8', shape: 1, data_offsets: [0, 1] } }, [0]), /shape 1 is not an array/)
    })

    it('bad data_offsets', () => {
      rejects(rawFile({ a: { dtype: 'U8', shape: [1], data_offsets: [0] } }, [0]), /tensor "a": data_offsets \[0\] is not \[begin, end\]/)
      rejects(rawFile({ a: { dtype: 'U8', shape: [0], data_offsets: [1, 0] } }, [0]), /data_offsets \[1,0\] is not/)
      rejects(rawFile({ a: { dtype: 'U8', shape: [1], data_offsets: [-1, 0] } }, [0]), /data_offsets \[-1,0\] is not/)
      rejects(rawFile({ a: { dtype: 'U8', shape: [1] } }, [0]), /data_offsets undefined is not/)
    })

    it('a size that does not match shape and dtype', () => {
      rejects(rawFile({ a: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } }, new Uint8Array(12)), /tensor "a": shape \[2, 2\] of F32 needs 16 bytes, data_offsets give 12/)
      rejects(rawFile({ a: { dtype: 'I64', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 8] } }, new Uint8Array(8)), /needs .* bytes, data_offsets give 8/)
    })

    it('overlapping tensors', () => {
      rejects(rawFile({ a: u8([0, 4]), b: u8([2, 6]) }, new Uint8Array(6)), /tensor "b" at bytes \[2, 6\) overlaps the tensor before it/)
      rejects(rawFile({ a: u8([0, 4]), b: u8([0, 4]) }, new Uint8Array(4)), /overlaps/)
    })

    it('a gap between tensors, or before the first', () => {
      rejects(rawFile({ a: u8([0, 2]), b: u8([3, 4]) }, new Uint8Array(4)), /data bytes \[2, 3\) belong to no tensor/)
      rejects(rawFile({ a: u8([1, 2]) }, new Uint8Array(2)), /data bytes \[0, 1\) belong to no tensor/)
    })

    it('a tensor past the end of the data', () => {
      rejects(rawFile({ a: u8([0, 2]), b: u8([2, 9]) }, new Uint8Array(4)), /tensor "b" ends at byte 9, past the end of the 4-byte data/)
    })

    it('bytes after the last tensor', () => {
      rejects(rawFile({ a: u8([0, 2]) }, new Uint8Array(5)), /the last 3 bytes of the data belong to no tensor/)
    })

    it('metadata that is not a map of strings', () => {
      rejects(rawFile({ __metadata__: { step: 3 } }), /__metadata__ "step" is not a string/)
      rejects(rawFile({ __metadata__: ['a'] }), /__metadata__ is not an object/)
    })
  })

  describe('refuses to encode', () => {
    it('data of the wrong typed array for its dtype', () => {
      encodeRejects({ w: { dtype: 'F32', shape: [1], data: new Float64Array(1) } }, /tensor "w": F32 data must be a Float32Array, not Float64Array/)
      encodeRejects({ w: { dtype: 'I64', shape: [1], data: [1] } }, /I64 data must be a BigInt64Array, not Array/)
    })

    it('an unknown dtype', () => {
      encodeRejects({ w: { dtype: 'F16', shape: [1], data: new Uint16Array(1) } }, /tensor "w": dtype "F16" is not supported/)
    })

    it('a shape that does not match the data', () => {
      encodeRejects({ w: { dtype: 'F32', shape: [2, 3], data: new Float32Array(5) } }, /tensor "w": shape \[2, 3\] has 6 elements, data has 5/)
      encodeRejects({ w: { dtype: 'F32', shape: [-1], data: new Float32Array(1) } }, /shape \[-1\] is not an array of non-negative integers/)
    })

    it('a tensor named __metadata__', () => {
      encodeRejects({ __metadata__: { dtype: 'U8', shape: [0], data: new Uint8Array(0) } }, /cannot be named __metadata__/)
    })

    it('metadata values that are not strings', () => {
      encodeRejects({}, /metadata "step" is not a string/, { step: 1 })
    })
  })
})
