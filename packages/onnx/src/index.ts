/**
 * ONNX graphs without Python. A plain-data graph form (graph.ts), a writer
 * that encodes it as an ONNX ModelProto over onnx-proto and a reader that
 * decodes one, the project's own models built in the Hugging Face ONNX
 * layout, Llama-family decoders as optimum exports them (for tests of what
 * cannot be downloaded), the external data files a model names (read
 * without decoding it), a rewrite that lets a decoder return only the keys
 * and values a step adds, weight quantizations (float16, MatMulNBits int4),
 * and reverse-mode autodiff that turns a loss graph into a training graph.
 */
export type * from './graph.ts'
export { attr } from './graph.ts'
export { writeModel } from './writer.ts'
export { seededRandom } from './random.ts'
export type { WriteOptions, WrittenModel } from './writer.ts'
export { readModel, readWeights } from './reader.ts'
export type { ReadOptions } from './reader.ts'
export { appendedKeyValues } from './kv-outputs.ts'
export { dequantize8, dequantizeBlocks4, dequantizeRowBlocks8, quantize8, quantizeBlocks4, quantizeRowBlocks8, toFloat16Bits, withFloat16Weights, withGatherBlockQuantized, withMatMulInteger, withMatMulNBits } from './quantize.ts'
export type { BlockQuantized } from './quantize.ts'
export { externalDataLocations } from './external-data.ts'
export { weightsSummary } from './weights-summary.ts'
export type { WeightsSummary } from './weights-summary.ts'
export type { AppendedKeyValues, AppendedKeyValuesOptions } from './kv-outputs.ts'
export { ExternalDataError, InvalidConfigError, ModelFormatError } from './errors.ts'
export { GraphBuilder } from './builder.ts'
export type { GraphBuilderOptions, ParameterShape } from './builder.ts'
export { buildGptDecoder, buildGptLoss, gptHfConfig, gptParameterShapes, initGptWeights } from './models/gpt.ts'
export type { GptConfig } from './models/gpt.ts'
export { buildLlamaDecoder, initLlamaWeights, llamaHfConfig, llamaParameterShapes, ropeInverseFrequencies, slidingLayer } from './models/llama.ts'
export type { LlamaConfig, LlamaFamily, RopeScaling } from './models/llama.ts'
export { buildEncoder, buildEncoderLoss, buildSequenceClassifier, classifierParameterShapes, encoderHfConfig, encoderParameterShapes, initClassifierWeights, initEncoderWeights } from './models/encoder.ts'
export type { EncoderConfig } from './models/encoder.ts'
export { buildMlpClassifier, buildMlpLoss, initMlpWeights, mlpConfigFromHf, mlpHfConfig, mlpParameterShapes } from './models/mlp.ts'
export type { MlpActivation, MlpConfig } from './models/mlp.ts'
export { TRANSFORMER_OPSET } from './models/transformer.ts'
export type { LossShape } from './models/transformer.ts'
export { buildTrainingGraph, gradientName } from './autodiff/training-graph.ts'
export type { TrainingGraphOptions } from './autodiff/training-graph.ts'
export { differentiableOps } from './autodiff/rules.ts'
export * from './autodiff/errors.ts'
export { addSquares, clipGradNorm, clipScale, constantSchedule, decaysMatrices, createAdamW, createSgd, globalNorm, NORM_BLOCK, normOfSquares, scaleForNorm, squaresLength, warmupCosineSchedule } from './optimizers.ts'
export type { AdamWOptions, Optimizer, OptimizerState, Schedule, SgdOptions, StepOptions, TensorMap, WarmupCosineOptions } from './optimizers.ts'
