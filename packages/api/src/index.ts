/**
 * The HTTP and WebSocket API of a node: a thin adapter from the documented
 * routes (Kubo RPC and the API documents in shared/seeds) to the `Node` of
 * @node-daemon/daemon. Schemas validate input and produce the OpenAPI
 * document; one mapper turns typed errors into the documented envelope. An
 * operation several APIs reach is defined once (operations.ts, methods.ts).
 */
export { createApiServer } from './server.ts'
export type { ApiInit, ApiContext } from './server.ts'
export { envelope, classify } from './errors.ts'
export type { ErrorEnvelope } from './errors.ts'
// The command line unpacks what `get` archives.
export { readTar } from './tar.ts'
export type { TarEntry } from './tar.ts'
export { DEFAULT_GENERATE_MODEL, DEFAULT_EMBED_MODEL } from './inference.ts'
export { humanSize } from './size.ts'
