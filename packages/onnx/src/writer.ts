/**
 * Encodes a Model as an ONNX ModelProto with onnx-proto. Tensors go in as
 * raw little-endian bytes, as the exporters write them; weights above a
 * threshold can go to an external data file, the layout Hugging Face uses
 * for models past protobuf's 2 GB limit.
 */
import onnxProto from 'onnx-proto'
import type { Attribute, DataType, Dim, Model, TensorValue, ValueInfo } from './graph.ts'

const { onnx } = onnxProto

/** IR version 8 is the newest onnx-proto knows; onnxruntime reads it with any opset it supports. */
const IR_VERSION = 8

/** TensorProto.DataType codes of the types graph.ts holds; the reader inverts it. */
export const DATA_TYPES: Record<DataType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float16: onnx.TensorProto.DataType.FLOAT16,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  uint8: onnx.TensorProto.DataType.UINT8,
  int8: onnx.TensorProto.DataType.INT8,
  bool: onnx.TensorProto.DataType.BOOL
}

export interface WriteOptions {
  /** Store initializers of at least `threshold` bytes (default 1024) in this file, relative to the model file. */
  externalData?: { location: string, threshold?: number }
}

export interface WrittenModel {
  /** The model.onnx bytes. */
  model: Uint8Array
  /** The external data file's bytes, when `externalData` was asked for. */
  externalData?: Uint8Array
}

function bytesOf (tensor: TensorValue): Uint8Array {
  const { data } = tensor
  // Typed arrays are little-endian on every platform Node runs on, as ONNX's raw_data wants.
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
}

function tensorProto (name: string, tensor: TensorValue): onnxProto.onnx.ITensorProto {
  return { name, dims: tensor.dims, dataType: DATA_TYPES[tensor.type], rawData: bytesOf(tensor) }
}

function valueInfo (info: ValueInfo): onnxProto.onnx.IValueInfoProto {
  const dim = (d: Dim): onnxProto.onnx.TensorShapeProto.IDimension => typeof d === 'number' ? { dimValue: d } : { dimParam: d }
  return {
    name: info.name,
    type: { tensorType: { elemType: DATA_TYPES[info.type], shape: { dim: info.shape.map(dim) } } }
  }
}

function attribute (name: string, a: Attribute): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType
  switch (a.type) {
    case 'int': return { name, type: T.INT, i: a.value }
    case 'float': return { name, type: T.FLOAT, f: a.value }
    case 'string': return { name, type: T.STRING, s: new TextEncoder().encode(a.value) }
    case 'ints': return { name, type: T.INTS, ints: a.value }
    case 'floats': return { name, type: T.FLOATS, floats: a.value }
    case 'tensor': return { name, type: T.TENSOR, t: tensorProto('', a.value) }
  }
}

export function writeModel (model: Model, options: WriteOptions = {}): WrittenModel {
  const { graph } = model
  const external: Uint8Array[] = []
  let offset = 0
  const initializers = graph.initializers.map(init => {
    const proto = tensorProto(init.name, init)
    const threshold = options.externalData?.threshold ?? 1024
    if (options.externalData == null || init.data.byteLength < threshold) return proto
    const bytes = bytesOf(init)
    // 4 KiB alignment lets onnxruntime map the weights in place.
    const pad = (4096 - offset % 4096) % 4096
    if (pad > 0) external.push(new Uint8Array(pad))
    offset += pad
    external.push(bytes)
    const entry = { location: options.externalData.location, offset: String(offset), length: String(bytes.byteLength) }
    offset += bytes.byteLength
    return {
      ...proto,
      rawData: undefined,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: Object.entries(entry).map(([key, value]) => ({ key, value }))
    }
  })
  const proto: onnxProto.onnx.IModelProto = {
    irVersion: IR_VERSION,
    producerName: model.producer ?? 'node-daemon',
    opsetImport: [{ domain: '', version: model.opset }, ...domains(model)],
    metadataProps: Object.entries(model.metadata ?? {}).map(([key, value]) => ({ key, value })),
    graph: {
      name: graph.name,
      input: graph.inputs.map(valueInfo),
      output: graph.outputs.map(valueInfo),
      initializer: initializers,
      node: graph.nodes.map((node, i) => ({
        opType: node.op,
        name: node.name ?? `${node.op}_${i}`,
        domain: node.domain ?? '',
        input: node.inputs,
        output: node.outputs,
        attribute: Object.entries(node.attributes ?? {}).map(([name, a]) => attribute(name, a))
      }))
    }
  }
  const written: WrittenModel = { model: onnx.ModelProto.encode(proto).finish() }
  if (options.externalData != null) written.externalData = concat(external, offset)
  return written
}

/** Opset imports for the non-default domains the nodes use, e.g. com.microsoft at version 1. */
function domains (model: Model): onnxProto.onnx.IOperatorSetIdProto[] {
  const used = new Set(model.graph.nodes.map(n => n.domain ?? '').filter(d => d !== ''))
  return [...used].map(domain => ({ domain, version: 1 }))
}

function concat (parts: Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length)
  let at = 0
  for (const part of parts) {
    out.set(part, at)
    at += part.byteLength
  }
  return out
}
