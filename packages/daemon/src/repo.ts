import { mkdir, open, opendir, readFile, rename, rm, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { LevelDatastore } from 'datastore-level'
import { Level } from 'level'
import { stringify as toYaml } from 'yaml'
import { FlatfsBlockstore } from './blockstore.ts'
import { CONFIG_FILE } from './config.ts'
import { RepoError } from './errors.ts'
import type { PrivateKey } from '@libp2p/interface'

/**
 * The on-disk state of a node:
 *   identity.key   the Ed25519 key behind the peer id (libp2p protobuf, mode 0600)
 *   config.yaml    optional settings
 *   blocks/        one file per block in Kubo's flatfs layout, written to a temp file and renamed
 *   datastore/     LevelDB: pins, keychain, IPNS records, peer store
 *   api            the URL of the running daemon's HTTP API, for the CLI
 * Every file is written atomically, so a kill -9 leaves either the old or the new state.
 */
export const REPO_VERSION = '1'

export interface Repo {
  path: string
  privateKey: PrivateKey
  /** The identity in libp2p's protobuf encoding. */
  identity: Uint8Array
  blockstore: FlatfsBlockstore
  datastore: LevelDatastore
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

/** Creates the repo and its identity if missing; safe to run again on an existing repo. */
export async function initRepo (path: string): Promise<{ privateKey: PrivateKey, created: boolean }> {
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
    try {
      return { privateKey: privateKeyFromProtobuf(existing), created: false }
    } catch (err: any) {
      throw new RepoError(`${keyFile} is not a libp2p private key: ${err.message}`)
    }
  }
  const privateKey = await generateKeyPair('Ed25519')
  await writeFileAtomic(keyFile, privateKeyToProtobuf(privateKey), 0o600)
  if (version == null) await writeFileAtomic(versionFile, `${REPO_VERSION}\n`)
  return { privateKey, created: true }
}

/** Writes a commented default config.yaml, unless one exists. */
export async function writeDefaultConfig (path: string, settings: object): Promise<void> {
  const file = join(path, CONFIG_FILE)
  if (await readFile(file).then(() => true, () => false)) return
  await writeFileAtomic(file, `# node-daemon settings; flags and NODE_DAEMON_* env vars override them.\n${toYaml(settings)}`)
}

export async function openRepo (path: string): Promise<Repo> {
  const { privateKey } = await initRepo(path)
  const blockstore = new FlatfsBlockstore(join(path, 'blocks'))
  // Opened here rather than by LevelDatastore, which drops the cause that tells a lock apart.
  const db = new Level<string, Uint8Array>(join(path, 'datastore'), { keyEncoding: 'utf8', valueEncoding: 'view' })
  try {
    await db.open({ createIfMissing: true })
  } catch (err: any) {
    const locked = causes(err).some(e => e.code === 'LEVEL_LOCKED')
    throw new RepoError(locked ? `repo ${path} is in use by another daemon` : `cannot open the datastore in ${path}: ${err.message}`)
  }
  const datastore = new LevelDatastore(db)
  await datastore.open()
  await blockstore.open()
  await blockstore.sweep()
  const apiFile = join(path, 'api')
  return {
    path,
    privateKey,
    identity: privateKeyToProtobuf(privateKey),
    blockstore,
    datastore,
    setApiAddress: async (url) => { await writeFileAtomic(apiFile, `${url}\n`) },
    close: async () => {
      await rm(apiFile, { force: true })
      await datastore.close()
    }
  }
}

function causes (err: any): any[] {
  const chain = []
  for (let e = err; e != null && chain.length < 10; e = e.cause) chain.push(e)
  return chain
}

/** The API URL a running daemon wrote into the repo, if any. */
export async function readApiAddress (path: string): Promise<string | undefined> {
  const url = await readFile(join(path, 'api'), 'utf8').catch(() => undefined)
  return url?.trim()
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
