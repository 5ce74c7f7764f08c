/**
 * What the generation loop (Batcher, PrefixCache) and Runtime.generate need
 * of a causal LM, whichever engine runs it: onnxruntime (CausalLM) or
 * llama.cpp (GgufLM). Sampling, stop strings, constraints and streaming stay
 * the loop's, so that they are the same on both.
 */
import type { ModelInfo } from './model.ts'
import type { TextCodec } from './text.ts'

/** The keys and values of a batch of sequences, each row right-aligned to `length` behind `pads[row]` positions. */
export interface DecoderCache {
  length: number
  pads: number[]
}

// Methods, not function properties: a Decoder<BatchCache> then serves where a Decoder of any cache is asked for.
export interface Decoder<C extends DecoderCache = DecoderCache> {
  readonly kind: 'causal-lm'
  readonly codec: TextCodec
  readonly info: ModelInfo
  /** Runs `rows` (prompts without a cache; else one step's tokens per row) and returns each row's last logits and the grown cache. */
  forward (rows: number[][], cache?: C, signal?: AbortSignal): Promise<{ logits: Float32Array[], cache: C }>
  /**
   * As forward, but the rows flagged in `greedy` come back as their argmax
   * (the first of equals), which the engine finds itself without handing the
   * row's logits over; the others as their logits. Engines whose logits are
   * dear to fetch (llama.cpp's) offer it. `room` tells how many tokens each
   * row may still take after the one this step returns (0: it is its last,
   * by length): an engine that computes a row's tokens ahead of the steps
   * that ask for them computes no more.
   */
  forwardGreedy? (rows: number[][], greedy: boolean[], cache?: C, signal?: AbortSignal, room?: number[]): Promise<{ next: Array<Float32Array | number>, cache: C }>
  /**
   * One cache of the given rows of several, in order; the caches given are
   * not used afterwards. `growing`: the cache is a batch's, which its next
   * steps will grow.
   */
  regroup (parts: Array<{ cache: C, rows: number[] }>, growing?: boolean): C
  /** Bytes a cache of `rows` × `positions` holds; Infinity when a cache cannot be kept apart from its batch. */
  cacheBytes (rows: number, positions: number): number
  /** Gives back what a cache no batch holds any more took, where it is not simply garbage (llama.cpp's sequences). */
  free? (cache: C): void
  release (): Promise<void>
}
