/** Comparing embeddings of one model's weights run by two engines. */

/** The least cosine between llama.cpp's embedding and onnxruntime's of the same weights: llama.cpp's GELU is tanh's approximation of the ONNX graph's erf. */
export const MIN_COSINE = 0.999

export function cosine (a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0
  let na = 0
  let nb = 0
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i]
    na += a[i] * a[i]
    nb += b[i] * b[i]
  }
  return dot / Math.sqrt(na * nb)
}
