/**
 * The names of a model's files: the ONNX variants' and a GGUF model's. Its
 * own module, with no imports, so that the Modelfile parser and the command
 * line take them without loading an engine.
 */

/** The ONNX variants a repository may hold, by the suffix onnx-community and Transformers.js give their files. */
export const DTYPES = ['fp32', 'fp16', 'q4', 'q4f16', 'int8', 'uint8', 'quantized', 'bnb4'] as const
export type Dtype = typeof DTYPES[number]

/** The file a GGUF model directory holds its weights in. */
export const GGUF_FILE = 'model.gguf'
