/**
 * What a model will take of the node's memory, checked before it is loaded:
 * a model that cannot fit is refused with the figures, rather than loaded
 * until the kernel kills the daemon.
 */
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { configCacheShape, configFromGenai, contextLength, findModelFile, graphBytes } from './model.ts'
import type { ExecutionProvider } from './model.ts'

export interface MemoryNeed {
  /**
   * Bytes of the weights, as the model's files hold them. Mapped weights (a
   * GGUF file, external data that onnxruntime does not prepack) sit in the
   * page cache rather than the heap, but every step reads them all, so they
   * must stay resident to run at speed; the weights onnxruntime prepacks
   * (MatMul's) are copied to the heap at load. Either way a byte on disk
   * takes a byte of memory.
   */
  weights: number
  /** Bytes of the keys and values of one sequence of `tokens`. */
  cache: number
  tokens: number
}

/** A size the config states, or 0 where it does not. */
const stated = (n: number): number => Number.isFinite(n) && n > 0 ? n : 0

/** What the graph a node would load of `dir` takes (findModelFile's, of `dtype` when given), or its GGUF file. */
export async function memoryNeed (dir: string, contextTokens: number, options: { dtype?: string, executionProvider?: ExecutionProvider } = {}): Promise<MemoryNeed> {
  const file = await findModelFile(dir, options).catch(() => undefined)
  // A directory without an ONNX graph holds a GGUF file, or nothing and fails its load.
  const weights = file != null ? await graphBytes(dir, file.path) : await stat(join(dir, 'model.gguf')).then(s => s.size, () => 0)
  const json = async (name: string): Promise<Record<string, any> | undefined> => readFile(join(dir, name), 'utf8').then(text => JSON.parse(text), () => undefined)
  // An onnxruntime-genai build may say its shape only in genai_config.json.
  const config = await json('config.json') ?? configFromGenai(await json('genai_config.json') ?? {})
  const { layers, kvHeads, headDim } = configCacheShape(config)
  // The context the runtime will give a sequence: the model's, at most contextTokens.
  const tokens = Math.min(contextTokens, contextLength(config))
  return { weights, cache: 2 * stated(layers) * stated(kvHeads) * stated(headDim) * 4 * tokens, tokens }
}

export const GIB = 2 ** 30
export const gib = (bytes: number): string => `${(bytes / GIB).toFixed(bytes < GIB ? 2 : 1)} GiB`
