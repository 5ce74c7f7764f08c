/**
 * Small untrained models in the Hugging Face ONNX layout, with a tokenizer
 * trained on part of the corpus: enough to test the runtime's mechanics
 * (KV cache, batching, sampling, embeddings) in milliseconds.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before } from 'node:test'
import { readCorpus, trainBpe, writeDecoderDirectory, writeEncoderDirectory } from '@node-daemon/models'
import { attr, buildGptDecoder, buildSequenceClassifier, initClassifierWeights, initEncoderWeights, initGptWeights, readModel, writeModel } from '@node-daemon/onnx'
import { Runtime } from '../../src/runtime.ts'
import type { Model, Node, TensorValue } from '@node-daemon/onnx'
import type { EncoderConfig, GptConfig } from '@node-daemon/onnx'

export const GPT: GptConfig = { vocabSize: 384, hiddenSize: 32, layers: 2, heads: 4, maxPositions: 512, layerNormEps: 1e-5 }
export const ENCODER: EncoderConfig = { vocabSize: 384, hiddenSize: 32, layers: 2, heads: 4, maxPositions: 64, typeVocabSize: 2, layerNormEps: 1e-12 }

export interface TinyModels {
  root: string
  decoder: string
  /** The same decoder with its weights in model.onnx_data, as large exports keep them (small constants stay inline, as onnx's converter leaves them). */
  external: string
  /** The same decoder with an Identity after each cache Concat: the graph rewrite does not apply, the model runs as exported. */
  unrewritten: string
  encoder: string
}

/** Copies `decoder`'s directory to `dir` with another model.onnx (and its external data, if any). */
async function variant (decoder: string, dir: string, model: Model, externalData?: { location: string, threshold: number }): Promise<string> {
  await cp(decoder, dir, { recursive: true })
  const written = writeModel(model, externalData == null ? {} : { externalData })
  await writeFile(join(dir, 'model.onnx'), written.model)
  if (externalData != null) await writeFile(join(dir, externalData.location), written.externalData ?? new Uint8Array(0))
  return dir
}

/** The model with an Identity after each `present.*` output's op: the graph rewrite no longer applies. */
export function withIdentities (model: Model): Model {
  const nodes = model.graph.nodes.flatMap(node => {
    const present = node.outputs[0]
    if (!present.startsWith('present.')) return [node]
    return [{ ...node, outputs: [`${present}.concat`] }, { op: 'Identity', inputs: [`${present}.concat`], outputs: [present] }]
  })
  return { ...model, graph: { ...model.graph, nodes } }
}

/**
 * `model` with `repeats` products of two `size` × `size` matrices added to
 * every step, a step of seconds for a file of kilobytes. The matrix is made
 * from the attention mask, so that onnxruntime cannot fold it at load; the
 * products are added to the logits times zero, which leaves the tokens as
 * they were.
 */
function slowed (model: Model, size: number, repeats: number): Model {
  const nodes = model.graph.nodes.map(node => node.outputs[0] === 'logits' ? { ...node, outputs: ['logits.fast'] } : node)
  const constant = (name: string, value: TensorValue): Node => ({ op: 'Constant', inputs: [], outputs: [name], attributes: { value: attr.tensor(value) } })
  nodes.push(
    constant('slow.shape', { type: 'int64', dims: [2], data: BigInt64Array.from([BigInt(size), BigInt(size)]) }),
    constant('slow.scale', { type: 'float32', dims: [], data: Float32Array.of(1 / size) }),
    constant('slow.zero', { type: 'float32', dims: [], data: Float32Array.of(0) }),
    { op: 'Cast', inputs: ['attention_mask'], outputs: ['slow.mask'], attributes: { to: attr.int(1) } },
    { op: 'ReduceMax', inputs: ['slow.mask'], outputs: ['slow.one'], attributes: { keepdims: attr.int(0) } },
    { op: 'Mul', inputs: ['slow.one', 'slow.scale'], outputs: ['slow.entry'] },
    // Every entry 1/size, and so every product's: the chain stays finite.
    { op: 'Expand', inputs: ['slow.entry', 'slow.shape'], outputs: ['slow.0'] })
  for (let i = 1; i <= repeats; i++) nodes.push({ op: 'MatMul', inputs: [`slow.${i - 1}`, 'slow.0'], outputs: [`slow.${i}`] })
  nodes.push(
    { op: 'ReduceSum', inputs: [`slow.${repeats}`], outputs: ['slow.sum'], attributes: { keepdims: attr.int(0) } },
    { op: 'Mul', inputs: ['slow.sum', 'slow.zero'], outputs: ['slow.nothing'] },
    { op: 'Add', inputs: ['logits.fast', 'slow.nothing'], outputs: ['logits'] })
  return { ...model, graph: { ...model.graph, nodes } }
}

/** A copy of the tiny decoder at `dir` whose every step does `repeats` products of `size` × `size` matrices more. */
export async function writeSlowDecoder (models: TinyModels, dir: string, size: number, repeats: number): Promise<string> {
  const model = readModel(await readFile(join(models.decoder, 'model.onnx')))
  return variant(models.decoder, dir, slowed(model, size, repeats))
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
  const model = buildGptDecoder(GPT, weights)
  const external = await variant(decoder, join(root, 'external'), model, { location: 'model.onnx_data', threshold: 1024 })
  const unrewritten = await variant(decoder, join(root, 'unrewritten'), withIdentities(model))
  return { root, decoder, external, unrewritten, encoder }
}

/**
 * A cross-encoder reranker in `dir`, as optimum exports a
 * BertForSequenceClassification: the tiny encoder's files, a classifier of
 * `labels` outputs, and BERT's pair template in the tokenizer
 * ([CLS] a [SEP] b [SEP], with <|im_start|> as [CLS] and <|endoftext|> as
 * [SEP]). Returns those two tokens' ids.
 */
export async function writeReranker (encoder: string, dir: string, labels: number): Promise<{ cls: number, sep: number }> {
  await cp(encoder, dir, { recursive: true })
  const tokenizer = JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf8'))
  const id = (content: string): number => tokenizer.added_tokens.find((t: { content: string }) => t.content === content).id
  const [CLS, SEP] = ['<|im_start|>', '<|endoftext|>']
  const special = (token: string, typeId: number): unknown => ({ SpecialToken: { id: token, type_id: typeId } })
  tokenizer.post_processor = {
    type: 'TemplateProcessing',
    single: [special(CLS, 0), { Sequence: { id: 'A', type_id: 0 } }, special(SEP, 0)],
    pair: [special(CLS, 0), { Sequence: { id: 'A', type_id: 0 } }, special(SEP, 0), { Sequence: { id: 'B', type_id: 1 } }, special(SEP, 1)],
    special_tokens: Object.fromEntries([CLS, SEP].map(t => [t, { id: t, ids: [id(t)], tokens: [t] }]))
  }
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer))
  // Larger weights than a fresh init, so that the first token's state, and the scores, differ between documents.
  const weights = initEncoderWeights(ENCODER, 7)
  for (const [name, w] of Object.entries(weights)) if (!name.includes('LayerNorm')) for (let i = 0; i < w.length; i++) w[i] *= 8
  await writeFile(join(dir, 'model.onnx'), writeModel(buildSequenceClassifier(ENCODER, { ...weights, ...initClassifierWeights(ENCODER, labels, 3, 0.2) }, labels)).model)
  return { cls: id(CLS), sep: id(SEP) }
}

/**
 * Turns the tiny decoder's directory `dir` into an onnxruntime-genai build's
 * layout: genai_config.json with the fields its builder writes for a GPT-2
 * shape, naming model.onnx, and no config.json. Returns the config.json it
 * replaced.
 */
export async function asGenaiBuild (dir: string): Promise<Record<string, any>> {
  const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'))
  await rm(join(dir, 'config.json'))
  await writeFile(join(dir, 'genai_config.json'), JSON.stringify({
    model: {
      type: 'gpt2',
      context_length: config.n_positions,
      vocab_size: config.vocab_size,
      bos_token_id: config.bos_token_id,
      eos_token_id: config.eos_token_id,
      pad_token_id: config.eos_token_id,
      decoder: { filename: 'model.onnx', hidden_size: GPT.hiddenSize, num_attention_heads: GPT.heads, num_key_value_heads: GPT.heads, num_hidden_layers: GPT.layers, head_size: GPT.hiddenSize / GPT.heads }
    },
    search: { max_length: config.n_positions }
  }))
  return config
}

/** The tiny models and a started Runtime for the tests of one describe block: made before them, stopped and removed after. */
export function withTinyRuntime (): { readonly models: TinyModels, readonly runtime: Runtime } {
  const made: { models?: TinyModels, runtime?: Runtime } = {}
  before(async () => {
    made.models = await tinyModels()
    made.runtime = new Runtime()
    await made.runtime.start()
  })
  after(async () => {
    await made.runtime?.stop()
    if (made.models != null) await rm(made.models.root, { recursive: true, force: true })
  })
  return {
    get models () { return made.models as TinyModels },
    get runtime () { return made.runtime as Runtime }
  }
}
