import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { DatasetScanner, DEFAULT_MAX_DATASET_BYTES, describeDataset, encodeTensorDataset, encodeTextDataset, parseDataset, TENSOR_DATASET_FORMAT } from '../src/dataset.ts'
import type { TensorDataset, TextDataset } from '../src/dataset.ts'
import { InvalidDatasetError } from '../src/errors.ts'
import { decodeSafetensors, encodeSafetensors } from '../src/safetensors.ts'
import type { Tensor } from '../src/safetensors.ts'

const utf8 = new TextEncoder()

function invalid (fn: () => unknown, message: RegExp, line?: number): InvalidDatasetError {
  let caught: unknown
  assert.throws(fn, (err: Error) => {
    assert.equal(err.name, 'InvalidDatasetError')
    assert.match(err.message, message)
    caught = err
    return true
  })
  const err = caught as InvalidDatasetError
  assert.equal(err.line, line)
  return err
}

function text (jsonl: string): string[] {
  const dataset = parseDataset(utf8.encode(jsonl)) as TextDataset
  assert.equal(dataset.format, 'text')
  return dataset.texts
}

function tensorFile (tensors: Record<string, Tensor>, metadata?: Record<string, string>): Uint8Array {
  return encodeSafetensors(tensors, metadata)
}

const f32 = (rows: number, columns: number, values?: number[]): Tensor => ({ dtype: 'F32', shape: [rows, columns], data: new Float32Array(values ?? Array.from({ length: rows * columns }, (_, i) => i / 4)) })
const i64 = (values: Array<number | bigint>, shape = [values.length]): Tensor => ({ dtype: 'I64', shape, data: new BigInt64Array(values.map(v => BigInt(v))) })
const i32 = (values: number[], shape = [values.length]): Tensor => ({ dtype: 'I32', shape, data: new Int32Array(values) })

/** The same safetensors file with its header padded (or trimmed) to `length` bytes, as writers other than ours may leave it. */
function withHeaderLength (file: Uint8Array, length: number): Uint8Array {
  const old = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true))
  const header = new TextDecoder().decode(file.subarray(8, 8 + old)).trimEnd()
  assert.ok(header.length <= length)
  const out = new Uint8Array(8 + length + file.length - 8 - old)
  new DataView(out.buffer).setBigUint64(0, BigInt(length), true)
  out.set(utf8.encode(header.padEnd(length, ' ')), 8)
  out.set(file.subarray(8 + old), 8 + length)
  return out
}

describe('datasets', () => {
  it('has a stable error name, static and on the instance', () => {
    assert.equal(InvalidDatasetError.name, 'InvalidDatasetError')
    assert.equal(new InvalidDatasetError('x').name, 'InvalidDatasetError')
    assert.equal(new InvalidDatasetError('x', { line: 3 }).message, 'line 3: x')
  })

  describe('text', () => {
    it('round-trips unicode, newlines, quotes and lone surrogates', () => {
      const texts = [
        'hello world',
        'naïve café, Größe, ﬁ ligature',
        '日本語のテキストと中文',
        'emoji 🎉👍🏽 and a family 👨‍👩‍👧',
        'RTL עברית and العربية',
        'multi\nline\r\ntext\twith "quotes" and \\ backslashes',
        'separators \u2028 and \u2029 and NUL \u0000',
        'lone \ud800 surrogate',
        ''
      ]
      const bytes = encodeTextDataset(texts)
      assert.deepEqual(parseDataset(bytes), { format: 'text', texts })
      // One line per text, each with a newline, so files concatenate.
      const lines = new TextDecoder().decode(bytes).split('\n')
      assert.equal(lines.length, texts.length + 1)
      assert.equal(lines.at(-1), '')
    })

    it('reads CRLF line endings, a trailing newline, blank lines and extra fields', () => {
      assert.deepEqual(text('{"text":"a"}\r\n{"text":"b","id":1,"meta":{"x":[1]}}\r\n\r\n  \t\r\n{"text":"ü"}\r\n'), ['a', 'b', 'ü'])
      assert.deepEqual(text('{"text":"no trailing newline"}'), ['no trailing newline'])
      assert.deepEqual(text('\n\n  {"text": "indented", "n": null}  \n\n'), ['indented'])
      assert.deepEqual(text('{"text":"a\\r\\n"}\r\n'), ['a\r\n'])
    })

    it('skips a UTF-8 byte order mark', () => {
      const bytes = new Uint8Array([0xef, 0xbb, 0xbf, ...utf8.encode('{"text":"bom"}\n')])
      assert.deepEqual(parseDataset(bytes), { format: 'text', texts: ['bom'] })
    })

    it('reads a JSONL whose bytes 8 and 9 are {" as text, since no header length fits', () => {
      assert.deepEqual(text('{"x":   {"y":1},"text":"a"}\n'), ['a'])
    })

    it('describes records and characters as code points', () => {
      const dataset = parseDataset(encodeTextDataset(['abc', 'ü🎉', '日本'])) as TextDataset
      assert.deepEqual(describeDataset(dataset), { format: 'text', records: 3, characters: 7 })
    })

    it('reads datasets larger than one decoding chunk, with line numbers that carry across chunks', () => {
      const line = `{"text":"${'ü'.repeat(40)}"}\n`
      const count = Math.ceil((17 << 20) / utf8.encode(line).length)
      const lines = Array.from({ length: count }, (_, i) => i === count - 1 ? '{"text":"last"}\n' : line)
      const dataset = parseDataset(utf8.encode(lines.join(''))) as TextDataset
      assert.equal(dataset.texts.length, count)
      assert.equal(dataset.texts[count - 2], 'ü'.repeat(40))
      assert.equal(dataset.texts[count - 1], 'last')

      lines[count - 2] = '{"text": oops}\n'
      invalid(() => parseDataset(utf8.encode(lines.join(''))), /^line \d+: not JSON/, count - 1)

      lines[count - 2] = line
      const bytes = utf8.encode(lines.join(''))
      bytes[bytes.length - 8] = 0xff
      invalid(() => parseDataset(bytes), /not valid UTF-8/, count)
    })

    describe('rejects', () => {
      it('a line that is not JSON, with its line number', () => {
        const err = invalid(() => text('{"text":"a"}\n\n{"text": oops}\n'), /^line 3: not JSON: /, 3)
        assert.equal(err.line, 3)
        invalid(() => text('{"text":"a"}\r\n{"text":"b"} {"text":"c"}\r\n'), /^line 2: not JSON/, 2)
      })

      it('a line that is not an object', () => {
        invalid(() => text('{"text":"a"}\n["text"]\n'), /^line 2: not a JSON object$/, 2)
        invalid(() => text('{"text":"a"}\n"text"\n'), /^line 2: not a JSON object$/, 2)
        invalid(() => text('{"text":"a"}\nnull\n'), /^line 2: not a JSON object$/, 2)
      })

      it('a line without a string text field', () => {
        invalid(() => text('{"body":"a"}\n'), /^line 1: no "text" field$/, 1)
        invalid(() => text('{"text":"a"}\n{"text":3}\n'), /^line 2: "text" is number, not a string$/, 2)
        invalid(() => text('{"text":null}\n'), /^line 1: "text" is null, not a string$/, 1)
        invalid(() => text('{"text":["a"]}\n'), /^line 1: "text" is object, not a string$/, 1)
      })

      it('bytes that are not UTF-8, with the line', () => {
        const bytes = utf8.encode('{"text":"a"}\r\n{"text":"xx"}\r\n')
        bytes[24] = 0xc3
        invalid(() => parseDataset(bytes), /^line 2: not valid UTF-8$/, 2)
      })

      it('an empty dataset', () => {
        invalid(() => parseDataset(new Uint8Array(0)), /dataset has no records/)
        invalid(() => text(' \r\n\n\t'), /dataset has no records/)
        invalid(() => encodeTextDataset([]), /dataset has no records/)
      })

      it('bytes in neither format', () => {
        invalid(() => text('hello world\n'), /not a dataset: expected JSONL text .* or a safetensors file/)
        invalid(() => text('["text"]\n'), /not a dataset/)
      })

      it('texts that are not strings, when encoding', () => {
        invalid(() => encodeTextDataset(['a', 3 as unknown as string]), /texts\[1\] is not a string/)
      })
    })
  })

  describe('tensors', () => {
    const features = new Float32Array([0.5, 1, 2, -3, 4.25, 5, 6, 7, 8, 9, 10, 11])
    const labels = new Int32Array([2, 0, 1, 0])

    it('round-trips features, labels and classes', () => {
      const dataset = parseDataset(encodeTensorDataset({ features, labels, featureCount: 3, classes: 5 })) as TensorDataset
      assert.deepEqual(dataset, { format: 'tensors', count: 4, featureCount: 3, classes: 5, features, labels })
      assert.deepEqual(describeDataset(dataset), { format: 'tensors', records: 4, features: 3, classes: 5 })
    })

    it('writes labels as I64 with the format and classes in the metadata', () => {
      const decoded = decodeSafetensors(encodeTensorDataset({ features, labels, featureCount: 3 }))
      assert.deepEqual(decoded.metadata, { format: TENSOR_DATASET_FORMAT, classes: '3' })
      assert.deepEqual(decoded.tensors.labels, { dtype: 'I64', shape: [4], data: new BigInt64Array([2n, 0n, 1n, 0n]) })
      assert.deepEqual(decoded.tensors.features.shape, [4, 3])
    })

    it('reads a file without metadata, as numpy writes one, taking classes as max(label) + 1', () => {
      for (const labelTensor of [i64([0, 3, 1]), i32([0, 3, 1])]) {
        const dataset = parseDataset(tensorFile({ features: f32(3, 2), labels: labelTensor })) as TensorDataset
        assert.equal(dataset.classes, 4)
        assert.deepEqual(dataset.labels, new Int32Array([0, 3, 1]))
        assert.deepEqual(dataset.features, new Float32Array([0, 0.25, 0.5, 0.75, 1, 1.25]))
      }
    })

    it('ignores other tensors and other metadata', () => {
      const dataset = parseDataset(tensorFile({ features: f32(2, 1), labels: i64([1, 0]), ids: i32([7, 8]) }, { source: 'x' })) as TensorDataset
      assert.equal(dataset.count, 2)
      assert.equal(dataset.classes, 2)
    })

    it('detects a safetensors file whose header length has "{" as its low byte', () => {
      const file = withHeaderLength(tensorFile({ features: f32(2, 2), labels: i64([0, 1]) }), 0x17b)
      assert.equal(file[0], 0x7b)
      assert.equal((parseDataset(file) as TensorDataset).count, 2)
    })

    describe('rejects', () => {
      it('a file that is not valid safetensors, keeping the cause', () => {
        const file = encodeTensorDataset({ features, labels, featureCount: 3 })
        const err = invalid(() => parseDataset(file.subarray(0, file.length - 1)), /not a valid safetensors file: .*past the end/)
        assert.equal((err.cause as Error).name, 'InvalidTensorFileError')
      })

      it('missing or mistyped features', () => {
        invalid(() => parseDataset(tensorFile({ labels: i64([0]) })), /no "features" tensor/)
        invalid(() => parseDataset(tensorFile({ features: i32([1, 2], [1, 2]), labels: i64([0]) })), /"features" is I32, not F32/)
        invalid(() => parseDataset(tensorFile({ features: { dtype: 'F32', shape: [4], data: new Float32Array(4) }, labels: i64([0]) })), /"features" has shape \[4\], not \[N, F\]/)
        invalid(() => parseDataset(tensorFile({ features: f32(2, 0), labels: i64([0, 0]) })), /"features" has 0 columns/)
      })

      it('missing or mistyped labels', () => {
        invalid(() => parseDataset(tensorFile({ features: f32(2, 2) })), /no "labels" tensor/)
        invalid(() => parseDataset(tensorFile({ features: f32(2, 2), labels: f32(2, 1) })), /"labels" is F32, not I64 or I32/)
      })

      it('a labels shape that does not match features', () => {
        invalid(() => parseDataset(tensorFile({ features: f32(2, 2), labels: i64([0, 1, 1]) })), /"labels" has shape \[3\], not \[2\] as "features" has 2 rows/)
        invalid(() => parseDataset(tensorFile({ features: f32(2, 2), labels: i64([0, 1], [2, 1]) })), /"labels" has shape \[2, 1\], not \[2\]/)
        invalid(() => encodeTensorDataset({ features, labels: new Int32Array(3), featureCount: 3 }), /"labels" has 3 values, not 4 as "features" has 4 rows/)
        invalid(() => encodeTensorDataset({ features, labels, featureCount: 5 }), /"features" has 12 values, not a multiple of 5 features/)
      })

      it('labels out of range', () => {
        invalid(() => parseDataset(tensorFile({ features: f32(3, 1), labels: i32([0, -1, 1]) })), /labels\[1\] is -1, outside \[0, /)
        invalid(() => parseDataset(tensorFile({ features: f32(3, 1), labels: i64([0, 1, -4]) })), /labels\[2\] is -4, outside \[0, /)
        invalid(() => parseDataset(tensorFile({ features: f32(2, 1), labels: i64([0, 2 ** 40]) })), /labels\[1\] is 1099511627776, outside \[0, 2147483647\)/)
        invalid(() => parseDataset(tensorFile({ features: f32(2, 1), labels: i64([0, 3]) }, { classes: '3' })), /labels\[1\] is 3, outside \[0, 3\)/)
        invalid(() => parseDataset(tensorFile({ features: f32(2, 1), labels: i32([3, 0]) }, { classes: '3' })), /labels\[0\] is 3, outside \[0, 3\)/)
        invalid(() => encodeTensorDataset({ features, labels, featureCount: 3, classes: 2 }), /labels\[0\] is 2, outside \[0, 2\)/)
      })

      it('bad metadata', () => {
        const tensors = { features: f32(2, 1), labels: i64([0, 1]) }
        invalid(() => parseDataset(tensorFile(tensors, { classes: 'two' })), /__metadata__ "classes" is "two", not an integer in \[1, 2147483647\]/)
        invalid(() => parseDataset(tensorFile(tensors, { classes: '0' })), /"classes" is "0"/)
        invalid(() => parseDataset(tensorFile(tensors, { classes: '99999999999' })), /"classes" is "99999999999"/)
        invalid(() => parseDataset(tensorFile(tensors, { format: 'other' })), /__metadata__ "format" is "other", not "node-daemon\/tensors"/)
        invalid(() => encodeTensorDataset({ features, labels, featureCount: 3, classes: 2.5 }), /classes is 2.5, not an integer/)
      })

      it('an empty dataset', () => {
        invalid(() => parseDataset(tensorFile({ features: f32(0, 3), labels: i64([]) })), /dataset has no records/)
        invalid(() => encodeTensorDataset({ features: new Float32Array(0), labels: new Int32Array(0), featureCount: 3 }), /dataset has no records/)
      })

      it('features that are not finite', () => {
        invalid(() => parseDataset(tensorFile({ features: f32(2, 3, [0, 1, 2, 3, NaN, 5]), labels: i64([0, 1]) })), /features\[1\]\[1\] is NaN, not finite/)
        invalid(() => encodeTensorDataset({ features: new Float32Array([1, -Infinity]), labels: new Int32Array([0]), featureCount: 2 }), /features\[0\]\[1\] is -Infinity/)
      })

      it('inputs of the wrong types, when encoding', () => {
        invalid(() => encodeTensorDataset({ features: [1, 2] as unknown as Float32Array, labels, featureCount: 1 }), /"features" must be a Float32Array/)
        invalid(() => encodeTensorDataset({ features, labels: new BigInt64Array(4) as unknown as Int32Array, featureCount: 3 }), /"labels" must be an Int32Array/)
        invalid(() => encodeTensorDataset({ features, labels, featureCount: 0 }), /"features" has 0 columns/)
      })
    })
  })

  describe('size limit', () => {
    it('defaults to 1 GiB', () => {
      assert.equal(DEFAULT_MAX_DATASET_BYTES, 2 ** 30)
    })

    it('rejects either format over the limit', () => {
      const jsonl = encodeTextDataset(['a fairly long text'])
      invalid(() => parseDataset(jsonl, { maxBytes: 10 }), new RegExp(`dataset is ${jsonl.length} bytes, over the 10-byte limit`))
      assert.equal(parseDataset(jsonl, { maxBytes: jsonl.length }).format, 'text')
      const tensors = encodeTensorDataset({ features: new Float32Array(12), labels: new Int32Array([0]), featureCount: 12 })
      invalid(() => parseDataset(tensors, { maxBytes: tensors.length - 1 }), /over the \d+-byte limit/)
    })
  })

  describe('scanned as it streams', () => {
    /** What a scanner says of `bytes` written in the pieces `cuts` makes: the info, or the error's message. */
    function scan (bytes: Uint8Array, cuts: number[]): string {
      const scanner = new DatasetScanner()
      try {
        let at = 0
        for (const cut of [...cuts.filter(c => c < bytes.length)].sort((a, b) => a - b)) {
          scanner.write(bytes.subarray(at, cut))
          at = cut
        }
        scanner.write(bytes.subarray(at))
        return JSON.stringify(scanner.end())
      } catch (err) {
        assert.equal((err as Error).name, 'InvalidDatasetError')
        return (err as Error).message
      }
    }

    /** What parsing the whole of `bytes` says: the same form as scan. */
    function whole (bytes: Uint8Array): string {
      try {
        return JSON.stringify(describeDataset(parseDataset(bytes)))
      } catch (err) {
        return (err as Error).message
      }
    }

    const valid = [
      encodeTextDataset(['abc', 'ü🎉 and more', '日本', 'a\nb']),
      utf8.encode('\ufeff{"text":"bom"}\r\n\r\n  {"text":"last, no newline"}'),
      tensorFile({ features: f32(3, 2), labels: i64([2, 0, 1]) }),
      withHeaderLength(tensorFile({ features: f32(2, 2), labels: i32([0, 3]) }), 0x17b),
      encodeTensorDataset({ features: new Float32Array([1, 2, 3, 4, 5, 6]), labels: new Int32Array([0, 4]), featureCount: 3, classes: 9 })
    ]
    const broken = [
      utf8.encode('{"text":"a"}\n{"text": oops}\n'),
      utf8.encode('{"text":"a"}\n{"text":1}'),
      new Uint8Array([...utf8.encode('{"text":"a"}\n{"text":"'), 0xff, ...utf8.encode('"}\n')]),
      utf8.encode('hello\n'),
      utf8.encode('  \n\n'),
      tensorFile({ features: f32(2, 2, [0, 1, Number.NaN, 3]), labels: i64([0, 1]) }),
      tensorFile({ features: f32(2, 2), labels: i64([0, -1]) }),
      tensorFile({ features: f32(2, 2), labels: i64([0, 5]) }, { classes: '3' }),
      tensorFile({ features: f32(2, 2), labels: i64([0]) }),
      tensorFile({ labels: i64([0]) }),
      tensorFile({ features: f32(2, 2), labels: i64([0, 1]) }).subarray(0, 40),
      new Uint8Array([...tensorFile({ features: f32(1, 1), labels: i64([0]) }), 0, 0, 0])
    ]

    it('says what parsing the whole file says, however the bytes are cut', () => {
      for (const bytes of [...valid, ...broken]) {
        const expected = whole(bytes)
        fc.assert(fc.property(fc.array(fc.nat({ max: bytes.length }), { maxLength: 12 }), cuts => scan(bytes, cuts) === expected), { numRuns: 60 })
        assert.equal(scan(bytes, Array.from({ length: bytes.length }, (_, i) => i)), expected, 'one byte at a time')
      }
    })

    it('holds a line, not the file: a line over its bound is refused with its number', () => {
      const scanner = new DatasetScanner()
      scanner.write(utf8.encode('{"text":"a"}\n{"text":"'))
      const piece = new Uint8Array(1 << 20).fill(0x61)
      assert.throws(() => { for (let i = 0; i < 40; i++) scanner.write(piece) }, { name: 'InvalidDatasetError', message: /^line 2: line is longer than/ })
    })
  })
})
