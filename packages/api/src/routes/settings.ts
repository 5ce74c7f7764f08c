import { Type } from 'typebox'
import { firstArg } from '../args.ts'
import { BadRequestError } from '../errors.ts'
import { kuboRoute } from './route.ts'
import type { Routes } from '../server.ts'

const REDACTED = '<redacted>'

/** Settings that hold secrets, or that would let a reader make them: shown as set or not, never as they are. */
const SECRET_KEYS = new Set(['adminToken', 'secret', 'joinToken', 'credentials'])

function redact (value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redact)
  if (value == null || typeof value !== 'object') return value
  return Object.fromEntries(Object.entries(value).map(([key, v]) => [key, SECRET_KEYS.has(key) && v != null ? REDACTED : key === 'remoteServices' ? withoutKeys(v) : redact(v)]))
}

/** Remote pinning services without their keys, which Kubo's config leaves out rather than marks. */
function withoutKeys (services: Record<string, { endpoint: string }>): Record<string, { endpoint: string }> {
  return Object.fromEntries(Object.entries(services).map(([name, { endpoint }]) => [name, { endpoint }]))
}

interface Command { Name: string, Options: Array<{ Names: string[] }>, Subcommands: Command[] }

/**
 * Kubo's command tree, built from the Kubo routes this API serves, with their
 * query options. As Kubo's, the root holds the global options: of Kubo's,
 * every route here takes `timeout` (kuboRoute); the rest are its CLI's.
 */
function commandTree (paths: Record<string, Record<string, { parameters?: Array<{ in: string, name: string }> }>>): Command {
  const root: Command = { Name: 'ipfs', Options: [{ Names: ['timeout'] }], Subcommands: [] }
  for (const [path, methods] of Object.entries(paths).sort(([a], [b]) => a.localeCompare(b))) {
    if (!path.startsWith('/api/v0/') || path.includes('{') || path.endsWith('.json') || path.includes('/docs')) continue
    let node = root
    for (const name of path.slice('/api/v0/'.length).split('/')) {
      let next = node.Subcommands.find(c => c.Name === name)
      if (next == null) {
        next = { Name: name, Options: [], Subcommands: [] }
        node.Subcommands.push(next)
      }
      node = next
    }
    const options = new Set(Object.values(methods).flatMap(m => (m.parameters ?? []).filter(p => p.in === 'query' && p.name !== 'arg').map(p => p.name)))
    node.Options = [...options].map(name => ({ Names: [name] }))
  }
  return root
}

/** The daemon's own settings, its command list, and its stop: Kubo's config, commands and shutdown. */
export const settingsRoutes: Routes = (app, { node, requestStop }) => {
  kuboRoute(app, {
    path: 'config/show',
    permission: 'cluster:admin',
    tags: ['system'],
    summary: 'The settings this daemon runs with, secrets redacted; they are read at start, so a change needs a restart',
    handler: async () => redact(node.config)
  })

  kuboRoute(app, {
    path: 'config',
    permission: 'cluster:admin',
    tags: ['system'],
    summary: 'One setting by its dotted key (e.g. content.storageMax), secrets redacted; setting one is refused: settings are read at start',
    schema: { querystring: Type.Object({ arg: Type.Optional(Type.Array(Type.String({ description: 'The key; a second argument would set it' }))) }) },
    handler: async (request) => {
      const key = firstArg(request, 'key')
      const value = (request.query as { arg?: string[] }).arg?.[1]
      if (value != null) {
        throw new BadRequestError(`config ${key} cannot be set through the API: the daemon reads its settings at start; change config.yaml in the repo, the environment or the flags, and restart`)
      }
      let current: unknown = redact(node.config)
      for (const part of key.split('.')) {
        if (current == null || typeof current !== 'object' || !Object.hasOwn(current, part)) throw new BadRequestError(`no setting ${JSON.stringify(key)}`)
        current = (current as Record<string, unknown>)[part]
      }
      return { Key: key, Value: current }
    }
  })

  kuboRoute(app, {
    path: 'commands',
    permission: 'public',
    tags: ['system'],
    summary: 'The Kubo commands this daemon serves, as a tree with their options',
    handler: async () => commandTree((app.swagger() as { paths: Parameters<typeof commandTree>[0] }).paths)
  })

  kuboRoute(app, {
    path: 'shutdown',
    permission: 'cluster:admin',
    tags: ['system'],
    summary: 'Stop the daemon once this answer is sent',
    handler: async (_request, reply) => {
      if (requestStop == null) throw new BadRequestError('this API cannot stop its daemon')
      reply.raw.once('finish', requestStop)
      return reply.send('')
    }
  })
}
