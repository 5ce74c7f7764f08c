/**
 * Inference on this node. Loads models in the Hugging Face ONNX layout into
 * onnxruntime sessions, each in a worker thread of its own so that no step
 * blocks the event loop, and GGUF files into llama.cpp in a thread of their own, kept alive between
 * requests (when they fit the memory left), tokenizes with
 * @huggingface/tokenizers and renders chat templates with @huggingface/jinja,
 * and runs the generation loop (KV cache, prefix cache, sampling, stop
 * strings, constrained decoding for structured output and tool calls,
 * streaming, cancellation) with continuous batching, embeddings and
 * reranking.
 */
export { WorkerSession, freeOutputs } from './worker-session.ts'
export type { GraphSource, RunOptions, RunResult } from './worker-session.ts'
export { Runtime, renderPrompt, fitPrompt, promptTokens, DEFAULT_NUM_CTX } from './runtime.ts'
export type { Loaded, ContextOptions, OutputFormat, OutputOptions, RuntimeComponents, RuntimeInit, ModelRef, UseOptions, LoadedEntry, PromptInput, Lease } from './runtime.ts'
export { asFloat32, fed } from './float16.ts'
export { loadModel, onnxSessionOptions, CausalLM, Encoder, CrossEncoder, readSentenceConfig, configCacheShape, configFromGenai, missingModelFiles, chooseModelFile, findModelFile } from './model.ts'
export type { BatchCache, EmbedInput, Engine, ExecutionProvider, InputType, LoadedModel, ModelFile, ModelInfo, PoolingMode, SentenceConfig, TokenizedText } from './model.ts'
export { DTYPES, GGUF_FILE } from './files.ts'
export type { Dtype } from './files.ts'
export { GgufLM, engineOf, ggufContextOptions, isGgufModel, loadGguf, readGgufHeader } from './gguf.ts'
export type { GgufCache, GgufHeader, LlamaBuild } from './gguf.ts'
export { GgufEncoder, isGgufEncoder, loadGgufEncoder } from './gguf-encoder.ts'
export type { Decoder, DecoderCache } from './decoder.ts'
export { Batcher } from './batcher.ts'
export type { Constraint, GenerateRequest, GenerationChunk, GenerationEvent, GenerationStats, TokenConstraint } from './batcher.ts'
export { createSampler, argmax, DEFAULT_SAMPLING, MAX_TOP_LOGPROBS, validateSampling } from './sampling.ts'
export type { Sampled, Sampler, SamplingOptions, TokenLogprob } from './sampling.ts'
export { TextCodec, IncrementalDecoder } from './text.ts'
export type { ChatMessage } from './text.ts'
export * from './errors.ts'
export type { ToolSpec, ToolChoice, ToolCall, ToolSyntax } from './tools.ts'
