/**
 * Writes a model directory in the Hugging Face ONNX layout, the form every
 * model takes in node-daemon: config.json, generation_config.json,
 * tokenizer.json, tokenizer_config.json and model.onnx.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { buildEncoder, buildGptDecoder, encoderHfConfig, gptHfConfig, writeModel } from '@node-daemon/onnx'
import { END_OF_TEXT, IM_END } from './tokenizer/train-bpe.ts'
import type { TrainedTokenizer } from './tokenizer/train-bpe.ts'
import type { EncoderConfig, GptConfig } from '@node-daemon/onnx'

export interface DecoderDirectory {
  config: GptConfig
  weights: Record<string, Float32Array>
  tokenizer: TrainedTokenizer
  /** generation_config.json's sampling defaults, e.g. temperature. */
  generation?: Record<string, unknown>
}

export interface EncoderDirectory {
  config: EncoderConfig
  weights: Record<string, Float32Array>
  tokenizer: TrainedTokenizer
}

const json = (value: unknown): string => JSON.stringify(value, null, 2) + '\n'

function tokenId (tokenizer: TrainedTokenizer, content: string): number {
  const token = tokenizer.tokenizerJson.added_tokens.find(t => t.content === content)
  if (token == null) throw new Error(`the tokenizer has no ${content}`)
  return token.id
}

async function writeCommon (dir: string, tokenizer: TrainedTokenizer, model: Uint8Array): Promise<void> {
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, 'tokenizer.json'), json(tokenizer.tokenizerJson))
  await writeFile(join(dir, 'tokenizer_config.json'), json(tokenizer.tokenizerConfig))
  await writeFile(join(dir, 'model.onnx'), model)
}

export async function writeDecoderDirectory (dir: string, spec: DecoderDirectory): Promise<void> {
  const eos = tokenId(spec.tokenizer, END_OF_TEXT)
  // A chat turn ends at <|im_end|>, a document at <|endoftext|>: either ends a generation.
  const eosIds = [eos, tokenId(spec.tokenizer, IM_END)]
  await writeCommon(dir, spec.tokenizer, writeModel(buildGptDecoder(spec.config, spec.weights)).model)
  await writeFile(join(dir, 'config.json'), json({ ...gptHfConfig(spec.config, { bosTokenId: eos, eosTokenId: eos }), eos_token_id: eosIds }))
  await writeFile(join(dir, 'generation_config.json'), json({ bos_token_id: eos, eos_token_id: eosIds, ...spec.generation }))
}

export async function writeEncoderDirectory (dir: string, spec: EncoderDirectory): Promise<void> {
  await writeCommon(dir, spec.tokenizer, writeModel(buildEncoder(spec.config, spec.weights)).model)
  await writeFile(join(dir, 'config.json'), json(encoderHfConfig(spec.config, { padTokenId: tokenId(spec.tokenizer, END_OF_TEXT) })))
}
