/**
 * Rewrites a decoder with a KV cache so that it outputs, per layer, only the
 * keys and values a step adds instead of the whole grown cache.
 *
 * Why: onnxruntime-node copies every output into a new ArrayBuffer, even one
 * written into a buffer the caller gave. With `present.*` as outputs each
 * decoding step allocated the whole cache again (about 1 MB per token on the
 * default model, tens of MB on larger ones), and that external memory made V8
 * run a full mark-compact every few dozen tokens: a fifth of a daemon's main
 * thread while it decoded. The caller appends the new keys and values to a
 * cache it keeps in reused buffers, which is the same copy without the
 * allocation.
 *
 * The graph also takes each past with room past its end (the caller's
 * buffers, grown now and then rather than at each token) and slices it to
 * the length the attention mask gives, total minus the step's tokens: so
 * the graph sees an exact past, and what it measures in indices of the
 * sequence (a sliding window, positions counted along the mask) is right
 * whatever room the buffers have. The slices copy each past at every step,
 * though: a graph that reads the sequence's length only through its
 * position_ids and mask takes the room as it is instead, masked out by the
 * caller (roomMasked).
 */
import onnxProto from 'onnx-proto'
import { decodeModelProto } from './reader.ts'

const { onnx } = onnxProto

export interface AppendedKeyValues {
  /** The rewritten ModelProto. */
  model: Uint8Array
  /** For each `present.*` output of the original, the name of the output that now holds only what a step adds. */
  outputs: Record<string, string>
  /** Each past is sliced to the mask's past length; otherwise the caller masks the room itself. */
  sliced: boolean
}

export interface AppendedKeyValuesOptions {
  /**
   * The graph reads nothing from a sequence's length but through its
   * position_ids and mask (no sliding window, no length-dependent RoPE), so
   * the room fed past the cache's end, masked out, changes no token: the
   * pasts are then fed as they are, without the slices, which copy each
   * past at every step (a tenth of the default model's step).
   */
  roomMasked?: boolean
}

/** Names of the nodes and constants the rewrite adds, apart from the graph's own. */
const PREFIX = 'appended_kv/'

const int64 = (name: string, value: number): onnxProto.onnx.ITensorProto => ({ name: PREFIX + name, dataType: onnx.TensorProto.DataType.INT64, dims: [1], int64Data: [value] })

/**
 * The rewrite applies when every output named `present.*` is a Concat of the
 * matching `past_key_values.*` input and the step's new part along the
 * sequence axis (axis 2 of [batch, heads, length, head size]), as optimum
 * exports GPT-2, Llama, Qwen or Phi, and the graph takes input_ids and
 * attention_mask (whose lengths give the past's). Anything else (fused attention ops that
 * own their cache, say) gives `undefined`: the model runs as exported.
 */
export function appendedKeyValues (bytes: Uint8Array, options: AppendedKeyValuesOptions = {}): AppendedKeyValues | undefined {
  const { proto, graph } = decodeModelProto(bytes)
  const inputs = new Set((graph.input ?? []).map(i => i.name))
  const producers = new Map<string, onnxProto.onnx.INodeProto>()
  for (const node of graph.node ?? []) for (const out of node.output ?? []) producers.set(out, node)

  const outputs: Record<string, string> = {}
  const graphOutputs = graph.output ?? []
  for (const output of graphOutputs) {
    const name = output.name ?? ''
    const past = name.replace(/^present\./, 'past_key_values.')
    if (past === name) continue
    const node = producers.get(name)
    const axis = Number(String(node?.attribute?.find(a => a.name === 'axis')?.i ?? NaN))
    const [first, added] = node?.input ?? []
    if (node?.opType !== 'Concat' || (node.domain ?? '') !== '' || node.input?.length !== 2 || first !== past || !inputs.has(past) || (axis !== 2 && axis !== -2) || added == null || inputs.has(added)) return undefined
    outputs[name] = added
  }
  if (Object.keys(outputs).length === 0 || !inputs.has('input_ids') || !inputs.has('attention_mask')) return undefined
  const opset = proto.opsetImport.find(o => (o.domain ?? '') === '' || o.domain === 'ai.onnx')
  // Slice takes its bounds as inputs from opset 10.
  if (opset == null || Number(opset.version) < 10) return undefined
  const sliced = options.roomMasked !== true || !inputs.has('position_ids')
  if (sliced) slicePasts(graph, Object.keys(outputs))

  graph.output = graphOutputs.map(output => {
    const added = outputs[output.name ?? '']
    if (added == null) return output
    // Same element type; the length is the step's, so no shape is promised.
    return onnx.ValueInfoProto.create({ name: added, type: { tensorType: { elemType: output.type?.tensorType?.elemType } } })
  })
  return { model: onnx.ModelProto.encode(proto).finish(), outputs, sliced }
}

/** Feeds each past through a slice to the mask's past length, total minus the step's tokens, so that the graph sees an exact past whatever room it is fed with. */
function slicePasts (graph: onnxProto.onnx.IGraphProto, presents: string[]): void {
  // past[:, :, :mask length − step length]: Sub of the two shapes is [0, past length, …].
  const op = (opType: string, input: string[], output: string): onnxProto.onnx.INodeProto => ({ opType, input, output: [PREFIX + output], name: PREFIX + output })
  const pastLength = PREFIX + 'past_length'
  const sliced = (past: string): string => `${PREFIX}${past}`
  const pasts = presents.map(name => name.replace(/^present\./, 'past_key_values.'))
  const renamed = new Set(pasts)
  for (const input of graph.input ?? []) {
    // Fed with room, a past's length is no longer the mask's past length.
    const length = renamed.has(input.name ?? '') ? input.type?.tensorType?.shape?.dim?.[2] : undefined
    if (length != null) Object.assign(length, { dimValue: undefined, dimParam: 'past_capacity' })
  }
  for (const n of graph.node ?? []) n.input = (n.input ?? []).map(i => renamed.has(i) ? sliced(i) : i)
  graph.initializer = [...(graph.initializer ?? []), int64('0', 0), int64('1', 1), int64('2', 2)]
  graph.node = [
    op('Shape', ['attention_mask'], 'mask_shape'),
    op('Shape', ['input_ids'], 'ids_shape'),
    op('Sub', [PREFIX + 'mask_shape', PREFIX + 'ids_shape'], 'lengths'),
    op('Slice', [PREFIX + 'lengths', PREFIX + '1', PREFIX + '2', PREFIX + '0'], 'past_length'),
    ...pasts.map(past => ({ opType: 'Slice', input: [past, PREFIX + '0', pastLength, PREFIX + '2'], output: [sliced(past)], name: sliced(past) })),
    ...(graph.node ?? [])
  ]
}
