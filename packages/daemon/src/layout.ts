/**
 * The on-disk state of a node:
 *   identity.key   the Ed25519 key behind the peer id (libp2p protobuf, mode 0600)
 *   swarm.key      the private-network key shared by the cluster, in Kubo's format (mode 0600)
 *   config.yaml    optional settings
 *   blocks/        one file per block in Kubo's flatfs layout, written to a temp file and renamed
 *   datastore/     LevelDB: pins, keychain, IPNS records, peer store
 *   api            the URL of the running daemon's HTTP API, for the CLI
 * Every file is written atomically, so a kill -9 leaves either the old or the new state.
 * repo.ts writes them; the names, and the API address a client reads, are
 * here, with only light imports, for the command line (see settings.ts).
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'

export const REPO_VERSION = '1'

export const SWARM_KEY_FILE = 'swarm.key'
export const API_FILE = 'api'

/** The API URL a running daemon wrote into the repo, if any. */
export async function readApiAddress (path: string): Promise<string | undefined> {
  const url = await readFile(join(path, API_FILE), 'utf8').catch(() => undefined)
  return url?.trim()
}
