import { Type } from 'typebox'
import { parseDuration } from '@node-daemon/access'
import { BadRequestError } from '../errors.ts'
import { requestSignal } from '../stream.ts'
import type { Routes } from '../server.ts'
import type { Static } from 'typebox'

const Permissions = Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 32, description: 'Permission names: content:read, content:write, pins, names, swarm, cluster:read, cluster:admin, models:read, models:write, inference, training, tasks, auth:admin; or cat, ls, get, *' })

const Login = Type.Object({
  username: Type.String({ minLength: 1, maxLength: 64 }),
  password: Type.String({ minLength: 1, maxLength: 1024 })
}, { additionalProperties: false })

const NewKey = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 64 }),
  permissions: Permissions,
  expires: Type.Optional(Type.String({ maxLength: 32, description: 'How long it is valid: 30d, 12h, ...; default for ever' })),
  kind: Type.Optional(Type.Union([Type.Literal('api_key'), Type.Literal('bearer_token')], { description: 'Both are sent the same ways; bearer_token only names its use' }))
}, { additionalProperties: false })

const NewUser = Type.Object({
  username: Type.String({ minLength: 1, maxLength: 64 }),
  password: Type.String({ minLength: 8, maxLength: 1024 }),
  permissions: Permissions
}, { additionalProperties: false })

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) })
const NameParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 64 }) })

const viewJson = (c: { id: string, kind: string, name: string, permissions: string[], createdAt?: string, expiresAt?: string }): object => ({
  id: c.id, kind: c.kind, name: c.name, permissions: c.permissions, created_at: c.createdAt ?? null, expires_at: c.expiresAt ?? null
})

/**
 * Document 003's login, and the management of keys and users: what they make
 * is replicated, so it works on every node of the cluster.
 */
export const authRoutes: Routes = (app, { node }) => {
  const { access } = node

  app.post('/api/v1/auth/login', { permission: 'public', limitClass: 'anonymous', schema: { body: Login, tags: ['auth'], summary: "A user's name and password for an RS256 JWT, sent as Authorization: Bearer <token>" } }, async (request) => {
    const { username, password } = request.body as Static<typeof Login>
    const { token, expiresAt, permissions } = await access.login(username, password)
    return { success: true, token, access_token: token, token_type: 'Bearer', expires_in: expiresAt - Math.floor(Date.now() / 1000), expires_at: new Date(expiresAt * 1000).toISOString(), permissions }
  })

  app.post('/api/v1/auth/keys', { permission: 'auth:admin', schema: { body: NewKey, tags: ['auth'], summary: 'Create an API key: the key is in this answer and nowhere else' } }, async (request, reply) => {
    const body = request.body as Static<typeof NewKey>
    const expiresInMs = body.expires == null ? undefined : duration(body.expires)
    const { credential, key } = await access.createKey({ name: body.name, permissions: body.permissions, expiresInMs, kind: body.kind }, { signal: requestSignal(reply) })
    return reply.code(201).send({ success: true, key, ...viewJson(credential) })
  })

  app.get('/api/v1/auth/keys', { permission: 'auth:admin', schema: { tags: ['auth'], summary: 'API keys and bearer tokens, without their secrets' } }, async () => {
    return { keys: access.keys().map(viewJson) }
  })

  app.delete('/api/v1/auth/keys/:id', { permission: 'auth:admin', schema: { params: IdParams, tags: ['auth'], summary: 'Revoke a key on every node' } }, async (request, reply) => {
    const { id } = request.params as Static<typeof IdParams>
    return { success: true, revoked: viewJson(await access.revoke(id, { signal: requestSignal(reply) })) }
  })

  app.post('/api/v1/auth/users', { permission: 'auth:admin', schema: { body: NewUser, tags: ['auth'], summary: 'Add a user for basic auth and login, or give one a new password and permissions' } }, async (request, reply) => {
    const body = request.body as Static<typeof NewUser>
    const user = await access.addUser({ name: body.username, password: body.password, permissions: body.permissions }, { signal: requestSignal(reply) })
    return reply.code(201).send({ success: true, ...viewJson(user) })
  })

  app.get('/api/v1/auth/users', { permission: 'auth:admin', schema: { tags: ['auth'], summary: 'Users, without their password hashes' } }, async () => {
    return { users: access.users().map(viewJson) }
  })

  app.delete('/api/v1/auth/users/:name', { permission: 'auth:admin', schema: { params: NameParams, tags: ['auth'], summary: 'Remove a user: its tokens stop working on every node' } }, async (request, reply) => {
    const { name } = request.params as Static<typeof NameParams>
    return { success: true, removed: viewJson(await access.removeUser(name, { signal: requestSignal(reply) })) }
  })
}

function duration (text: string): number {
  try {
    return parseDuration(text, 'expires')
  } catch (err: any) {
    throw new BadRequestError(err.message)
  }
}
