/**
 * Where credentials come from and what they grant: the `auth` section of the
 * config, the cluster's replicated records (made by `auth key create` on any
 * node), the admin token of the environment, and the node's own cookie for
 * local command-line use. Only hashes are kept; a secret is looked up by its
 * hash and a password checked against its bcrypt hash.
 */
import { createHash } from 'node:crypto'
import { expandPermissions, PERMISSIONS } from './permissions.ts'
import { hashSecret, sameHash, verifyPassword } from './secrets.ts'
import type { Permission } from './permissions.ts'

export type CredentialKind = 'api_key' | 'bearer_token' | 'user'

/** A credential as the config gives it and the cluster replicates it: never the secret itself. */
export interface StoredCredential {
  /** Public id: what `auth key list` shows and `auth key revoke` takes. */
  id: string
  kind: CredentialKind
  name: string
  /** Permission names, aliases allowed (`*`, `cat`, `ls`, `get`). */
  permissions: string[]
  /** `sha256:<hex>` of a key or token; the bcrypt hash of a user's password. */
  hash: string
  createdAt?: string
  /** ISO time after which the credential is refused. */
  expiresAt?: string
}

/** A set of credentials to look up: the config's, the cluster's. */
export interface CredentialDirectory {
  bySecretHash (hash: string): StoredCredential | undefined
  user (name: string): StoredCredential | undefined
  /** How many credentials it holds. */
  count (): number
}

/** Who a request is from, and what it may do. */
export interface Principal {
  /** Stable within the cluster: what rate limits count by. */
  id: string
  name: string
  kind: CredentialKind | 'jwt' | 'admin' | 'local'
  permissions: ReadonlySet<Permission>
}

const ALL: ReadonlySet<Permission> = new Set(PERMISSIONS)

/** The credentials of the config file, indexed once. */
export class StaticDirectory implements CredentialDirectory {
  readonly #bySecret = new Map<string, StoredCredential>()
  readonly #users = new Map<string, StoredCredential>()

  constructor (credentials: StoredCredential[]) {
    for (const c of credentials) {
      if (c.kind === 'user') this.#users.set(c.name, c)
      else this.#bySecret.set(c.hash, c)
    }
  }

  bySecretHash (hash: string): StoredCredential | undefined {
    return this.#bySecret.get(hash)
  }

  user (name: string): StoredCredential | undefined {
    return this.#users.get(name)
  }

  count (): number {
    return this.#bySecret.size + this.#users.size
  }
}

export interface CredentialsInit {
  directories: CredentialDirectory[]
  /** Hash of document 002's admin token (NODE_DAEMON_ADMIN_TOKEN). */
  adminTokenHash?: string
  /** Hash of the node's cookie, which the command line on the same machine reads from the repo. */
  cookieHash?: string
  now?: () => number
}

/** Verified basic-auth headers are remembered this long, so that a client sending one per request does not pay bcrypt each time. */
const BASIC_CACHE_MS = 60_000
const BASIC_CACHE_SIZE = 1000

/** Looks up who a secret or a user's password belongs to. */
export class Credentials {
  readonly #init: CredentialsInit
  readonly #now: () => number
  /** sha256 of `user:password` → the user's record as verified, and until when. */
  readonly #basic = new Map<string, { credential: StoredCredential, until: number }>()
  /**
   * What each record grants, worked out once: the directories replace a
   * record when it changes, so a record object always grants the same.
   */
  readonly #grants = new WeakMap<StoredCredential, { principal: Principal | undefined, expiresAt: number }>()
  readonly #cookieHash?: Buffer
  readonly #adminTokenHash?: Buffer

  constructor (init: CredentialsInit) {
    this.#init = init
    this.#now = init.now ?? Date.now
    if (init.cookieHash != null) this.#cookieHash = Buffer.from(init.cookieHash)
    if (init.adminTokenHash != null) this.#adminTokenHash = Buffer.from(init.adminTokenHash)
  }

  /** Whether any credential exists: a node that has none serves local processes without them. */
  any (): boolean {
    return this.#init.adminTokenHash != null || this.#init.directories.some(d => d.count() > 0)
  }

  /** Whose a key, bearer token, admin token or cookie is; undefined when it is nobody's or expired. */
  fromSecret (secret: string): Principal | undefined {
    const hash = hashSecret(secret)
    const bytes = Buffer.from(hash)
    if (this.#cookieHash != null && sameHash(bytes, this.#cookieHash)) return { id: 'local', name: 'local', kind: 'local', permissions: ALL }
    if (this.#adminTokenHash != null && sameHash(bytes, this.#adminTokenHash)) return { id: 'admin', name: 'admin', kind: 'admin', permissions: ALL }
    for (const directory of this.#init.directories) {
      // Found by its hash, so equal to it: the Map's comparison leaks timing only of the hash, which says nothing of the secret.
      const found = directory.bySecretHash(hash)
      if (found != null) return this.#principal(found)
    }
    return undefined
  }

  /** Whose a user name and password are (HTTP basic auth and the JWT login). */
  async fromPassword (name: string, password: string): Promise<Principal | undefined> {
    const key = createHash('sha256').update(`${name}:${password}`).digest('hex')
    const cached = this.#basic.get(key)
    if (cached != null && cached.until > this.#now() && this.#user(name) === cached.credential) return this.#principal(cached.credential)
    const user = this.#user(name)
    if (user == null || !await verifyPassword(password, user.hash)) return undefined
    if (this.#basic.size >= BASIC_CACHE_SIZE) this.#basic.delete(this.#basic.keys().next().value as string)
    this.#basic.set(key, { credential: user, until: this.#now() + BASIC_CACHE_MS })
    return this.#principal(user)
  }

  /** A user by name, for tokens issued to them: a removed user's tokens stop working. */
  user (name: string): Principal | undefined {
    const user = this.#user(name)
    return user == null ? undefined : this.#principal(user)
  }

  #user (name: string): StoredCredential | undefined {
    for (const directory of this.#init.directories) {
      const found = directory.user(name)
      if (found != null) return found
    }
    return undefined
  }

  #principal (credential: StoredCredential): Principal | undefined {
    let grant = this.#grants.get(credential)
    if (grant == null) {
      const permissions = expandPermissions(credential.permissions)
      grant = {
        // A record with a permission this version does not know grants nothing rather than guessing.
        principal: typeof permissions === 'string' ? undefined : { id: `${credential.kind}:${credential.id}`, name: credential.name, kind: credential.kind, permissions },
        expiresAt: credential.expiresAt == null ? Infinity : Date.parse(credential.expiresAt)
      }
      this.#grants.set(credential, grant)
    }
    return grant.expiresAt <= this.#now() ? undefined : grant.principal
  }
}
