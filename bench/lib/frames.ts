/**
 * A streamed HTTP body read as a client reads it: cut into frames (NDJSON
 * lines, server-sent events) as its bytes come, each with the ms since the
 * request was sent at which they came, so that a bench can time tokens.
 */
export async function * framesOf (body: ReadableStream<Uint8Array>, separator: string, t0: number): AsyncGenerator<{ frame: string, atMs: number }> {
  let buffered = ''
  const decoder = new TextDecoder()
  const reader = body.getReader()
  try {
    while (true) {
      const { value: bytes, done } = await reader.read()
      if (done) return
      const atMs = performance.now() - t0
      buffered += decoder.decode(bytes, { stream: true })
      const frames = buffered.split(separator)
      buffered = frames.pop() as string
      for (const frame of frames) if (frame.trim() !== '') yield { frame, atMs }
    }
  } finally {
    await reader.cancel().catch(() => {})
  }
}
