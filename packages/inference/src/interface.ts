/**
 * What the HTTP API sees of inference. Every API family is a thin adapter
 * over these calls: an Ollama generate, an OpenAI chat completion and a
 * document 001 task are the same `generate` underneath, one job in the
 * cluster's job table.
 */
import type { AbortOptions } from '@libp2p/interface'
import type { JobRecord } from '@node-daemon/cluster'
import type { ChatMessage, EmbedInput, InputType, OutputFormat, PromptInput, ToolCall, ToolChoice, ToolSpec } from '@node-daemon/runtime'

export type { ChatMessage, EmbedInput, OutputFormat, PromptInput, ToolCall, ToolChoice, ToolSpec }

/** Generation options with Ollama's names and meanings; unset ones come from the model, then Ollama's defaults. */
export interface GenerateOptions {
  temperature?: number
  top_k?: number
  top_p?: number
  repeat_penalty?: number
  repeat_last_n?: number
  seed?: number
  /** The most tokens to generate; -1 (the default) until the context is full or the model stops. */
  num_predict?: number
  stop?: string[]
  /** Subtracted from the logits of tokens in the repeat_last_n window: once (presence), once per occurrence (frequency). */
  presence_penalty?: number
  frequency_penalty?: number
  /** Token id (as a string, as OpenAI's JSON has it) to the bias added to its logit; -100 bans the token. */
  logit_bias?: Record<string, number>
  min_p?: number
  typical_p?: number
  tfs_z?: number
  /** 0 off, 1 or 2 for Mirostat's versions, with their target surprise and learning rate. */
  mirostat?: number
  mirostat_tau?: number
  mirostat_eta?: number
  /** The context, at most the model's; 4096 when unset, as Ollama. */
  num_ctx?: number
  /** Tokens kept from the start of a prompt cut to fit the context; -1 keeps it all. */
  num_keep?: number
}

export interface GenerateParams {
  /** A model name (with or without `:latest`) or a model CID. */
  model: string
  input: PromptInput
  options?: GenerateOptions
  /** How long the model stays loaded after this request, in ms; see the runtime's keep-alive. */
  keepAliveMs?: number
  /** Constrains the output to JSON or to a JSON Schema. */
  format?: OutputFormat
  /** With `input.tools`: whether and which tools the model must call; 'auto' by default. */
  toolChoice?: ToolChoice
  parallelToolCalls?: boolean
  /** Report each generated token's log-probability and this many likeliest alternatives (0–20); unset for none. */
  logprobs?: number
  /** Have the `start` event carry the prompt's text, as OpenAI's completions echo it. */
  echo?: boolean
}

export interface GenerateStats {
  doneReason: 'stop' | 'length'
  /** All generated text but the tool calls; what was streamed, joined. */
  text: string
  /** The tools the model called, when it was given some. */
  toolCalls?: ToolCall[]
  promptTokens: number
  /** Prompt tokens whose keys and values came from the prefix cache. */
  cachedTokens: number
  evalTokens: number
  /** Nanoseconds, as Ollama reports them. */
  totalNs: number
  loadNs: number
  promptEvalNs: number
  evalNs: number
  jobId: number
  /** Peer id of the node that ran the model. */
  worker: string
  promptCID: string
  /** The token ids of the prompt and the response, which Ollama answers as `context`. */
  context: number[]
}

/** A token as OpenAI's and Ollama's logprobs show it: its text, its bytes (which may be part of a character) and its log-probability. */
export interface TokenLogprob {
  token: string
  bytes: number[]
  logprob: number
}

/** A generated token's log-probability and the likeliest tokens of the distribution it was drawn from. */
export interface TokenLogprobs extends TokenLogprob {
  top: TokenLogprob[]
}

/**
 * A generation's events: `start` once a worker accepted it (the model's CID,
 * and the prompt's text when `echo` asked), text chunks (with the
 * log-probabilities of the tokens they hold when asked; a chunk may carry
 * those alone), then `done`.
 */
export type InferenceEvent =
  | { type: 'start', modelCID: string, promptText?: string }
  | { type: 'chunk', text: string, logprobs?: TokenLogprobs[] }
  | { type: 'done', stats: GenerateStats }

export interface EmbedParams {
  model: string
  /** Texts, the token ids of one text each, or texts with their ids from the model's tokenizer; ids get the special tokens the model's tokenizer adds around a text. */
  input: EmbedInput[]
  /** Cut inputs longer than the context instead of failing; default true, as Ollama. */
  truncate?: boolean
  /** Keep the first this many components of each embedding, normalized again; at most the model's size. */
  dimensions?: number
  /**
   * Whether the texts are search queries or documents, for models whose
   * config gives each a prefix (E5's `query: `, nomic-embed's
   * `search_query: `); default `document`.
   */
  inputType?: InputType
  keepAliveMs?: number
}

export interface RerankParams {
  /** A cross-encoder reranker. */
  model: string
  query: string
  documents: string[]
  /** Return the best this many; default all. */
  topN?: number
  /** Cut documents longer than the context instead of failing; default true. */
  truncate?: boolean
  keepAliveMs?: number
}

export interface RerankResult {
  model: string
  /** Best first: each document's index in the request and its relevance score, in [0, 1]. */
  results: Array<{ index: number, score: number }>
  promptTokens: number
  totalNs: number
  loadNs: number
}

export interface EmbedResult {
  model: string
  embeddings: number[][]
  promptTokens: number
  totalNs: number
  loadNs: number
}

/** A model of the registry as the list routes show it. */
export interface ModelSummary {
  /** The registry id, which is the name, e.g. `tiny-gpt:latest`. */
  name: string
  cid: string
  kind: 'causal-lm' | 'encoder' | 'reranker'
  /** config.json's model_type, e.g. gpt2 or bert. */
  family: string
  /** The name the model was registered with for display (document 001's `name`); the registry id unless one was given. */
  displayName?: string
  description: string
  /** Bytes of the model's DAG. */
  size: number
  active: boolean
  version: number
  modifiedAt: Date
  /** Parameter count, from the weights. */
  parameters: number
  /** The weights' type as Ollama names it (F32, F16, Q8_0, Q4_0); empty when unknown. */
  quantization: string
  contextLength: number
  /** Ollama's details.format: gguf for a GGUF model; onnx, or unset, for the rest. */
  format?: 'onnx' | 'gguf'
  /** As its registration gave them; unset when it did not. */
  framework?: string
  license?: string
}

/** A transformer's shape as config.json gives it, by Ollama's model_info names; unset where the config does not say. */
export interface ModelArchitecture {
  /** hidden_size or n_embd. */
  embeddingLength?: number
  /** num_hidden_layers or n_layer. */
  blockCount?: number
  /** num_attention_heads or n_head. */
  headCount?: number
  /** num_key_value_heads; as many as headCount in a model without grouped-query attention. */
  headCountKv?: number
  vocabSize?: number
}

export interface ModelDetails extends ModelSummary {
  /** The chat template (jinja), the system prompt and parameter overrides a Modelfile set, and the Modelfile that would recreate it. */
  template: string
  system: string
  options: GenerateOptions
  modelfile: string
  /** config.json as the model ships it. */
  config: Record<string, unknown>
  architecture: ModelArchitecture
  /** The license its registration gave, else the model directory's LICENSE file, else config.json's `license`; empty when none says. */
  license: string
}

export interface LoadedModelView {
  name: string
  cid: string
  size: number
  kind: 'causal-lm' | 'encoder' | 'reranker'
  family: string
  executionProvider: string
  /** What runs it: onnxruntime, or llama.cpp built on this machine or prebuilt. */
  engine: string
  expiresAt?: Date
  contextLength: number
  /** Elements of the weights, and their type as Ollama names it. */
  parameters: number
  quantization: string
}

/** Ollama's pull and create progress lines. */
export interface ProgressEvent {
  status: string
  digest?: string
  total?: number
  completed?: number
}

export interface ImportFile {
  /** Path inside the model directory, e.g. `model.onnx` or `onnx/model.onnx`. */
  path: string
  content: AsyncIterable<Uint8Array> | Uint8Array
}

export interface ImportParams {
  name: string
  /** A name to show, as document 001's upload form's `name`; the registry id (`name` here) unless given. Set when the model is first registered. */
  displayName?: string
  description?: string
  /** The ONNX variant the model loads, of a repository with several: fp32, fp16, q4… (see the README's model layouts). */
  dtype?: string
  /** What the registrant says of the model, kept in its registry record. */
  framework?: string
  license?: string
  /** The user account uploading it: it owns a model it registers, and may not update one another account owns. */
  account?: string
  files: ImportFile[] | AsyncIterable<ImportFile>
}

export interface TaskParams {
  prompt: string
  model: string
  maxTokens?: number
  temperature?: number
}

export type TaskStatus = 'pending' | 'running' | 'completed' | 'failed'

/**
 * How long a submitted task should take on the worker chosen for it, from
 * that worker's measured rate with the model (throughput.ts); every figure
 * null while no task of the model completed there.
 */
export interface TaskEstimate {
  worker: string
  /** Completed tasks the rate was measured over. */
  tasks: number
  tokensPerSecond: number | null
  /** Tokens expected: the mean of those tasks' answers, at most the task's maxTokens. */
  tokens: number | null
  seconds: number | null
}

/** A response of OpenAI's Responses API as stored: the object as answered, and the conversation through it for `previous_response_id`. */
export interface StoredResponse {
  response: Record<string, unknown>
  messages: ChatMessage[]
}

/** Document 001's task, over one job of the cluster's job table. */
export interface TaskView {
  taskId: string
  jobId: number
  status: TaskStatus
  model: string
  prompt?: string
  response?: string
  promptCID: string
  responseCID?: string
  worker?: string
  error?: string
  timing: { submitted: string, started?: string, completed?: string, totalTime?: number }
  /** At submission only. */
  estimate?: TaskEstimate
}

/** Document 001's WebSocket events, for jobs submitted anywhere in the cluster. */
export type TaskEvent =
  | { type: 'task_submitted', data: { taskId: string, jobId: number, prompt: string, modelId: string } }
  | { type: 'task_completed', data: { taskId: string, jobId: number, response: string, worker: string, timing: { totalTime: number } } }
  | { type: 'task_failed', data: { taskId: string, jobId: number, error: string } }

/**
 * Where this node's jobs may run (document 002's /admin/mode and /admin/fallback).
 * `local`: on this node only. `fallback`: this node runs, as the last resort,
 * a job of a model it holds no replica of, pulling it; off, such a job fails
 * when no holder can run it. A setting of this node, not of the cluster, and
 * not kept across restarts.
 */
export interface Placement {
  mode: 'distributed' | 'local'
  fallback: boolean
}

export interface Inference {
  /** This node's placement settings. */
  placement(): Placement
  setPlacement(change: Partial<Placement>): Placement
  /**
   * Runs one generation on a node that has the model, this one first; the
   * stream ends with a `done` event. Validation and a missing model throw
   * before the first event; a failure later ends the stream with the error.
   */
  generate(params: GenerateParams, options?: AbortOptions): AsyncIterable<InferenceEvent>
  embed(params: EmbedParams, options?: AbortOptions): Promise<EmbedResult>
  /** Scores documents against a query with a cross-encoder, on a node that has the model, this one first. */
  rerank(params: RerankParams, options?: AbortOptions): Promise<RerankResult>

  models(options?: AbortOptions): Promise<ModelSummary[]>
  show(name: string, options?: AbortOptions): Promise<ModelDetails>
  /**
   * Loads a model on this node and keeps it for `keepAliveMs` (as Ollama's
   * generate with no prompt does); 0 unloads it.
   */
  load(name: string, options?: AbortOptions & { keepAliveMs?: number }): Promise<void>
  /** Models loaded on this node, as Ollama's /api/ps. */
  loaded(): LoadedModelView[]
  /** Fetches a model's blocks from the cluster to this node and pins them. */
  pull(name: string, options?: AbortOptions): AsyncIterable<ProgressEvent>
  /** Raises a model's replication to the cluster's default, so other nodes hold it too. */
  push(name: string, options?: AbortOptions): AsyncIterable<ProgressEvent>
  copy(source: string, destination: string, options?: AbortOptions): Promise<void>
  delete(name: string, options?: AbortOptions): Promise<void>
  /** Ollama's /api/create: a Modelfile (FROM name or CID, PARAMETER, TEMPLATE, SYSTEM) makes a new registry entry. */
  create(name: string, modelfile: string, options?: AbortOptions): AsyncIterable<ProgressEvent>
  /** Adds a model directory in the Hugging Face ONNX layout and registers it. */
  import(params: ImportParams, options?: AbortOptions): Promise<ModelSummary>

  /**
   * OpenAI's stored responses: the record is content, pinned in the cluster
   * under a name made of its id, so that any node reads it and a delete is
   * one decision through Raft. Returns the record's CID.
   */
  saveResponse(id: string, record: StoredResponse, options?: AbortOptions): Promise<string>
  /** A stored response by its id; ResponseNotFoundError once deleted or never stored. */
  response(id: string, options?: AbortOptions): Promise<StoredResponse>
  deleteResponse(id: string, options?: AbortOptions): Promise<void>

  /** Document 001: submits a generation that runs in the background. */
  submitTask(params: TaskParams, options?: AbortOptions): Promise<TaskView>
  /** Document 001's view of an inference job the caller read from the job table: its prompt and response read from their CIDs. */
  task(job: JobRecord, options?: AbortOptions): Promise<TaskView>
  /** Calls `listener` for every task event until the returned function is called. */
  subscribe(listener: (event: TaskEvent) => void): () => void
}
