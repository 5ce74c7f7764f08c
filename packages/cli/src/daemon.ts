import { createApiServer } from '@node-daemon/api'
import { ConfigError, createNode, isLoopback } from '@node-daemon/daemon'
import type { Config, DaemonNode, Logger } from '@node-daemon/daemon'
import type { FastifyInstance } from 'fastify'

export interface RunningDaemon {
  node: DaemonNode
  api: FastifyInstance
  /** Base URL of the HTTP API. */
  url: string
  /** Stops taking requests, lets in-flight writes finish, then closes the node and its stores. */
  stop(): Promise<void>
  /** Settles once a stop asked through the API (Kubo's `shutdown`) has finished. */
  stoppedByApi: Promise<void>
}

/** Starts a node and its API: what `node-daemon start` runs, and what tests run in-process. */
export async function startDaemon (config: Config, logger: Logger): Promise<RunningDaemon> {
  const node = await createNode(config, { logger })
  const stoppedByApi = Promise.withResolvers<void>()
  let stopping: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    stopping ??= (async () => {
      await api.close()
      await node.stop()
    })()
    return stopping
  }
  await node.start()
  let api: FastifyInstance
  try {
    await guardOpenAddress(node, config, logger)
    api = await createApiServer(node, { logger, requestStop: () => { stoppedByApi.resolve(stop()) } })
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
  return { node, api, url, stop, stoppedByApi: stoppedByApi.promise }
}

/** How long a first start waits for its cluster to take the admin key it makes. */
const ADMIN_KEY_TIMEOUT_MS = 60_000

/**
 * An API beyond loopback needs credentials: with none anywhere in the
 * cluster, start refuses, unless asked to make an admin key now (printed
 * once, as the Docker image asks) or told to serve without (--api-insecure).
 */
async function guardOpenAddress (node: DaemonNode, config: Config, logger: Logger): Promise<void> {
  if (isLoopback(config.api.host) || node.access.credentials.any()) return
  if (config.api.insecure) {
    logger.warn({ host: config.api.host }, 'the API serves anyone who reaches it, without credentials (--api-insecure)')
    return
  }
  if (!config.api.initAdminKey) {
    throw new ConfigError(`the API would listen on ${config.api.host} with no credential to require: start once on 127.0.0.1 and run \`node-daemon auth key create --name admin --permissions '*'\`, set NODE_DAEMON_ADMIN_TOKEN, or start with NODE_DAEMON_INIT_ADMIN_KEY=true to make an admin key now (or --api-insecure to serve without credentials)`)
  }
  const { key } = await node.access.createKey({ name: 'admin', permissions: ['*'] }, { signal: AbortSignal.timeout(ADMIN_KEY_TIMEOUT_MS) })
  process.stdout.write(`admin key: ${key}\n`)
  process.stderr.write('the admin key is shown this once: keep it, it is stored only as a hash\n')
}
