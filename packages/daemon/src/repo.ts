import { randomBytes } from 'node:crypto'
import { link, mkdir, open, opendir, readFile, rename, rm, stat, unlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { LevelDatastore } from 'datastore-level'
import { Level } from 'level'
import { isMap, parseDocument, stringify as toYaml } from 'yaml'
import { formatSwarmKey as swarmKeyFile, parseSwarmKey as swarmKeyOf } from '@node-daemon/swarm'
import { PackBlockstore } from './blockstore.ts'
import { CONFIG_FILE } from './config.ts'
import { API_FILE, REPO_VERSION, SWARM_KEY_FILE } from './layout.ts'
import { OPEN_SWARM, parseSecret } from './settings.ts'
import { ConfigError, RepoError } from './errors.ts'
import type { SyncReadDatastore } from '@node-daemon/content'
import type { PrivateKey } from '@libp2p/interface'

// Opens, creates and reads a node's repo, laid out as layout.ts says.

export interface Repo {
  path: string
  privateKey: PrivateKey
  /** The identity in libp2p's protobuf encoding. */
  identity: Uint8Array
  blockstore: PackBlockstore
  datastore: RepoDatastore
  /** The private-network key in swarm.key format, as the swarm takes it; undefined for an open swarm. */
  swarmKey?: Uint8Array
  setApiAddress(url: string): Promise<void>
  close(): Promise<void>
}

/** Writes a file so that readers see the old or the new content, never a torn one. */
export async function writeFileAtomic (file: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  await mkdir(dirname(file), { recursive: true })
  const tmp = `${file}.${process.pid}.tmp`
  const handle = await open(tmp, 'w', mode)
  try {
    await handle.writeFile(data)
    await handle.sync()
  } finally {
    await handle.close()
  }
  await rename(tmp, file)
}

/** A 32-byte private-network key, given as hex, as Kubo's swarm.key file holds it. */
export function formatSwarmKey (hex: string): Uint8Array {
  const secret = parseSecret(hex, 'swarm key')
  if (secret == null || secret === OPEN_SWARM) throw new ConfigError('swarm key: expected 64 hex digits')
  return swarmKeyFile(Buffer.from(secret, 'hex'))
}

/** The key of a swarm.key file, as 64 lower-case hex digits. */
export function parseSwarmKey (data: Uint8Array | string, source = SWARM_KEY_FILE): string {
  try {
    return Buffer.from(swarmKeyOf(data)).toString('hex')
  } catch (err: any) {
    if (err.name === 'InvalidSwarmKeyError') throw new RepoError(`${source}: ${err.message}`)
    throw err
  }
}

/** The repo's swarm.key, in the /base16/ form, if the repo has one. */
export async function readSwarmKey (path: string): Promise<Uint8Array | undefined> {
  const file = join(path, SWARM_KEY_FILE)
  const data = await readFile(file).catch((err) => {
    if (err.code === 'ENOENT') return undefined
    throw new RepoError(`cannot read ${file}: ${err.message}`)
  })
  return data == null ? undefined : formatSwarmKey(parseSwarmKey(data, file))
}

/** Creates a file with its full content at once, unless it exists: then returns false. */
async function createFileAtomic (file: string, data: Uint8Array, mode: number): Promise<boolean> {
  await mkdir(dirname(file), { recursive: true })
  const tmp = `${file}.${process.pid}.tmp`
  await rm(tmp, { force: true })
  const handle = await open(tmp, 'wx', mode)
  try {
    await handle.writeFile(data)
    await handle.sync()
  } finally {
    await handle.close()
  }
  try {
    // link, unlike rename, fails on an existing file, so that a key is never replaced.
    await link(tmp, file)
    return true
  } catch (err: any) {
    if (err.code === 'EEXIST') return false
    throw err
  } finally {
    await unlink(tmp).catch(() => {})
  }
}

export interface InitRepoOptions {
  /** cluster.secret: 64 hex digits, or 'off' for an open swarm; unset, the repo's key or a new random one. */
  secret?: string
}

export interface InitRepoResult {
  privateKey: PrivateKey
  /** Whether this call created the identity. */
  created: boolean
  /** The key the swarm must use (see `Repo.swarmKey`). */
  swarmKey?: Uint8Array
  /** Whether this call wrote swarm.key. */
  swarmKeyCreated: boolean
}

/**
 * The private-network key: none with secret 'off'; the secret when given (written
 * to swarm.key if the repo has none, never over one); else the repo's swarm.key,
 * created from 32 random bytes the first time.
 */
async function resolveSwarmKey (path: string, secret: string | undefined): Promise<{ swarmKey?: Uint8Array, swarmKeyCreated: boolean }> {
  const wanted = parseSecret(secret, 'cluster.secret')
  if (wanted === OPEN_SWARM) return { swarmKey: undefined, swarmKeyCreated: false }
  const file = join(path, SWARM_KEY_FILE)
  if (wanted == null) {
    const existing = await readSwarmKey(path)
    if (existing != null) return { swarmKey: existing, swarmKeyCreated: false }
  } else if (await stat(file).then(() => true, () => false)) {
    return { swarmKey: formatSwarmKey(wanted), swarmKeyCreated: false }
  }
  const key = formatSwarmKey(wanted ?? randomBytes(32).toString('hex'))
  const swarmKeyCreated = await createFileAtomic(file, key, 0o600)
  if (wanted != null || swarmKeyCreated) return { swarmKey: key, swarmKeyCreated }
  // Another process created it in between: its key is the one.
  return { swarmKey: await readSwarmKey(path), swarmKeyCreated }
}

/**
 * Creates the repo, its identity and its swarm key if missing; safe to run
 * again on an existing repo, whose files it never replaces.
 */
export async function initRepo (path: string, options: InitRepoOptions = {}): Promise<InitRepoResult> {
  await mkdir(path, { recursive: true })
  const versionFile = join(path, 'version')
  const version = await readFile(versionFile, 'utf8').catch(() => undefined)
  if (version != null && version.trim() !== REPO_VERSION) {
    throw new RepoError(`${path} holds repo version ${version.trim()}, this daemon reads version ${REPO_VERSION}`)
  }
  const keyFile = join(path, 'identity.key')
  const existing = await readFile(keyFile).catch((err) => {
    if (err.code === 'ENOENT') return undefined
    throw new RepoError(`cannot read ${keyFile}: ${err.message}`)
  })
  if (existing != null) {
    let privateKey: PrivateKey
    try {
      privateKey = privateKeyFromProtobuf(existing)
    } catch (err: any) {
      throw new RepoError(`${keyFile} is not a libp2p private key: ${err.message}`)
    }
    return { privateKey, created: false, ...await resolveSwarmKey(path, options.secret) }
  }
  const privateKey = await generateKeyPair('Ed25519')
  await writeFileAtomic(keyFile, privateKeyToProtobuf(privateKey), 0o600)
  const swarm = await resolveSwarmKey(path, options.secret)
  if (version == null) await writeFileAtomic(versionFile, `${REPO_VERSION}\n`)
  return { privateKey, created: true, ...swarm }
}

/** Writes a commented default config.yaml, unless one exists. */
export async function writeDefaultConfig (path: string, settings: object): Promise<void> {
  const file = join(path, CONFIG_FILE)
  if (await readFile(file).then(() => true, () => false)) return
  await writeFileAtomic(file, `# node-daemon settings; flags and NODE_DAEMON_* env vars override them.\n${toYaml(settings)}`)
}

/**
 * Writes the remote pinning services into the repo's config.yaml, keeping the
 * rest of the file and its comments; readable by its owner only from then on,
 * since it holds the services' keys, as Kubo's config does.
 */
export async function saveRemoteServices (path: string, services: Record<string, { endpoint: string, key: string }>): Promise<void> {
  const file = join(path, CONFIG_FILE)
  const text = await readFile(file, 'utf8').catch((err) => {
    if (err.code === 'ENOENT') return ''
    throw new RepoError(`cannot read ${CONFIG_FILE}: ${err.message}`)
  })
  const doc = parseDocument(text)
  if (doc.errors.length > 0) throw new ConfigError(`${CONFIG_FILE} is not valid YAML: ${doc.errors[0].message}`)
  let out: string
  if (Object.keys(services).length === 0) {
    if (doc.hasIn(['pinning', 'remote_services'])) doc.deleteIn(['pinning', 'remote_services'])
    out = doc.toString()
  } else if (!isMap(doc.contents)) {
    // An empty file, or one of comments only: yaml has no mapping to set a key in.
    out = `${text}${text === '' || text.endsWith('\n') ? '' : '\n'}${toYaml({ pinning: { remote_services: services } })}`
  } else {
    // An empty `pinning:` reads as null, which yaml cannot set a key in either.
    if (doc.get('pinning') == null) doc.set('pinning', doc.createNode({ remote_services: services }))
    else doc.setIn(['pinning', 'remote_services'], services)
    out = doc.toString()
  }
  await writeFileAtomic(file, out, 0o600)
}

/** The node's LevelDB datastore, with the reads at once that the pin store makes of its records. */
export class RepoDatastore extends LevelDatastore implements SyncReadDatastore {
  getSync: SyncReadDatastore['getSync'] = key => this.db.getSync(key.toString())
}

/** Opens (creating if needed) the repo; `secret` is cluster.secret, as for `initRepo`. */
export async function openRepo (path: string, options: InitRepoOptions = {}): Promise<Repo> {
  const { privateKey, swarmKey } = await initRepo(path, options)
  const blockstore = new PackBlockstore(join(path, 'blocks'))
  // Opened here rather than by LevelDatastore, which drops the cause that tells a lock apart.
  const db = new Level<string, Uint8Array>(join(path, 'datastore'), { keyEncoding: 'utf8', valueEncoding: 'view' })
  try {
    await db.open({ createIfMissing: true })
  } catch (err: any) {
    const locked = causes(err).some(e => e.code === 'LEVEL_LOCKED')
    throw new RepoError(locked ? `repo ${path} is in use by another daemon` : `cannot open the datastore in ${path}: ${err.message}`)
  }
  const datastore = new RepoDatastore(db)
  await datastore.open()
  await blockstore.open()
  const apiFile = join(path, API_FILE)
  return {
    path,
    privateKey,
    identity: privateKeyToProtobuf(privateKey),
    blockstore,
    datastore,
    swarmKey,
    setApiAddress: async (url) => { await writeFileAtomic(apiFile, `${url}\n`) },
    close: async () => {
      await rm(apiFile, { force: true })
      await blockstore.close()
      await datastore.close()
    }
  }
}

function causes (err: any): any[] {
  const chain = []
  for (let e = err; e != null && chain.length < 10; e = e.cause) chain.push(e)
  return chain
}

/** Total size of the block files, for the blockstore gauge. */
export async function repoBlockBytes (blocksDir: string): Promise<number> {
  let total = 0
  const walk = async (dir: string): Promise<void> => {
    const entries = await opendir(dir).catch(() => undefined)
    if (entries == null) return
    for await (const entry of entries) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) await walk(path)
      else if (entry.isFile()) total += (await stat(path).catch(() => ({ size: 0 }))).size
    }
  }
  await walk(blocksDir)
  return total
}
