/**
 * Remote pinning, the client side: a client of the IPFS Pinning Service API
 * (github.com/ipfs/pinning-services-api-spec), the remote services a node
 * keeps in its settings, and Kubo's `pin remote add|ls|rm` over them. The
 * server side, the API over the cluster's pinset, is the HTTP API's.
 */
export * from './errors.ts'
export { PinningServiceClient, normalizeEndpoint, PIN_STATUSES } from './client.ts'
export type { Pin, PinStatus, PinResults, PinQuery, RemoteStatus } from './client.ts'
export { RemotePinning } from './remote-pinning.ts'
export type { RemotePinningComponents, RemoteService, ServiceDetails, RemotePinAddOptions, RemotePinQuery, RemotePin } from './remote-pinning.ts'
