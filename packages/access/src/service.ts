/**
 * Access control as a service of the node: it opens the JWT key, writes the
 * cookie the local command line uses, publishes the node's JWT key to the
 * cluster, and makes and revokes keys and users. What it makes goes through
 * the cluster's replicated store, as hashes, so that a key made on one node
 * works on every node, and a revocation anywhere takes effect everywhere.
 */
import { randomUUID } from 'node:crypto'
import { chmod, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { AccessConfigError, AuthenticationError, CredentialNotFoundError, InvalidCredentialError } from './errors.ts'
import { Credentials, StaticDirectory } from './credentials.ts'
import { COOKIE_FILE, JWT_KEY_FILE } from './files.ts'
import { AccessGuard } from './guard.ts'
import { JwtAuthority } from './jwt.ts'
import { expandPermissions } from './permissions.ts'
import { hashPassword, hashSecret, newSecret } from './secrets.ts'
import type { AccessConfig } from './config.ts'
import type { CredentialDirectory, CredentialKind, StoredCredential } from './credentials.ts'

export interface AbortOptions {
  signal?: AbortSignal
}

/** The cluster's replicated credentials, as access control reads and changes them. */
export interface CredentialStore extends CredentialDirectory {
  list (): StoredCredential[]
  signingKey (kid: string): Record<string, string> | undefined
  putCredential (credential: StoredCredential, options?: AbortOptions): Promise<unknown>
  removeCredential (id: string, options?: AbortOptions): Promise<unknown>
  putSigningKey (kid: string, jwk: Record<string, string>, options?: AbortOptions): Promise<unknown>
  /** Resolves once this node holds every change committed before the call: a user made on another node a moment ago is then known here. */
  caughtUp (options?: AbortOptions): Promise<void>
}

export interface AccessComponents {
  store: CredentialStore
}

export interface AccessServiceInit {
  config: AccessConfig
  /** Where the JWT key (jwt.key) and the cookie (api.cookie) are kept. */
  repo: string
  /** The API listens on loopback addresses only. */
  loopback: boolean
  /** Serve anyone without credentials, whatever the address (--api-insecure). */
  open?: boolean
  /** Document 002's admin token. */
  adminToken?: string
}

/** A credential as the API shows it: never its hash. */
export type CredentialView = Omit<StoredCredential, 'hash'>

export class AccessService {
  readonly #c: AccessComponents
  readonly #init: AccessServiceInit
  readonly #cookie = newSecret()
  readonly credentials: Credentials
  #jwt?: JwtAuthority
  #guard?: AccessGuard

  constructor (components: AccessComponents, init: AccessServiceInit) {
    this.#c = components
    this.#init = init
    this.credentials = new Credentials({
      directories: [new StaticDirectory(init.config.credentials), components.store],
      adminTokenHash: init.adminToken == null || init.adminToken === '' ? undefined : hashSecret(init.adminToken),
      cookieHash: hashSecret(this.#cookie)
    })
  }

  /** The request checks; there once the service started. */
  get guard (): AccessGuard {
    if (this.#guard == null) throw new Error('access control has not started')
    return this.#guard
  }

  get jwt (): JwtAuthority {
    if (this.#jwt == null) throw new Error('access control has not started')
    return this.#jwt
  }

  async start (): Promise<void> {
    const { jwt } = this.#init.config
    const read = async (file: string, what: string): Promise<string> => readFile(file, 'utf8').catch((err: Error) => { throw new AccessConfigError(`${what} ${file} cannot be read: ${err.message}`) })
    this.#jwt = await JwtAuthority.open({
      keyFile: join(this.#init.repo, JWT_KEY_FILE),
      issuer: jwt.issuer,
      audience: jwt.audience,
      expirySeconds: Math.round(jwt.expiryMs / 1000),
      pems: await Promise.all(jwt.publicKeyFiles.map(async file => read(file, 'auth.jwt.public_keys:'))),
      jwks: await Promise.all(jwt.jwksFiles.map(async file => {
        try {
          return JSON.parse(await read(file, 'auth.jwt.jwks:'))
        } catch (err: any) {
          throw err instanceof AccessConfigError ? err : new AccessConfigError(`auth.jwt.jwks: ${file} is not JSON`)
        }
      }))
    })
    this.#guard = new AccessGuard({
      credentials: this.credentials,
      jwt: this.#jwt,
      clusterKey: (kid) => this.#c.store.signingKey(kid)
    }, { config: this.#init.config, loopback: this.#init.loopback, open: this.#init.open })
    // The command line on this machine reads it; only the node's user may.
    const file = join(this.#init.repo, COOKIE_FILE)
    await writeFile(`${file}.tmp`, this.#cookie, { mode: 0o600 })
    await chmod(`${file}.tmp`, 0o600)
    await rename(`${file}.tmp`, file)
  }

  async stop (): Promise<void> {
    await rm(join(this.#init.repo, COOKIE_FILE), { force: true })
  }

  /** Puts this node's JWT key in the cluster's store, so that every node verifies the tokens it issues. */
  async publishSigningKey (options: AbortOptions = {}): Promise<void> {
    const { kid, publicJwk } = this.jwt
    if (this.#c.store.signingKey(kid) != null) return
    await this.#c.store.putSigningKey(kid, publicJwk as Record<string, string>, options)
  }

  /** Whether requests need credentials now. */
  enabled (): boolean {
    return this.guard.enabled()
  }

  /** A new API key or bearer token: its secret is in the answer and nowhere else. */
  async createKey (params: { name: string, permissions: string[], expiresInMs?: number, kind?: Exclude<CredentialKind, 'user'> }, options: AbortOptions = {}): Promise<{ credential: CredentialView, key: string }> {
    checkName(params.name)
    checkPermissions(params.permissions)
    const key = newSecret()
    const now = Date.now()
    const credential: StoredCredential = {
      id: randomUUID().slice(0, 8),
      kind: params.kind ?? 'api_key',
      name: params.name,
      permissions: params.permissions,
      hash: hashSecret(key),
      createdAt: new Date(now).toISOString(),
      expiresAt: params.expiresInMs == null ? undefined : new Date(now + params.expiresInMs).toISOString()
    }
    await this.#c.store.putCredential(credential, options)
    return { credential: view(credential), key }
  }

  /** The cluster's keys and tokens, and the config file's, without their hashes. */
  keys (): CredentialView[] {
    return [...this.#init.config.credentials, ...this.#c.store.list()].filter(c => c.kind !== 'user').map(view)
  }

  async revoke (id: string, options: AbortOptions = {}): Promise<CredentialView> {
    if (this.#init.config.credentials.some(c => c.id === id)) throw new InvalidCredentialError(`${id} is in the config file: remove it there`)
    const found = this.#c.store.list().find(c => c.id === id)
    await this.#c.store.removeCredential(id, options)
    return view(found ?? { id, kind: 'api_key', name: '', permissions: [], hash: '' })
  }

  /** Adds a user, or gives an existing one a new password and permissions. */
  async addUser (params: { name: string, password: string, permissions: string[] }, options: AbortOptions = {}): Promise<CredentialView> {
    checkName(params.name)
    checkPermissions(params.permissions)
    if (params.password.length < 8) throw new InvalidCredentialError('a password needs at least 8 characters')
    const existing = this.#c.store.user(params.name)
    const credential: StoredCredential = {
      id: existing?.id ?? randomUUID().slice(0, 8),
      kind: 'user',
      name: params.name,
      permissions: params.permissions,
      hash: await hashPassword(params.password),
      createdAt: new Date().toISOString()
    }
    await this.#c.store.putCredential(credential, options)
    return view(credential)
  }

  /** Removes a user: its tokens stop working on every node. */
  async removeUser (name: string, options: AbortOptions = {}): Promise<CredentialView> {
    const user = this.#c.store.user(name)
    if (user == null) throw new CredentialNotFoundError(`no user of the cluster is named ${JSON.stringify(name)}`)
    await this.#c.store.removeCredential(user.id, options)
    return view(user)
  }

  users (): CredentialView[] {
    return [...this.#init.config.credentials, ...this.#c.store.list()].filter(c => c.kind === 'user').map(view)
  }

  /** Document 003's login: a user's name and password for a JWT signed by this node. */
  async login (name: string, password: string, options?: AbortOptions): Promise<{ token: string, expiresAt: number, permissions: string[] }> {
    let principal = await this.credentials.fromPassword(name, password)
    // A user this node does not know may have been made on another node a moment ago: one Raft read later it is known here, or unknown anywhere.
    if (principal == null && this.credentials.user(name) == null && await this.#c.store.caughtUp(options).then(() => true, () => false)) principal = await this.credentials.fromPassword(name, password)
    if (principal == null) throw new AuthenticationError('invalid user name or password')
    const permissions = [...principal.permissions]
    return { ...await this.jwt.issue(name, permissions), permissions }
  }
}

function view (credential: StoredCredential): CredentialView {
  const { hash: _hash, ...rest } = credential
  return rest
}

function checkName (name: string): void {
  if (!/^[\w.@-]{1,64}$/.test(name)) throw new InvalidCredentialError('a name is 1 to 64 letters, digits, and . _ @ -')
}

function checkPermissions (permissions: string[]): void {
  if (permissions.length === 0) throw new InvalidCredentialError('name at least one permission')
  const checked = expandPermissions(permissions)
  if (typeof checked === 'string') throw new InvalidCredentialError(`${JSON.stringify(checked)} is not a permission`)
}
