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
 */
import onnxProto from 'onnx-proto'
import { decodeModelProto } from './reader.ts'

const { onnx } = onnxProto

export interface AppendedKeyValues {
  /** The rewritten ModelProto. */
  model: Uint8Array
  /** For each `present.*` output of the original, the name of the output that now holds only what a step adds. */
  outputs: Record<string, string>
}

/**
 * The rewrite applies when every output named `present.*` is a Concat of the
 * matching `past_key_values.*` input and the step's new part along the
 * sequence axis (axis 2 of [batch, heads, length, head size]), as optimum
 * exports GPT-2, Llama, Qwen or Phi. Anything else (fused attention ops that
 * own their cache, say) gives `undefined`: the model runs as exported.
 */
export function appendedKeyValues (bytes: Uint8Array): AppendedKeyValues | undefined {
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
  if (Object.keys(outputs).length === 0) return undefined

  graph.output = graphOutputs.map(output => {
    const added = outputs[output.name ?? '']
    if (added == null) return output
    // Same element type; the length is the step's, so no shape is promised.
    return onnx.ValueInfoProto.create({ name: added, type: { tensorType: { elemType: output.type?.tensorType?.elemType } } })
  })
  return { model: onnx.ModelProto.encode(proto).finish(), outputs }
}
