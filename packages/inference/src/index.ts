/**
 * Inference across the cluster. A model is a directory DAG in IPFS, named in
 * the cluster's model registry; a request made at any node runs on a node
 * that has the model (this one first, else the least loaded), streams back
 * over the inference protocol, and is recorded as a job in the Raft job
 * table with its prompt and response stored as content.
 */
export type * from './interface.ts'
export { createInference, InferenceService } from './service.ts'
export type { InferenceComponents, InferenceInit } from './service.ts'
export { ModelLibrary } from './library.ts'
export type { ModelProfile, ResolvedModel } from './library.ts'
export { parseModelfile, quoteModelfileValue, renderModelfile } from './modelfile.ts'
export type { Modelfile } from './modelfile.ts'
export { fullName } from './names.ts'
export { INFERENCE_PROTOCOL } from './protocol.ts'
export * from './errors.ts'
