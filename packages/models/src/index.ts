/**
 * The embedded default models: a small GPT-style decoder that writes text
 * and a small embedding encoder, in the Hugging Face ONNX layout, with the
 * byte-level BPE tokenizer the project trains (and a SentencePiece-style one
 * for tests of models that use those), the public-domain corpus they
 * learn from, and the scripts that reproduce the committed weights.
 */
export { sentencePieceFrame, trainSentencePiece } from './tokenizer/sentencepiece.ts'
export type { SentencePieceOptions } from './tokenizer/sentencepiece.ts'
export { trainBpe, CHAT_TEMPLATE, END_OF_TEXT, IM_START, IM_END } from './tokenizer/train-bpe.ts'
export type { TrainBpeOptions, TrainedTokenizer, TokenizerJson, TokenizerConfig } from './tokenizer/train-bpe.ts'
export { readCorpus, CORPUS_FILES } from './corpus.ts'
export { writeDecoderDirectory, writeEncoderDirectory } from './layout.ts'
export type { DecoderDirectory, EncoderDirectory } from './layout.ts'
export { DEFAULT_MODELS, assetDir } from './defaults.ts'
export { trainDecoder, trainEncoder } from './train.ts'
export type { TrainSettings } from './train.ts'
