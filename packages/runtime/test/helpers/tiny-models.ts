/**
 * Small untrained models in the Hugging Face ONNX layout, with a tokenizer
 * trained on part of the corpus: enough to test the runtime's mechanics
 * (KV cache, batching, sampling, embeddings) in milliseconds.
 */
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { readCorpus, trainBpe, writeDecoderDirectory, writeEncoderDirectory } from '@node-daemon/models'
import { initEncoderWeights, initGptWeights } from '@node-daemon/onnx'
import type { EncoderConfig, GptConfig } from '@node-daemon/onnx'

export const GPT: GptConfig = { vocabSize: 384, hiddenSize: 32, layers: 2, heads: 4, maxPositions: 512, layerNormEps: 1e-5 }
export const ENCODER: EncoderConfig = { vocabSize: 384, hiddenSize: 32, layers: 2, heads: 4, maxPositions: 64, typeVocabSize: 2, layerNormEps: 1e-12 }

export interface TinyModels {
  root: string
  decoder: string
  encoder: string
}

export async function tinyModels (): Promise<TinyModels> {
  const root = await mkdtemp(join(tmpdir(), 'tiny-models-'))
  const corpus = (await readCorpus()).map(book => book.slice(0, 100_000))
  const tokenizer = trainBpe(corpus, { vocabSize: GPT.vocabSize })
  const decoder = join(root, 'decoder')
  const encoder = join(root, 'encoder')
  // Larger weights than a fresh init, so that greedy decoding does not settle on one token.
  const weights = initGptWeights(GPT, 7)
  for (const w of Object.values(weights)) for (let i = 0; i < w.length; i++) w[i] *= 4
  await writeDecoderDirectory(decoder, { config: GPT, weights, tokenizer })
  await writeEncoderDirectory(encoder, { config: ENCODER, weights: initEncoderWeights(ENCODER, 7), tokenizer })
  return { root, decoder, encoder }
}
