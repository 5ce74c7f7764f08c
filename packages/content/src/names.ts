import { Resolver } from 'node:dns/promises'
import { ipns as createIPNS, ipnsSelector, ipnsValidator, multihashFromIPNSRoutingKey, multihashToIPNSRoutingKey, IPNSEntry } from '@helia/ipns'
import { decode as decodeCbor } from '@ipld/dag-cbor'
import first from 'it-first'
import { base36 } from 'multiformats/bases/base36'
import { CID } from 'multiformats/cid'
import { peerIdFromMultihash } from '@libp2p/peer-id'
import { parsePeerId } from '@node-daemon/swarm'
import { InvalidParameterError, KeyExistsError, NotFoundError } from './errors.ts'
import { decodeKey, encodeKey } from './key-formats.ts'
import { MAX_CID_LENGTH, parsePath } from './paths.ts'
import type { KeyFormat } from './key-formats.ts'
import type { IPNS, IPNSResolveResult, IPNSRouting } from '@helia/ipns'
import type { Helia, Keychain, PrivateKey, PublicKey } from '@helia/interface'
import type { AbortOptions, Logger } from '@libp2p/interface'
import type { MultihashDigest } from 'multiformats/hashes/interface'

export interface KeyEntry {
  name: string
  /** The IPNS name of the key: a base36 CIDv1 with the libp2p-key codec, as Kubo prints it. */
  id: string
}

export interface GenerateKeyOptions extends AbortOptions {
  /** Kubo's key types: ed25519 (the default) or rsa. */
  type?: string
  /** RSA modulus bits; Kubo's default is 2048. */
  size?: number
}

export interface RenamedKey {
  was: string
  now: string
  id: string
  /** A key named `now` was replaced. */
  overwrite: boolean
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
  /** DNS TXT lookups for DNSLink names; node:dns by default, a stub in tests. */
  resolveTxt?: (hostname: string, options: AbortOptions) => Promise<string[][]>
}

/** How long a DNSLink lookup may wait on DNS. */
const DNS_TIMEOUT_MS = 5_000

/** node:dns's TXT lookup, bounded in time and cancelled with the signal. */
async function systemResolveTxt (hostname: string, options: AbortOptions): Promise<string[][]> {
  const resolver = new Resolver({ timeout: DNS_TIMEOUT_MS, tries: 2 })
  const cancel = (): void => { resolver.cancel() }
  options.signal?.addEventListener('abort', cancel, { once: true })
  try {
    return await resolver.resolveTxt(hostname)
  } finally {
    options.signal?.removeEventListener('abort', cancel)
  }
}

/** A DNS name as DNSLink takes it: labels of letters, digits and hyphens, at least one dot. */
const DOMAIN = /^(?=.{1,253}$)([a-z0-9_]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$/i
/** DNS answers that say the name has no such record, as opposed to DNS not answering. */
const NO_RECORD = new Set(['ENOTFOUND', 'ENODATA', 'ENONAME', 'NXDOMAIN'])

/**
 * Helia signs an /ipfs/ value with its CID made v1; the path as published
 * rides in the record's signed extensible data under this field (the spec
 * keeps names starting with `_` for such use), so that every node resolves
 * it as published, a CIDv0 staying v0, as Kubo does.
 */
const PUBLISHED_FIELD = '_nodeDaemonPath'

/** The value Helia signs for a path: its CID as v1, as @helia/ipns normalizes it. */
/** The path as published, from a record's extensible data, when the record carries one. */
function publishedPath (record: IPNSEntry): string | undefined {
  try {
    const data = record.data == null ? undefined : decodeCbor<Record<string, unknown>>(record.data)
    const path = data?.[PUBLISHED_FIELD]
    return typeof path === 'string' ? path : undefined
  } catch {
    return undefined
  }
}

function asSigned (path: string): string {
  const [, ns, cid, ...rest] = path.split('/')
  return ns === 'ipfs' ? ['', ns, CID.parse(cid).toV1().toString(), ...rest].join('/') : path
}

const MAX_RECURSION = 32
/** Smaller RSA keys are refused as unsafe; making one of more than 4096 bits holds the request for tens of seconds (4096 takes about one). */
const MIN_RSA_BITS = 2048
const MAX_GENERATED_RSA_BITS = 4096
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

/** The DHT key of an /ipns/ routing key, the only key type the daemon's routing takes. */
function ipnsRoutingKey (key: string): Uint8Array {
  if (!key.startsWith('/ipns/')) throw new InvalidParameterError(`invalid key ${JSON.stringify(key.slice(0, 100))}: only /ipns/<name> keys are supported`)
  return multihashToIPNSRoutingKey(parseName(key))
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

  private async loadKey (name: string, options: AbortOptions): Promise<PrivateKey> {
    checkKeyName(name)
    try {
      return await this.components.keychain.exportKey(name, options)
    } catch {
      throw new NotFoundError(`no key named ${JSON.stringify(name)}`)
    }
  }

  async publish (value: string, options: PublishOptions = {}): Promise<{ name: string, value: string }> {
    const keyName = options.key ?? 'self'
    const key = await this.loadKey(keyName, options)
    const path = toValuePath(value)
    const data = asSigned(path) === path ? undefined : { [PUBLISHED_FIELD]: path }
    const result = await this.ipns.publish(keyName, path, { lifetime: options.lifetime, ttl: options.ttl, offline: true, data, signal: options.signal })
    // The record is valid and resolvable here now; spreading it on the DHT is best effort.
    const routingKey = multihashToIPNSRoutingKey(key.publicKey.toMultihash())
    this.components.routing.put(routingKey, IPNSEntry.encode(result.record), { signal: AbortSignal.timeout(ROUTING_PUT_TIMEOUT_MS) })
      .catch((err: Error) => { this.log('could not put IPNS record for %s on the DHT: %s', keyName, err.message) })
    return { name: ipnsName(key.publicKey), value: path }
  }

  async resolve (name: string, options: ResolveOptions = {}): Promise<string> {
    let current = name.startsWith('/ipns/') ? name : `/ipns/${name}`
    for (let depth = 0; depth < MAX_RECURSION; depth++) {
      const [, , label, ...segments] = current.split('/')
      const rest = segments.join('/')
      const value = DOMAIN.test(label) ? await this.resolveDnsLink(label, options) : await this.resolveRecord(current, options)
      const resolved = rest === '' ? value : `${value.replace(/\/$/, '')}/${rest}`
      if (!resolved.startsWith('/ipns/') || options.recursive === false) return resolved
      current = resolved
    }
    throw new NotFoundError(`name ${name} did not resolve within ${MAX_RECURSION} steps`)
  }

  /**
   * Kubo's routing/get of an /ipns/ key: the best record the routing has for
   * the name, as its protobuf bytes; with no peers, the record kept here.
   */
  async getRecord (key: string, options: AbortOptions = {}): Promise<Uint8Array> {
    const routingKey = ipnsRoutingKey(key)
    const signal = AbortSignal.any([options.signal ?? new AbortController().signal, AbortSignal.timeout(RESOLVE_TIMEOUT_MS)])
    try {
      // The DHT would wait for a peer; the local store is all a node alone has.
      if (!this.components.hasPeers()) {
        const local = await first(this.ipns.resolve(multihashFromIPNSRoutingKey(routingKey), { offline: true, signal }))
        if (local != null) return IPNSEntry.encode(local.record)
      } else {
        return await this.components.routing.get(routingKey, { ...options, signal })
      }
    } catch (err: any) {
      if (options.signal?.aborted === true) throw err
    }
    throw new NotFoundError(`routing: not found: ${key}`)
  }

  /**
   * Kubo's routing/put of an /ipns/ key: the record is checked against the name
   * (signature, key, validity), then stored here and sent to the DHT's closest peers.
   */
  async putRecord (key: string, record: Uint8Array, options: AbortOptions & { allowOffline?: boolean } = {}): Promise<string> {
    const routingKey = ipnsRoutingKey(key)
    if (options.allowOffline !== true && !this.components.hasPeers()) throw new InvalidParameterError("can't put while offline: pass allow-offline to override")
    try {
      await ipnsValidator(routingKey, record, this.components.keychain, options)
    } catch (err: any) {
      throw new InvalidParameterError(`invalid IPNS record for ${key}: ${err.message}`)
    }
    // Kept here first, where resolve finds it (kad-dht would otherwise hold the put until a peer came).
    await this.localRecords().put(routingKey, record, options)
    if (this.components.hasPeers()) await this.components.routing.put(routingKey, record, { ...options, signal: AbortSignal.any([options.signal ?? new AbortController().signal, AbortSignal.timeout(ROUTING_PUT_TIMEOUT_MS)]) })
    return peerIdFromMultihash(parseName(key)).toString()
  }

  /** @helia/ipns's local record store, among its routers. */
  private localRecords (): IPNSRouting {
    const local = this.ipns.routers.find(router => router.toString() === 'LocalStoreRouting()')
    if (local == null) throw new Error('@helia/ipns has no local store router: has it changed?')
    return local
  }

  /** The value of the IPNS record of a name, as it was published when it was published here. */
  private async resolveRecord (current: string, options: ResolveOptions): Promise<string> {
    const multihash = parseName(current)
    let found: IPNSResolveResult | undefined
    try {
      const signal = AbortSignal.any([options.signal ?? new AbortController().signal, AbortSignal.timeout(RESOLVE_TIMEOUT_MS)])
      // Offline the local store is the only source, which nocache would skip.
      const offline = !this.components.hasPeers()
      found = await first(this.ipns.resolve(multihash, { nocache: options.nocache === true && !offline, offline, signal }))
    } catch (err: any) {
      throw new NotFoundError(`could not resolve name ${current}: ${err.message}`)
    }
    if (found == null) throw new NotFoundError(`could not resolve name ${current}`)
    const published = publishedPath(found.record)
    return published != null && asSigned(published) === found.value ? published : found.value
  }

  /**
   * A DNSLink name: the `dnslink=` TXT record of `_dnslink.<domain>`, else of
   * the domain itself, as Kubo looks them up.
   */
  private async resolveDnsLink (domain: string, options: ResolveOptions): Promise<string> {
    const lookup = this.components.resolveTxt ?? systemResolveTxt
    let unreachable: Error | undefined
    for (const hostname of [`_dnslink.${domain}`, domain]) {
      let records: string[][]
      try {
        records = await lookup(hostname, options)
      } catch (err: any) {
        if (options.signal?.aborted === true) throw err
        if (!NO_RECORD.has(err.code)) unreachable = err
        continue
      }
      const link = records.map(chunks => chunks.join('')).find(text => text.startsWith('dnslink='))
      if (link != null) {
        const value = link.slice('dnslink='.length).trim()
        if (!/^\/(ipfs|ipns)\/[^/]+/.test(value)) throw new NotFoundError(`the DNSLink record of ${domain} holds no /ipfs/ or /ipns/ path: ${JSON.stringify(value.slice(0, 100))}`)
        return value
      }
    }
    if (unreachable != null) throw new NotFoundError(`could not resolve DNSLink name ${domain}: DNS did not answer (${unreachable.message})`)
    throw new NotFoundError(`could not resolve DNSLink name ${domain}: no dnslink= TXT record at _dnslink.${domain} or ${domain}`)
  }

  async generateKey (name: string, options: GenerateKeyOptions = {}): Promise<KeyEntry> {
    const type = options.type ?? 'ed25519'
    if (type !== 'ed25519' && type !== 'rsa') throw new InvalidParameterError(`unrecognized key type ${JSON.stringify(type)}; use ed25519 or rsa`)
    if (type === 'ed25519' && options.size != null) throw new InvalidParameterError('ed25519 keys have a fixed size; size is for rsa keys')
    const bits = options.size ?? MIN_RSA_BITS
    if (type === 'rsa' && (!Number.isInteger(bits) || bits < MIN_RSA_BITS || bits > MAX_GENERATED_RSA_BITS)) {
      throw new InvalidParameterError(`rsa keys made here are ${MIN_RSA_BITS} to ${MAX_GENERATED_RSA_BITS} bits, not ${bits}`)
    }
    await this.checkNewName(name, false, options)
    const key = await this.components.keychain.generateKey(name, { ...options, type: type === 'rsa' ? 'RSA' : 'Ed25519', bits })
    return { name, id: ipnsName(key.publicKey) }
  }

  /** Kubo's key import: a private key in one of its export formats, stored under a new name. */
  async importKey (name: string, bytes: Uint8Array, options: AbortOptions & { format?: KeyFormat, allowAnyKeyType?: boolean } = {}): Promise<KeyEntry> {
    await this.checkNewName(name, false, options)
    const key = await decodeKey(bytes, options.format ?? 'libp2p-protobuf-cleartext', this.components.getCrypto, options.allowAnyKeyType)
    await this.components.keychain.importKey(name, key, options)
    return { name, id: ipnsName(key.publicKey) }
  }

  /**
   * A named key in one of Kubo's export formats. The node's own `self` key is
   * not given out: it is the node's identity in the swarm and the cluster,
   * and Kubo too exports keys only offline, never over its API.
   */
  async exportKey (name: string, format: KeyFormat = 'libp2p-protobuf-cleartext', options: AbortOptions = {}): Promise<Uint8Array> {
    if (name === 'self') throw new InvalidParameterError('the self key is the node\'s identity and is not exported over the API')
    return encodeKey(await this.loadKey(name, options), format)
  }

  /** Kubo's key rename; with `force` an existing key of the new name is replaced. */
  async renameKey (was: string, now: string, options: AbortOptions & { force?: boolean } = {}): Promise<RenamedKey> {
    if (was === 'self') throw new InvalidParameterError('cannot rename key with name \'self\'')
    if (now === 'self') throw new InvalidParameterError('cannot overwrite key with name \'self\'')
    const key = await this.loadKey(was, options)
    const id = ipnsName(key.publicKey)
    if (was === now) return { was, now, id, overwrite: false }
    const overwrite = await this.checkNewName(now, options.force === true, options)
    if (overwrite) await this.components.keychain.removeKey(now, options)
    await this.components.keychain.renameKey(was, now, options)
    return { was, now, id, overwrite }
  }

  /** Checks that `name` may name a new key; true when a key of that name exists and `replace` allows replacing it. */
  private async checkNewName (name: string, replace: boolean, options: AbortOptions): Promise<boolean> {
    if (name === 'self') throw new InvalidParameterError('a key named self exists: it is the node\'s own')
    checkKeyName(name)
    const exists = await this.components.keychain.exportKey(name, options).then(() => true, () => false)
    if (exists && !replace) throw new KeyExistsError(`key with name ${JSON.stringify(name)} already exists`)
    return exists
  }

  async listKeys (options: AbortOptions = {}): Promise<KeyEntry[]> {
    const keys: KeyEntry[] = []
    for await (const info of this.components.keychain.listKeys(options)) {
      const key = await this.loadKey(info.name, options)
      keys.push({ name: info.name, id: ipnsName(key.publicKey) })
    }
    return keys.sort((a, b) => a.name === 'self' ? -1 : b.name === 'self' ? 1 : a.name.localeCompare(b.name))
  }

  async removeKey (name: string, options: AbortOptions = {}): Promise<KeyEntry> {
    if (name === 'self') throw new InvalidParameterError('the self key cannot be removed')
    const key = await this.loadKey(name, options)
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
