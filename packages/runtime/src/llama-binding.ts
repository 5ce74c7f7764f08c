/**
 * llama.cpp's C API, called through koffi from the thread that owns a GGUF
 * model's context (llama-worker.ts). node-llama-cpp calls the same library
 * from libuv's thread pool, one round trip for a decode and one for a
 * sample: on a two-core VM whose idle cores halt, each cost 44 to 56 µs,
 * a tenth of a small model's token. Called synchronously from a thread of
 * its own, a decode follows the sample before it with nothing in between.
 *
 * The structs are laid out as the llama.h of the llama.cpp release
 * node-llama-cpp ships (package.json pins it); `LLAMA_RELEASE` is the name
 * its library files carry, which bindLlama checks.
 */
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'

export const LLAMA_RELEASE = 'v0.5.0'

// koffi is CommonJS.
const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi')

/** Opaque pointers, as koffi hands them over. */
export type Pointer = object

/** llama_batch as koffi reads it: its arrays are native memory, which Batch views. */
export interface LlamaBatch {
  n_tokens: number
  token: Pointer
  embd: Pointer | null
  pos: Pointer
  n_seq_id: Pointer
  seq_id: Pointer
  logits: Pointer
}

export interface LlamaApi {
  modelDefaults: () => Record<string, unknown>
  contextDefaults: () => Record<string, unknown>
  loadModel: (path: string, params: Record<string, unknown>) => Pointer | null
  freeModel: (model: Pointer) => void
  newContext: (model: Pointer, params: Record<string, unknown>) => Pointer | null
  freeContext: (ctx: Pointer) => void
  sequenceSize: (ctx: Pointer) => number
  batchSize: (ctx: Pointer) => number
  vocab: (model: Pointer) => Pointer
  /** A recurrent or hybrid model's state cannot be cut back to a position. */
  isRecurrent: (model: Pointer) => boolean
  isHybrid: (model: Pointer) => boolean
  vocabSize: (vocab: Pointer) => number
  batchInit: (tokens: number, embeddings: number, sequences: number) => LlamaBatch
  batchFree: (batch: LlamaBatch) => void
  decode: (ctx: Pointer, batch: LlamaBatch) => number
  logits: (ctx: Pointer, i: number) => Pointer | null
  memory: (ctx: Pointer) => Pointer
  /** Removes a sequence's cells at positions [from, to); -1 is either end. */
  erase: (memory: Pointer, sequence: number, from: number, to: number) => boolean
  greedy: () => Pointer
  sample: (sampler: Pointer, ctx: Pointer, i: number) => number
  freeSampler: (sampler: Pointer) => void
  /** `bytes` of native memory at `pointer`, without a copy. */
  view: (pointer: Pointer, bytes: number) => ArrayBuffer
  /** `n` pointers stored at `pointer`. */
  pointers: (pointer: Pointer, n: number) => Pointer[]
}

let types: { model: unknown, context: unknown, batch: unknown } | undefined

/** koffi's names for llama.h's structs, declared once per thread. */
function structs (): NonNullable<typeof types> {
  types ??= {
    model: koffi.struct('llama_model_params', {
      devices: 'void *',
      tensor_buft_overrides: 'void *',
      n_gpu_layers: 'int32_t',
      split_mode: 'int',
      load_mode: 'int',
      lazy_mode: 'int',
      main_gpu: 'int32_t',
      tensor_split: 'void *',
      progress_callback: 'void *',
      progress_callback_user_data: 'void *',
      kv_overrides: 'void *',
      vocab_only: 'bool',
      check_tensors: 'bool',
      use_extra_bufts: 'bool',
      no_host: 'bool',
      no_alloc: 'bool',
      load_mtp: 'bool'
    }),
    context: koffi.struct('llama_context_params', {
      n_ctx: 'uint32_t',
      n_batch: 'uint32_t',
      n_ubatch: 'uint32_t',
      n_seq_max: 'uint32_t',
      n_rs_seq: 'uint32_t',
      n_outputs_max: 'uint32_t',
      n_outputs_max_per_seq: 'uint32_t',
      n_threads: 'int32_t',
      n_threads_batch: 'int32_t',
      ctx_type: 'int',
      rope_scaling_type: 'int',
      pooling_type: 'int',
      attention_type: 'int',
      flash_attn_type: 'int',
      rope_freq_base: 'float',
      rope_freq_scale: 'float',
      yarn_ext_factor: 'float',
      yarn_attn_factor: 'float',
      yarn_beta_fast: 'float',
      yarn_beta_slow: 'float',
      yarn_orig_ctx: 'uint32_t',
      defrag_thold: 'float',
      cb_eval: 'void *',
      cb_eval_user_data: 'void *',
      type_k: 'int',
      type_v: 'int',
      abort_callback: 'void *',
      abort_callback_data: 'void *',
      embeddings: 'bool',
      offload_kqv: 'bool',
      no_perf: 'bool',
      op_offload: 'bool',
      swa_full: 'bool',
      kv_unified: 'bool',
      samplers: 'void *',
      n_samplers: 'size_t',
      ctx_other: 'void *'
    }),
    batch: koffi.struct('llama_batch', {
      n_tokens: 'int32_t',
      token: 'void *',
      embd: 'void *',
      pos: 'void *',
      n_seq_id: 'void *',
      seq_id: 'void *',
      logits: 'void *'
    })
  }
  return types
}

/**
 * The API of the libllama in `dir`, the directory node-llama-cpp loaded its
 * addon from: the same library, already initialised (its backends loaded)
 * by node-llama-cpp in this process.
 */
export function bindLlama (dir: string): LlamaApi {
  structs()
  const file = join(dir, `libllama.${LLAMA_RELEASE}.so`)
  // The message goes to clients: it names no path.
  if (!existsSync(file)) throw new Error(`node-llama-cpp's llama.cpp is not release ${LLAMA_RELEASE}, whose C API this runtime calls`)
  let lib: ReturnType<typeof koffi.load>
  try {
    lib = koffi.load(file)
  } catch {
    throw new Error(`llama.cpp's library (${LLAMA_RELEASE}) cannot be loaded`)
  }
  const fn = (signature: string): (...args: any[]) => any => lib.func(signature)
  return {
    modelDefaults: fn('llama_model_params llama_model_default_params()'),
    contextDefaults: fn('llama_context_params llama_context_default_params()'),
    loadModel: fn('void *llama_model_load_from_file(const char *path, llama_model_params params)'),
    freeModel: fn('void llama_model_free(void *model)'),
    newContext: fn('void *llama_init_from_model(void *model, llama_context_params params)'),
    freeContext: fn('void llama_free(void *ctx)'),
    sequenceSize: fn('uint32_t llama_n_ctx_seq(void *ctx)'),
    batchSize: fn('uint32_t llama_n_batch(void *ctx)'),
    vocab: fn('void *llama_model_get_vocab(void *model)'),
    isRecurrent: fn('bool llama_model_is_recurrent(void *model)'),
    isHybrid: fn('bool llama_model_is_hybrid(void *model)'),
    vocabSize: fn('int32_t llama_vocab_n_tokens(void *vocab)'),
    batchInit: fn('llama_batch llama_batch_init(int32_t tokens, int32_t embd, int32_t sequences)'),
    batchFree: fn('void llama_batch_free(llama_batch batch)'),
    decode: fn('int32_t llama_decode(void *ctx, llama_batch batch)'),
    logits: fn('void *llama_get_logits_ith(void *ctx, int32_t i)'),
    memory: fn('void *llama_get_memory(void *ctx)'),
    erase: fn('bool llama_memory_seq_rm(void *memory, int32_t seq, int32_t p0, int32_t p1)'),
    greedy: fn('void *llama_sampler_init_greedy()'),
    sample: fn('int32_t llama_sampler_sample(void *sampler, void *ctx, int32_t i)'),
    freeSampler: fn('void llama_sampler_free(void *sampler)'),
    view: (pointer, bytes) => koffi.view(pointer, bytes),
    pointers: (pointer, n) => koffi.decode(pointer, 'void *', n) as Pointer[]
  }
}
