import { generateKeyPair } from '@libp2p/crypto/keys'
import { withBitswap } from '@helia/bitswap'
import { withLibp2pLight } from '@helia/libp2p'
import { formatSwarmKey, swarmOptions } from '@node-daemon/swarm'
import { createHeliaLight } from 'helia'
import { TEST_SECRET } from './process.ts'
import type { SwarmServices } from '@node-daemon/swarm'
import type { HeliaWithLibp2p } from '@helia/libp2p'

/**
 * A plain Helia node with bitswap and the daemon's swarm stack (the DHT among
 * it), in the private network of TEST_SECRET: an IPFS peer that is not a
 * daemon, so blocks move to and from it over bitswap, not the block-stream protocol.
 */
export async function startHeliaPeer (): Promise<HeliaWithLibp2p<SwarmServices>> {
  const libp2p = swarmOptions({ privateKey: await generateKeyPair('Ed25519'), host: '127.0.0.1', port: 0, swarmKey: formatSwarmKey(Buffer.from(TEST_SECRET, 'hex')) })
  const helia = withBitswap(withLibp2pLight(createHeliaLight(), libp2p))
  await helia.start()
  return helia
}
