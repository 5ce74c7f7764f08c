/**
 * libp2p nodes for Raft tests and the Raft bench: TCP on 127.0.0.1 with
 * ephemeral ports, noise and yamux, and nothing else, so that only Raft
 * traffic flows.
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import type { Libp2p, PrivateKey } from '@libp2p/interface'

/** A started node; pass the key (and port) of a stopped one to bring the same peer back (where the others dial it). */
export async function startLibp2p (privateKey?: PrivateKey, port = 0): Promise<Libp2p> {
  return createLibp2p({
    privateKey: privateKey ?? await generateKeyPair('Ed25519'),
    addresses: { listen: [`/ip4/127.0.0.1/tcp/${port}`] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()]
  })
}

/** Tells every node the addresses of the others, so that each can dial the others by peer id. */
export async function introduce (nodes: Libp2p[]): Promise<void> {
  for (const a of nodes) {
    for (const b of nodes) {
      if (a !== b) await a.peerStore.merge(b.peerId, { multiaddrs: b.getMultiaddrs() })
    }
  }
}

/** Polls `check` every 10 ms until it returns true; fails after `timeoutMs`. */
export async function until (what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}
