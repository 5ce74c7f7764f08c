/**
 * Reading files of content whole: configs, checkpoints and a model
 * directory's ONNX graph with its external data, fetched from the cluster
 * when this node lacks the blocks.
 */
import { readModel } from '@node-daemon/onnx'
import type { Content } from '@node-daemon/content'
import type { Model } from '@node-daemon/onnx'
import type { AbortOptions } from '@libp2p/interface'

export async function readJson (content: Pick<Content, 'readFile'>, path: string, options: AbortOptions = {}): Promise<any> {
  return JSON.parse(new TextDecoder().decode(await content.readFile(path, options)))
}

/** model.onnx of a model directory, with whatever external data files sit next to it. */
export async function readOnnx (content: Pick<Content, 'readFile' | 'ls'>, dir: string, options: AbortOptions = {}): Promise<Model> {
  const { entries } = await content.ls(dir, options)
  const files = new Map<string, Uint8Array>()
  for (const entry of entries) {
    // External data sits next to the graph (model.onnx_data, model.onnx.data); the tokenizer and configs need not be read.
    if (entry.name !== 'model.onnx' && entry.type === 'file' && /onnx|data/.test(entry.name) && !entry.name.endsWith('.json')) files.set(entry.name, await content.readFile(`${dir}/${entry.name}`, options))
  }
  const onnx = await content.readFile(`${dir}/model.onnx`, options)
  return readModel(onnx, { externalData: location => files.get(location) ?? new Uint8Array(0) })
}
