import { createApiServer } from '@node-daemon/api'
import { createNode } from '@node-daemon/daemon'
import type { Config, DaemonNode, Logger } from '@node-daemon/daemon'
import type { FastifyInstance } from 'fastify'

export interface RunningDaemon {
  node: DaemonNode
  api: FastifyInstance
  /** Base URL of the HTTP API. */
  url: string
  /** Stops taking requests, lets in-flight writes finish, then closes the node and its stores. */
  stop(): Promise<void>
}

/** Starts a node and its API: what `node-daemon start` runs, and what tests run in-process. */
export async function startDaemon (config: Config, logger: Logger): Promise<RunningDaemon> {
  const node = await createNode(config, { logger })
  await node.start()
  let api: FastifyInstance
  try {
    api = await createApiServer(node, { logger })
    await api.listen({ host: config.api.host, port: config.api.port })
  } catch (err) {
    await node.stop()
    throw err
  }
  const address = api.server.address()
  const port = typeof address === 'object' && address != null ? address.port : config.api.port
  const host = config.api.host.includes(':') ? `[${config.api.host}]` : config.api.host
  const url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`
  await node.setApiAddress(url)
  let stopping: Promise<void> | undefined
  return {
    node,
    api,
    url,
    stop: async () => {
      stopping ??= (async () => {
        await api.close()
        await node.stop()
      })()
      return stopping
    }
  }
}
