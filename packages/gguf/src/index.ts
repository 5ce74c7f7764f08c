/**
 * The GGUF file format of llama.cpp and Ollama: a reader of a file's header
 * (metadata and tensor infos, not the data), a writer, a bridge between its
 * tokenizer metadata and tokenizer.json (byte-level BPE, SentencePiece,
 * WordPiece), and a converter of the project's GPT-2 and Llama-like decoders
 * (Llama, Mistral, Qwen2/3, Phi-3, Gemma 2/3) and BERT-style encoders into
 * GGUF files llama.cpp runs.
 */
export { configOf, poolingOf, readGguf, summarize } from './reader.ts'
export type { GgufFile, GgufSummary, GgufTensorInfo, GgufValue } from './reader.ts'
export { writeGguf, tensorBytes } from './writer.ts'
export type { TensorToWrite, TypedValue } from './writer.ts'
export { ggufTokenizer, hfTokenizer } from './tokenizer.ts'
export type { HfTokenizerFiles, SpecialTokens } from './tokenizer.ts'
export { convertDecoder, convertEncoder } from './convert.ts'
export { F16, F32, GGUF_MAGIC, POOLING_TYPES, TENSOR_TYPES, fileTypeCode, fileTypeName } from './format.ts'
export type { PoolingType } from './format.ts'
export { GgufConversionError, GgufFormatError } from './errors.ts'
