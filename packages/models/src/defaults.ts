/**
 * The embedded default models: their names, architectures, and where their
 * committed files are. scripts/make-default-models.ts makes them.
 */
import { fileURLToPath } from 'node:url'
import type { EncoderConfig, GptConfig } from '@node-daemon/onnx'

/** Names the daemon registers them under, and the API uses when a request names no model. */
export const DEFAULT_MODELS = { generate: 'tiny-gpt', embed: 'tiny-embed' } as const

export const VOCAB_SIZE = 2048
/** The encoder's mask token for masked-LM training, a special token of the shared tokenizer. */
export const MASK = '<|mask|>'

export const GPT_CONFIG: GptConfig = { vocabSize: VOCAB_SIZE, hiddenSize: 192, layers: 4, heads: 4, maxPositions: 512, layerNormEps: 1e-5 }
export const ENCODER_CONFIG: EncoderConfig = { vocabSize: VOCAB_SIZE, hiddenSize: 128, layers: 2, heads: 4, maxPositions: 512, typeVocabSize: 2, layerNormEps: 1e-12 }

/** The directory of a default model's files in the Hugging Face ONNX layout. */
export function assetDir (name: string): string {
  return fileURLToPath(new URL(`../assets/${name}`, import.meta.url))
}
