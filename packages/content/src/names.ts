import { ipns as createIPNS, ipnsSelector, ipnsValidator, multihashToIPNSRoutingKey, IPNSEntry } from '@helia/ipns'
import first from 'it-first'
import { base36 } from 'multiformats/bases/base36'
import { CID } from 'multiformats/cid'
import { parsePeerId } from '@node-daemon/swarm'
import { InvalidParameterError, KeyExistsError, NotFoundError } from './errors.ts'
import { MAX_CID_LENGTH, parsePath } from './paths.ts'
import type { IPNS } from '@helia/ipns'
import type { Helia, Keychain, PrivateKey, PublicKey } from '@helia/interface'
import type { AbortOptions, Logger } from '@libp2p/interface'
import type { MultihashDigest } from 'multiformats/hashes/interface'

export interface KeyEntry {
  name: string
  /** The IPNS name of the key: a base36 CIDv1 with the libp2p-key codec, as Kubo prints it. */
  id: string
}

export interface PublishOptions extends AbortOptions {
  key?: string
  /** Record lifetime in ms; Kubo's default is 48h. */
  lifetime?: number
  /** Cache TTL in ms. */
  ttl?: number
}

export interface ResolveOptions extends AbortOptions {
  recursive?: boolean
  nocache?: boolean
}

export type NameComponents = Pick<Helia, 'datastore' | 'routing' | 'logger' | 'keychain' | 'events' | 'getCrypto'> & {
  /** With no peers, a lookup can only be answered from the local store: do not wait on the network. */
  hasPeers(): boolean
}

const MAX_RECURSION = 32
/** How long the DHT may take to store a record after the local publish returned. */
const ROUTING_PUT_TIMEOUT_MS = 60_000
/** How long a lookup may search the network when the caller sets no deadline. */
const RESOLVE_TIMEOUT_MS = 30_000

export interface DhtRecords {
  validators: Record<string, (key: Uint8Array, record: Uint8Array, options?: AbortOptions) => Promise<void>>
  selectors: Record<string, (key: Uint8Array, records: Uint8Array[]) => number>
}

/** What the DHT needs to accept and choose IPNS records; the keychain loads the signers' public keys. */
export function ipnsDhtRecords (keychain: Keychain): DhtRecords {
  return {
    validators: { ipns: async (key, record, options) => { await ipnsValidator(key, record, keychain, options) } },
    selectors: { ipns: (key, records) => ipnsSelector(key, records.map(r => IPNSEntry.decode(r))) }
  }
}

function ipnsName (publicKey: PublicKey): string {
  return publicKey.toCID().toString(base36)
}

/** An IPNS name is a base36 or base32 libp2p-key CID, or a peer id. */
function parseName (name: string): MultihashDigest {
  const bare = name.replace(/^\/ipns\//, '').split('/')[0]
  try {
    if (bare.length > MAX_CID_LENGTH) throw new InvalidParameterError('longer than any name')
    if (bare.startsWith('k')) return CID.parse(bare, base36).multihash
    if (bare.startsWith('b')) return CID.parse(bare).multihash
    return parsePeerId(bare).toMultihash()
  } catch {
    throw new InvalidParameterError(`invalid IPNS name ${JSON.stringify(name)}`)
  }
}

function toValuePath (value: string): string {
  if (value.startsWith('/ipns/')) return value
  const { cid, rest } = parsePath(value)
  return ['/ipfs', cid.toString(), ...rest].join('/')
}

/** IPNS records and the named keys that sign them; `self` is the node's identity. */
export class Names {
  private readonly components: NameComponents
  private readonly ipns: IPNS
  private readonly log: Logger

  constructor (components: NameComponents) {
    this.components = components
    this.ipns = createIPNS(components)
    this.log = components.logger.forComponent('node-daemon:content:names')
  }

  /** Makes the node's identity the `self` key, as Kubo does. */
  async setSelfKey (protobuf: Uint8Array, options: AbortOptions = {}): Promise<void> {
    const key = await (await this.components.getCrypto('Ed25519')).privateKeyFromProtobuf(protobuf)
    const existing = await this.components.keychain.exportKey('self', options).catch(() => undefined)
    if (existing?.publicKey.toCID().equals(key.publicKey.toCID()) === true) return
    if (existing != null) await this.components.keychain.removeKey('self', options)
    await this.components.keychain.importKey('self', key, options)
  }

  private async exportKey (name: string, options: AbortOptions): Promise<PrivateKey> {
    checkKeyName(name)
    try {
      return await this.components.keychain.exportKey(name, options)
    } catch {
      throw new NotFoundError(`no key named ${JSON.stringify(name)}`)
    }
  }

  async publish (value: string, options: PublishOptions = {}): Promise<{ name: string, value: string }> {
    const keyName = options.key ?? 'self'
    const key = await this.exportKey(keyName, options)
    const path = toValuePath(value)
    const result = await this.ipns.publish(keyName, path, { lifetime: options.lifetime, ttl: options.ttl, offline: true, signal: options.signal })
    // The record is valid and resolvable here now; spreading it on the DHT is best effort.
    const routingKey = multihashToIPNSRoutingKey(key.publicKey.toMultihash())
    this.components.routing.put(routingKey, IPNSEntry.encode(result.record), { signal: AbortSignal.timeout(ROUTING_PUT_TIMEOUT_MS) })
      .catch((err: Error) => { this.log('could not put IPNS record for %s on the DHT: %s', keyName, err.message) })
    return { name: ipnsName(key.publicKey), value: path }
  }

  async resolve (name: string, options: ResolveOptions = {}): Promise<string> {
    let current = name.startsWith('/ipns/') ? name : `/ipns/${name}`
    for (let depth = 0; depth < MAX_RECURSION; depth++) {
      const rest = current.split('/').slice(3).join('/')
      let value: string | undefined
      try {
        const signal = AbortSignal.any([options.signal ?? new AbortController().signal, AbortSignal.timeout(RESOLVE_TIMEOUT_MS)])
        // Offline the local store is the only source, which nocache would skip.
        const offline = !this.components.hasPeers()
        value = (await first(this.ipns.resolve(parseName(current), { nocache: options.nocache === true && !offline, offline, signal })))?.value
      } catch (err: any) {
        if (err instanceof InvalidParameterError) throw err
        throw new NotFoundError(`could not resolve name ${current}: ${err.message}`)
      }
      if (value == null) throw new NotFoundError(`could not resolve name ${current}`)
      const resolved = rest === '' ? value : `${value.replace(/\/$/, '')}/${rest}`
      if (!resolved.startsWith('/ipns/') || options.recursive === false) return resolved
      current = resolved
    }
    throw new NotFoundError(`name ${name} did not resolve within ${MAX_RECURSION} steps`)
  }

  async generateKey (name: string, options: AbortOptions = {}): Promise<KeyEntry> {
    if (name === 'self') throw new InvalidParameterError('a key named self exists: it is the node\'s own')
    checkKeyName(name)
    if (await this.components.keychain.exportKey(name, options).then(() => true, () => false)) {
      throw new KeyExistsError(`key with name ${JSON.stringify(name)} already exists`)
    }
    const key = await this.components.keychain.generateKey(name, { ...options, type: 'Ed25519' })
    return { name, id: ipnsName(key.publicKey) }
  }

  async listKeys (options: AbortOptions = {}): Promise<KeyEntry[]> {
    const keys: KeyEntry[] = []
    for await (const info of this.components.keychain.listKeys(options)) {
      const key = await this.exportKey(info.name, options)
      keys.push({ name: info.name, id: ipnsName(key.publicKey) })
    }
    return keys.sort((a, b) => a.name === 'self' ? -1 : b.name === 'self' ? 1 : a.name.localeCompare(b.name))
  }

  async removeKey (name: string, options: AbortOptions = {}): Promise<KeyEntry> {
    if (name === 'self') throw new InvalidParameterError('the self key cannot be removed')
    const key = await this.exportKey(name, options)
    await this.components.keychain.removeKey(name, options)
    return { name, id: ipnsName(key.publicKey) }
  }
}

/**
 * The keychain stores a key under its name as a file name: names it would
 * change (sanitize-filename's rules) are refused here with a message, where
 * the keychain would throw a bare "Invalid key name".
 */
function checkKeyName (name: string): void {
  // eslint-disable-next-line no-control-regex -- control characters are what it refuses
  const unsafe = /[/?<>\\:*|"\u0000-\u001f\u0080-\u009f]/
  const bad = name === '' || name !== name.trim() || Buffer.byteLength(name) > 255 || unsafe.test(name) ||
    /^\.+$/.test(name) || /[. ]$/.test(name) || /^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$/i.test(name)
  if (bad) throw new InvalidParameterError(`invalid key name ${JSON.stringify(name.slice(0, 64))}: 1 to 255 bytes, no control characters, none of / ? < > \\ : * | ", not ending in a dot or space`)
}
