/**
 * What a model will take of the node's memory, checked before it is loaded:
 * a model that cannot fit is refused with the figures, rather than loaded
 * until the kernel kills the daemon.
 */
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { configFromGenai, findModelFile, graphBytes } from './model.ts'
import type { ExecutionProvider } from './model.ts'

export interface MemoryNeed {
  /** Bytes of the weights, as the model's files hold them. */
  weights: number
  /** Bytes of the keys and values of one sequence of `tokens`. */
  cache: number
  tokens: number
}

const count = (...values: unknown[]): number | undefined => values.find((v): v is number => typeof v === 'number' && v > 0)

/** What the graph a node would load of `dir` takes (findModelFile's, of `dtype` when given), or its GGUF file. */
export async function memoryNeed (dir: string, contextTokens: number, options: { dtype?: string, executionProvider?: ExecutionProvider } = {}): Promise<MemoryNeed> {
  const file = await findModelFile(dir, options).catch(() => undefined)
  // A directory without an ONNX graph holds a GGUF file, or nothing and fails its load.
  const weights = file != null ? await graphBytes(dir, file.path) : await stat(join(dir, 'model.gguf')).then(s => s.size, () => 0)
  const json = async (name: string): Promise<Record<string, any> | undefined> => readFile(join(dir, name), 'utf8').then(text => JSON.parse(text), () => undefined)
  // An onnxruntime-genai build may say its shape only in genai_config.json.
  const config = await json('config.json') ?? configFromGenai(await json('genai_config.json') ?? {})
  const layers = count(config.num_hidden_layers, config.n_layer) ?? 0
  const heads = count(config.num_attention_heads, config.n_head)
  const kvHeads = count(config.num_key_value_heads, heads) ?? 0
  const hidden = count(config.hidden_size, config.n_embd)
  const headDim = count(config.head_dim, hidden != null && heads != null ? hidden / heads : undefined) ?? 0
  const tokens = Math.min(contextTokens, count(config.max_position_embeddings, config.n_positions, config.n_ctx) ?? contextTokens)
  return { weights, cache: 2 * layers * kvHeads * headDim * 4 * tokens, tokens }
}

export const GIB = 2 ** 30
export const gib = (bytes: number): string => `${(bytes / GIB).toFixed(bytes < GIB ? 2 : 1)} GiB`
