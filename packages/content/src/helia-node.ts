import { createLibp2p } from 'libp2p'
import type { Helia, Router } from '@helia/interface'
import type { HeliaWithLibp2p } from '@helia/libp2p'
import type { Libp2p, ServiceMap } from '@libp2p/interface'
import type { HeliaInit } from 'helia'
import type { Libp2pOptions } from 'libp2p'

/**
 * The entry points of `helia` and `@helia/libp2p` both import @helia/libp2p's
 * default libp2p configuration (WebRTC, WebSockets, UPnP, AutoTLS, relays...):
 * some 50 MB of resident memory that a daemon with its own swarm never uses.
 * So the modules needed are loaded by path, beside those entry points.
 * A Helia upgrade that moves them fails here, at start-up, not later.
 */
export const beside = async <T>(pkg: string, file: string): Promise<T> => import(new URL(file, import.meta.resolve(pkg)).href) as Promise<T>
const { Helia: HeliaClass } = await beside<{ Helia: new (init: HeliaInit & { name: string, version: string }) => Helia }>('helia', 'helia.js')
const { name, version } = await beside<{ name: string, version: string }>('helia', 'version.js')
const { libp2pRouting } = await beside<{ libp2pRouting: (libp2p: Libp2p) => Router }>('@helia/libp2p', 'routing.js')

/**
 * A Helia node on a libp2p node it creates when it starts, with no HTTP
 * gateways or delegated routers (they would wait on the internet). `libp2p`
 * gets the new node's keychain, which the swarm options may need.
 *
 * `beforeListen` runs once libp2p exists and before it starts, so that the
 * protocols it handles are in place before any peer can connect. A peer
 * learns them once per connection, from identify as the connection opens,
 * and is never told of a handler added later: a restarted node's peers,
 * which dial it the moment it listens, had found it without its block
 * protocols and never asked it for a block while that connection lived.
 */
export function createHeliaNode<S extends ServiceMap> (init: HeliaInit, libp2p: (helia: Helia) => Libp2pOptions<S>, beforeListen?: (helia: HeliaWithLibp2p<S>) => Promise<void>): HeliaWithLibp2p<S> {
  const helia = new HeliaClass({ ...init, name, version })
  let node: Libp2p<S> | undefined
  Object.defineProperty(helia, 'libp2p', {
    enumerable: true,
    get () {
      if (node == null) throw new Error('libp2p exists once the node has started')
      return node
    }
  })
  helia.addMixin({
    name: 'libp2p',
    start: async () => {
      const options = libp2p(helia)
      // Helia's name unless the swarm names the node itself (identify's agent version).
      node ??= await createLibp2p({ ...options, datastore: init.datastore, nodeInfo: { name, version, userAgent: `${name}/${version}`, ...options.nodeInfo }, start: false })
      if (!helia.hasRouter('libp2p-router')) helia.addRouter(libp2pRouting(node))
      await beforeListen?.(helia as HeliaWithLibp2p<S>)
      await node.start()
    },
    stop: async () => { await node?.stop() }
  })
  return helia as HeliaWithLibp2p<S>
}
