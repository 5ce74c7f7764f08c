/**
 * Reproduces the committed default models in packages/models/assets/:
 * tiny-gpt, a GPT-style decoder that continues and answers in the corpus's
 * English, and tiny-embed, a BERT-style encoder trained by masked LM. Both
 * share one byte-level BPE tokenizer trained on the corpus. The tokenizer,
 * the batches and the initial weights are the same on every run; the trained
 * weights may differ in their last bits, as onnxruntime's multithreaded sums
 * do. About half an hour on two cores (2,000 steps: the decoder's loss ends
 * near 3.2 nats per token).
 *
 *   npx node packages/models/scripts/make-default-models.ts [--steps N] [--embed-steps N] [--out DIR]
 */
import { parseArgs } from 'node:util'
import { Template } from '@huggingface/jinja'
import { Tokenizer } from '@huggingface/tokenizers'
import { readCorpus } from '../src/corpus.ts'
import { DEFAULT_MODELS, ENCODER_CONFIG, GPT_CONFIG, MASK, VOCAB_SIZE, assetDir } from '../src/defaults.ts'
import { writeDecoderDirectory, writeEncoderDirectory } from '../src/layout.ts'
import { END_OF_TEXT, trainBpe } from '../src/tokenizer/train-bpe.ts'
import { seededRandom } from '@node-daemon/onnx'
import { trainDecoder, trainEncoder } from '../src/train.ts'

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '3000' },
    'embed-steps': { type: 'string', default: '600' },
    out: { type: 'string' }
  }
})
const log = (line: string): void => { process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`) }

const books = await readCorpus()
const tokenizer = trainBpe(books, { vocabSize: VOCAB_SIZE, specialTokens: [MASK] })
const hf = new Tokenizer(tokenizer.tokenizerJson, tokenizer.tokenizerConfig)
const encode = (text: string): number[] => hf.encode(text, { add_special_tokens: false }).ids
const eos = encode(END_OF_TEXT)[0]
const template = new Template(tokenizer.tokenizerConfig.chat_template as string)

/**
 * The decoder learns from documents of a few paragraphs, and from one
 * paragraph in four as a chat turn (its first sentence asked, the rest
 * answered), so that templated prompts get prose back.
 */
const random = seededRandom(1)
const documents: string[] = []
for (const book of books) {
  const paragraphs = book.split(/\n\s*\n/).map(p => p.replace(/\s+/g, ' ').trim()).filter(p => p.length > 0)
  let group: string[] = []
  for (const paragraph of paragraphs) {
    const split = /^(.{20,300}?[.!?]["']?)\s+(.{40,})$/.exec(paragraph)
    if (split != null && random() < 0.25) {
      documents.push(template.render({ messages: [{ role: 'user', content: split[1] }, { role: 'assistant', content: split[2] }], add_generation_prompt: false }))
      continue
    }
    group.push(paragraph)
    if (group.join('\n\n').length > 1500) {
      documents.push(group.join('\n\n'))
      group = []
    }
  }
  if (group.length > 0) documents.push(group.join('\n\n'))
}
const ids: number[] = []
for (const doc of documents) ids.push(...encode(doc), eos)
const stream = Int32Array.from(ids)
log(`corpus: ${documents.length} documents, ${stream.length} tokens, vocab ${VOCAB_SIZE}`)

const report = (name: string) => ({ step, loss, lr, tokensPerSecond }: { step: number, loss: number, lr: number, tokensPerSecond: number }): void => {
  log(`${name} step ${step}: loss ${loss.toFixed(3)}, lr ${lr.toExponential(2)}, ${tokensPerSecond.toFixed(0)} tokens/s`)
}
const out = (name: string): string => values.out != null ? `${values.out}/${name}` : assetDir(name)

const decoder = await trainDecoder(GPT_CONFIG, stream, {
  batchSize: 16, sequenceLength: 128, steps: Number(values.steps), learningRate: 3e-3, warmup: 100, seed: 1, every: 50, progress: report('tiny-gpt')
})
await writeDecoderDirectory(out(DEFAULT_MODELS.generate), {
  config: GPT_CONFIG,
  weights: decoder,
  tokenizer,
  generation: { temperature: 0.8, top_k: 40, top_p: 0.9, repetition_penalty: 1.1 }
})
log(`wrote ${out(DEFAULT_MODELS.generate)}`)

const encoder = await trainEncoder(ENCODER_CONFIG, stream, encode(MASK)[0], {
  batchSize: 16, sequenceLength: 64, steps: Number(values['embed-steps']), learningRate: 1e-3, warmup: 50, seed: 2, every: 50, progress: report('tiny-embed')
})
await writeEncoderDirectory(out(DEFAULT_MODELS.embed), { config: ENCODER_CONFIG, weights: encoder, tokenizer })
log(`wrote ${out(DEFAULT_MODELS.embed)}`)
