/**
 * A BERT-style encoder for embeddings: token, position and token-type
 * embeddings, post-LayerNorm blocks of bidirectional attention and a 4x GELU
 * MLP. Weights carry BERT's names, except that the query, key and value
 * projections are fused into one `qkv`. The masked-LM head, tied to the token
 * embedding, exists only in the training graph.
 */
import { GraphBuilder } from '../builder.ts'
import { attr } from '../graph.ts'
import type { ParameterShape } from '../builder.ts'
import type { Model } from '../graph.ts'
import {
  TRANSFORMER_OPSET, affine, affineShapes, attention, crossEntropy, initParameters, layerNorm, linear, mlp, paddingMask, sequenceLength, tiedHead
} from './transformer.ts'
import type { Affine, AttentionWeights, LossShape, MlpWeights } from './transformer.ts'

export interface EncoderConfig {
  vocabSize: number
  hiddenSize: number
  layers: number
  heads: number
  maxPositions: number
  typeVocabSize: number
  layerNormEps: number
}

interface Block {
  attention: AttentionWeights
  ln1: Affine
  mlp: MlpWeights
  ln2: Affine
}

function block (i: number): Block {
  const p = `encoder.layer.${i}`
  return {
    attention: { qkv: affine(`${p}.attention.self.qkv`), out: affine(`${p}.attention.output.dense`) },
    ln1: affine(`${p}.attention.output.LayerNorm`),
    mlp: { up: affine(`${p}.intermediate.dense`), down: affine(`${p}.output.dense`) },
    ln2: affine(`${p}.output.LayerNorm`)
  }
}

const WORDS = 'embeddings.word_embeddings.weight'
const POSITIONS = 'embeddings.position_embeddings.weight'
const TYPES = 'embeddings.token_type_embeddings.weight'
const LN_EMBEDDINGS = affine('embeddings.LayerNorm')
const HEAD_DENSE = affine('cls.predictions.transform.dense')
const HEAD_LN = affine('cls.predictions.transform.LayerNorm')
const HEAD_BIAS = 'cls.predictions.bias'

/** The encoder's parameters, then the masked-LM head's (`cls.*`), which only the training graph uses. */
export function encoderParameterShapes (config: EncoderConfig): ParameterShape[] {
  const e = config.hiddenSize
  const shapes: ParameterShape[] = [
    { name: WORDS, dims: [config.vocabSize, e] },
    { name: POSITIONS, dims: [config.maxPositions, e] },
    { name: TYPES, dims: [config.typeVocabSize, e] },
    ...affineShapes(LN_EMBEDDINGS, [e], e)
  ]
  for (let i = 0; i < config.layers; i++) {
    const w = block(i)
    shapes.push(
      ...affineShapes(w.attention.qkv, [e, 3 * e], 3 * e),
      ...affineShapes(w.attention.out, [e, e], e),
      ...affineShapes(w.ln1, [e], e),
      ...affineShapes(w.mlp.up, [e, 4 * e], 4 * e),
      ...affineShapes(w.mlp.down, [4 * e, e], e),
      ...affineShapes(w.ln2, [e], e)
    )
  }
  shapes.push(...affineShapes(HEAD_DENSE, [e, e], e), ...affineShapes(HEAD_LN, [e], e), { name: HEAD_BIAS, dims: [config.vocabSize] })
  return shapes
}

/** BERT's initialisation: N(0, 0.02), LayerNorms 1 and biases 0. */
export function initEncoderWeights (config: EncoderConfig, seed: number): Record<string, Float32Array> {
  return initParameters(encoderParameterShapes(config), seed, name => {
    if (name.endsWith('LayerNorm.weight')) return 'ones'
    if (name.endsWith('bias')) return 'zeros'
    return 0.02
  })
}

/** From ids to the last hidden state, shared by the inference and the training graph. */
function encoderBody (b: GraphBuilder, config: EncoderConfig, ids: string, positions: string, types: string, attentionMask: string): string {
  const { hiddenSize: hidden, heads, layerNormEps: eps } = config
  const embedded = b.op('Add', [
    b.op('Add', [b.op('Gather', [WORDS, ids]), b.op('Gather', [POSITIONS, positions])]),
    b.op('Gather', [TYPES, types])
  ])
  let x = layerNorm(b, embedded, LN_EMBEDDINGS, eps)
  const mask = paddingMask(b, attentionMask)
  for (let i = 0; i < config.layers; i++) {
    const w = block(i)
    x = layerNorm(b, b.op('Add', [x, attention(b, x, w.attention, { heads, hidden, mask }).output]), w.ln1, eps)
    x = layerNorm(b, b.op('Add', [x, mlp(b, x, w.mlp, 'none')]), w.ln2, eps)
  }
  return x
}

/** The inference graph in the layout optimum exports for BERT feature extraction. */
export function buildEncoder (config: EncoderConfig, weights: Record<string, Float32Array>): Model {
  const b = new GraphBuilder({ name: 'encoder', opset: TRANSFORMER_OPSET })
  const dims = ['batch_size', 'sequence_length']
  const ids = b.input('input_ids', 'int64', dims)
  const attentionMask = b.input('attention_mask', 'int64', dims)
  const types = b.input('token_type_ids', 'int64', dims)
  b.parameters(encoderParameterShapes(config).filter(p => !p.name.startsWith('cls.')), weights)
  const positions = b.op('Range', [b.scalar(0, 'int64'), sequenceLength(b, ids), b.scalar(1, 'int64')])
  const hidden = encoderBody(b, config, ids, positions, types, attentionMask)
  b.output(hidden, 'last_hidden_state', 'float32', [...dims, config.hiddenSize])
  return b.build()
}

const POOLER = affine('pooler.dense')
const CLASSIFIER = affine('classifier')

/** The pooler and classifier of a sequence classifier with `labels` outputs, as BertForSequenceClassification has them. */
export function classifierParameterShapes (config: EncoderConfig, labels: number): ParameterShape[] {
  const e = config.hiddenSize
  return [...affineShapes(POOLER, [e, e], e), ...affineShapes(CLASSIFIER, [e, labels], labels)]
}

/** The pooler's and classifier's initial weights: N(0, std), biases 0. */
export function initClassifierWeights (config: EncoderConfig, labels: number, seed: number, std = 0.02): Record<string, Float32Array> {
  return initParameters(classifierParameterShapes(config, labels), seed, name => name.endsWith('bias') ? 'zeros' : std)
}

/**
 * A cross-encoder as optimum exports BertForSequenceClassification (the
 * ms-marco and BGE rerankers): the encoder, then BERT's pooler (tanh of a
 * dense layer on the first token's state) and a linear classifier, `logits`
 * [batch, labels]. The pair's token types come in as token_type_ids.
 */
export function buildSequenceClassifier (config: EncoderConfig, weights: Record<string, Float32Array>, labels: number): Model {
  const b = new GraphBuilder({ name: 'sequence_classifier', opset: TRANSFORMER_OPSET })
  const dims = ['batch_size', 'sequence_length']
  const ids = b.input('input_ids', 'int64', dims)
  const attentionMask = b.input('attention_mask', 'int64', dims)
  const types = b.input('token_type_ids', 'int64', dims)
  b.parameters([...encoderParameterShapes(config).filter(p => !p.name.startsWith('cls.')), ...classifierParameterShapes(config, labels)], weights)
  const positions = b.op('Range', [b.scalar(0, 'int64'), sequenceLength(b, ids), b.scalar(1, 'int64')])
  const hidden = encoderBody(b, config, ids, positions, types, attentionMask)
  const first = b.op('Gather', [hidden, b.scalar(0, 'int64')], { axis: attr.int(1) })
  const pooled = b.op('Tanh', [linear(b, first, POOLER)])
  b.output(linear(b, pooled, CLASSIFIER), 'logits', 'float32', ['batch_size', labels])
  return b.build()
}

/**
 * The masked-LM training graph: the weights are inputs (named as in the
 * encoder, plus the `cls.*` head), with input_ids, attention_mask,
 * token_type_ids and labels [batch, sequence]; labels are -100 except at the
 * masked positions, and `loss` is the mean cross-entropy there.
 */
export function buildEncoderLoss (config: EncoderConfig, shape: LossShape): Model {
  const dims = [shape.batchSize, shape.sequenceLength]
  const b = new GraphBuilder({ name: 'encoder_mlm_loss', opset: TRANSFORMER_OPSET })
  b.parameters(encoderParameterShapes(config))
  const ids = b.input('input_ids', 'int64', dims)
  const attentionMask = b.input('attention_mask', 'int64', dims)
  const types = b.input('token_type_ids', 'int64', dims)
  const labels = b.input('labels', 'int64', dims)
  const positions = b.ints(Array.from({ length: shape.sequenceLength }, (_, i) => i))
  const hidden = encoderBody(b, config, ids, positions, types, attentionMask)
  const transformed = layerNorm(b, b.op('Gelu', [linear(b, hidden, HEAD_DENSE)]), HEAD_LN, config.layerNormEps)
  const logits = b.op('Add', [tiedHead(b, transformed, WORDS), HEAD_BIAS])
  b.output(crossEntropy(b, logits, labels, config.vocabSize), 'loss', 'float32', [])
  return b.build()
}

/** The config.json of a Hugging Face bert model with this architecture. */
export function encoderHfConfig (config: EncoderConfig, tokens: { padTokenId: number } = { padTokenId: 0 }): Record<string, unknown> {
  return {
    model_type: 'bert',
    architectures: ['BertModel'],
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    num_hidden_layers: config.layers,
    num_attention_heads: config.heads,
    intermediate_size: 4 * config.hiddenSize,
    hidden_act: 'gelu',
    max_position_embeddings: config.maxPositions,
    type_vocab_size: config.typeVocabSize,
    layer_norm_eps: config.layerNormEps,
    initializer_range: 0.02,
    pad_token_id: tokens.padTokenId,
    position_embedding_type: 'absolute',
    hidden_dropout_prob: 0,
    attention_probs_dropout_prob: 0
  }
}
