/**
 * Decodes an ONNX ModelProto into the plain-data Model of graph.ts, the
 * inverse of writeModel, so that a model fetched as content (a checkpoint,
 * a committed default) can be run, trained or rewritten. Tensor data is
 * copied out of the input, so the model owns aligned arrays.
 */
import onnxProto from 'onnx-proto'
import type { Attribute, DataType, Dim, Model, Node, TensorData, TensorValue, ValueInfo } from './graph.ts'
import { ExternalDataError, ModelFormatError } from './errors.ts'
import { DATA_TYPES } from './writer.ts'

const { onnx } = onnxProto

export interface ReadOptions {
  /** The bytes of an external data file, by its location relative to the model file as the model names it. */
  externalData?: (location: string) => Uint8Array
}

const TYPES = new Map(Object.entries(DATA_TYPES).map(([type, code]) => [code, type as DataType]))
const ELEMENT_BYTES: Record<DataType, number> = { float32: 4, float16: 2, int64: 8, int32: 4, uint8: 1, int8: 1, bool: 1 }

/** protobufjs decodes 64-bit integers as Long objects (or numbers); both print as their decimal value. */
type Int64 = number | { toString: () => string }
const toNumber = (v: Int64 | null | undefined): number => Number(String(v ?? 0))
const toBigInt = (v: Int64): bigint => BigInt(String(v))

/** The ModelProto in `bytes`, and its graph; ModelFormatError if there is none. */
export function decodeModelProto (bytes: Uint8Array): { proto: onnxProto.onnx.ModelProto, graph: onnxProto.onnx.IGraphProto } {
  let proto: onnxProto.onnx.ModelProto
  try {
    proto = onnx.ModelProto.decode(bytes)
  } catch (err) {
    throw new ModelFormatError(`not an ONNX model: ${(err as Error).message}`, { cause: err })
  }
  if (proto.graph == null) throw new ModelFormatError('the model has no graph')
  return { proto, graph: proto.graph }
}

export function readModel (bytes: Uint8Array, options: ReadOptions = {}): Model {
  const { proto, graph } = decodeModelProto(bytes)
  // Dropping them would leave nodes that call functions nobody defines.
  if (proto.functions.length > 0) throw new ModelFormatError('the model defines functions, which graph.ts cannot hold')
  if ((graph.sparseInitializer?.length ?? 0) > 0) throw new ModelFormatError('the graph has sparse initializers, which graph.ts cannot hold')
  const opset = proto.opsetImport.find(o => o.domain == null || o.domain === '' || o.domain === 'ai.onnx')
  if (opset == null) throw new ModelFormatError('the model imports no opset of the default domain')

  const files = new Map<string, Uint8Array>()
  const file = (location: string, tensor: string): Uint8Array => {
    let data = files.get(location)
    if (data === undefined) {
      if (options.externalData === undefined) throw new ExternalDataError(location, `${tensor} is stored in the external file ${location}: pass options.externalData to read it`)
      data = options.externalData(location)
      files.set(location, data)
    }
    return data
  }
  const tensor = (t: onnxProto.onnx.ITensorProto, what: string): TensorValue => tensorValue(t, what, file)

  let unnamed = 0
  // As onnxruntime names dimensions that have neither a size nor a name.
  const valueInfo = (v: onnxProto.onnx.IValueInfoProto): ValueInfo => readValueInfo(v, () => `unk__${unnamed++}`)

  const model: Model = {
    graph: {
      name: graph.name ?? '',
      inputs: (graph.input ?? []).map(valueInfo),
      outputs: (graph.output ?? []).map(valueInfo),
      initializers: (graph.initializer ?? []).map(t => ({ name: t.name ?? '', ...tensor(t, `initializer ${t.name}`) })),
      nodes: (graph.node ?? []).map(n => readNode(n, tensor))
    },
    opset: toNumber(opset.version)
  }
  if (proto.producerName !== '') model.producer = proto.producerName
  if (proto.metadataProps.length > 0) model.metadata = Object.fromEntries(proto.metadataProps.map(p => [p.key ?? '', p.value ?? '']))
  return model
}

/**
 * The float32 initializers `names` as copies, ready to train or to pass to
 * a model builder: e.g. readWeights(model, gptParameterShapes(config).map(s => s.name)).
 */
export function readWeights (model: Model, names: string[]): Record<string, Float32Array> {
  const weights: Record<string, Float32Array> = {}
  for (const name of names) {
    const init = model.graph.initializers.find(i => i.name === name)
    if (init === undefined) throw new ModelFormatError(`the model has no initializer ${name}`)
    if (!(init.data instanceof Float32Array)) throw new ModelFormatError(`initializer ${name} is ${init.type}, not float32`)
    // Copies, because optimizers update weights in place and the model should stay as read.
    weights[name] = Float32Array.from(init.data)
  }
  return weights
}

function readNode (n: onnxProto.onnx.INodeProto, tensor: (t: onnxProto.onnx.ITensorProto, what: string) => TensorValue): Node {
  const node: Node = { op: n.opType ?? '', inputs: [...(n.input ?? [])], outputs: [...(n.output ?? [])] }
  const what = `node ${n.name ?? n.opType}`
  if ((n.attribute?.length ?? 0) > 0) {
    node.attributes = Object.fromEntries((n.attribute ?? []).map(a => [a.name ?? '', attribute(a, `${what}, attribute ${a.name}`, tensor)]))
  }
  if (n.name != null && n.name !== '') node.name = n.name
  // 'ai.onnx' is another name of the default domain, which graph.ts leaves unset.
  if (n.domain != null && n.domain !== '' && n.domain !== 'ai.onnx') node.domain = n.domain
  return node
}

function attribute (a: onnxProto.onnx.IAttributeProto, what: string, tensor: (t: onnxProto.onnx.ITensorProto, what: string) => TensorValue): Attribute {
  const T = onnx.AttributeProto.AttributeType
  switch (a.type) {
    case T.INT: return { type: 'int', value: toNumber(a.i) }
    case T.FLOAT: return { type: 'float', value: a.f ?? 0 }
    case T.STRING: return { type: 'string', value: new TextDecoder().decode(a.s ?? new Uint8Array(0)) }
    case T.INTS: return { type: 'ints', value: (a.ints ?? []).map(toNumber) }
    case T.FLOATS: return { type: 'floats', value: [...(a.floats ?? [])] }
    case T.TENSOR:
      if (a.t == null) throw new ModelFormatError(`${what}: a tensor attribute without a tensor`)
      return { type: 'tensor', value: tensor(a.t, what) }
    default: throw new ModelFormatError(`${what}: type ${T[a.type ?? 0]}, which graph.ts cannot hold`)
  }
}

function readValueInfo (v: onnxProto.onnx.IValueInfoProto, unnamed: () => string): ValueInfo {
  const tensor = v.type?.tensorType
  const type = TYPES.get(tensor?.elemType ?? 0)
  if (type === undefined) throw new ModelFormatError(`${v.name}: not a tensor of a type graph.ts holds`)
  if (tensor?.shape == null) throw new ModelFormatError(`${v.name}: no shape, which graph.ts cannot hold`)
  const dim = (d: onnxProto.onnx.TensorShapeProto.IDimension): Dim => d.dimValue != null ? toNumber(d.dimValue) : d.dimParam ?? unnamed()
  return { name: v.name ?? '', type, shape: (tensor.shape.dim ?? []).map(dim) }
}

type ExternalFile = (location: string, tensor: string) => Uint8Array

function tensorValue (t: onnxProto.onnx.ITensorProto, what: string, file: ExternalFile): TensorValue {
  const type = TYPES.get(t.dataType ?? 0)
  if (type === undefined) throw new ModelFormatError(`${what}: data type ${onnx.TensorProto.DataType[t.dataType ?? 0]}, which graph.ts cannot hold`)
  const dims = (t.dims ?? []).map(toNumber)
  const count = dims.reduce((a, b) => a * b, 1)
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) return { type, dims, data: fromBytes(type, externalBytes(t, what, count * ELEMENT_BYTES[type], file), count, what) }
  if ((t.rawData?.byteLength ?? 0) > 0 || count === 0) return { type, dims, data: fromBytes(type, t.rawData ?? new Uint8Array(0), count, what) }
  return { type, dims, data: fromFields(type, t, count, what) }
}

function externalBytes (t: onnxProto.onnx.ITensorProto, what: string, size: number, file: ExternalFile): Uint8Array {
  const entries = new Map((t.externalData ?? []).map(e => [e.key, e.value]))
  const location = entries.get('location')
  if (location == null) throw new ModelFormatError(`${what}: external data without a location`)
  const offset = Number(entries.get('offset') ?? 0)
  const length = Number(entries.get('length') ?? size)
  const data = file(location, what)
  if (!(offset + length <= data.byteLength)) throw new ExternalDataError(location, `${what}: bytes ${offset} to ${offset + length} lie past the end of ${location} (${data.byteLength} bytes)`)
  return data.subarray(offset, offset + length)
}

function fromBytes (type: DataType, bytes: Uint8Array, count: number, what: string): TensorData {
  const expected = count * ELEMENT_BYTES[type]
  if (bytes.byteLength !== expected) throw new ModelFormatError(`${what}: ${expected} bytes expected, ${bytes.byteLength} stored`)
  // A copy: the bytes may sit at any offset of the input (typed arrays need aligned ones), and a Buffer's slice() would be a view.
  const { buffer } = new Uint8Array(bytes)
  switch (type) {
    case 'float32': return new Float32Array(buffer)
    case 'float16': return new Uint16Array(buffer)
    case 'int64': return new BigInt64Array(buffer)
    case 'int32': return new Int32Array(buffer)
    case 'uint8':
    case 'bool': return new Uint8Array(buffer)
    case 'int8': return new Int8Array(buffer)
  }
}

/** The typed fields that older exporters write instead of raw_data; int32 and bool both live in int32_data. */
function fromFields (type: DataType, t: onnxProto.onnx.ITensorProto, count: number, what: string): TensorData {
  const field = type === 'float32' ? t.floatData : type === 'int64' ? t.int64Data : t.int32Data
  if ((field?.length ?? 0) !== count) throw new ModelFormatError(`${what}: ${count} elements expected, ${field?.length ?? 0} stored`)
  switch (type) {
    case 'float32': return Float32Array.from(t.floatData ?? [])
    // Older exporters put float16 bits, one per element, in int32_data.
    case 'float16': return Uint16Array.from(t.int32Data ?? [])
    case 'int64': return BigInt64Array.from(t.int64Data ?? [], toBigInt)
    case 'int32': return Int32Array.from(t.int32Data ?? [])
    case 'uint8': return Uint8Array.from(t.int32Data ?? [])
    case 'int8': return Int8Array.from(t.int32Data ?? [])
    case 'bool': return Uint8Array.from(t.int32Data ?? [], v => v !== 0 ? 1 : 0)
  }
}
