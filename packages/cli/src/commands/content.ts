/**
 * Kubo's verbs: thin clients of the daemon's /api/v0 routes that print what
 * `ipfs` prints, or with --json the API's JSON (a line per item for the
 * routes that stream).
 */
import { constants } from 'node:fs'
import { lstat, mkdir, open, readFile } from 'node:fs/promises'
import { dirname, resolve, sep } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { readTar } from '@node-daemon/api/tar'
import { call, ndjson } from '../client.ts'
import { apiOf, clientCommand, print, progressBar } from '../command.ts'
import { listUpload, multipartBody } from '../upload.ts'
import type { ClientOptions } from '../command.ts'
import type { Command } from 'commander'

/** A Kubo route's JSON answer. */
async function kubo<T = any> (opts: ClientOptions, path: string, params: Record<string, string | string[]> = {}, init: RequestInit = {}): Promise<T> {
  return await (await call(await apiOf(opts), path, params, init)).json() as T
}

/** Writes the bytes a Kubo route answers to stdout, as they come. */
async function toStdout (opts: ClientOptions, path: string, params: Record<string, string>): Promise<void> {
  const res = await call(await apiOf(opts), path, params)
  await pipeline(Readable.fromWeb(res.body as any), process.stdout)
}

/**
 * The lines of a streamed answer: with --json each as the API sent it, else
 * what `human` makes of it. Kubo's error line ({Message, Type: "error"})
 * ends the command with its message.
 */
async function streamLines<T extends object> (opts: ClientOptions, res: Response, human: (line: T) => string | undefined): Promise<void> {
  for await (const line of ndjson<T & { Message?: string, Type?: string }>(res)) {
    if (line.Type === 'error' && line.Message != null) throw new Error(line.Message)
    const text = opts.json === true ? JSON.stringify(line) : human(line)
    if (text != null) process.stdout.write(`${text}\n`)
  }
}

/** The bytes of `file`, or of stdin without one, as Kubo's commands read their data. */
async function input (file?: string): Promise<Uint8Array> {
  if (file != null) return readFile(file)
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/** A multipart body of one part, as Kubo's routes that take data want it. */
function onePart (bytes: Uint8Array): RequestInit {
  const form = new FormData()
  form.append('file', new Blob([bytes as BlobPart]), 'data')
  return { body: form }
}

/** Kubo's RPC names pubsub topics in multibase base64url. */
const topicArg = (topic: string): string => `u${Buffer.from(topic).toString('base64url')}`

async function add (paths: string[], opts: ClientOptions): Promise<void> {
  const api = await apiOf(opts)
  const entries = (await Promise.all(paths.map(async p => listUpload(p, opts.recursive === true)))).flat()
  const progress = progressBar('adding', entries.reduce((sum, e) => sum + e.size, 0), opts)
  const params: Record<string, string> = { pin: String(opts.pin !== false) }
  if (opts.cidVersion != null) params['cid-version'] = String(opts.cidVersion)
  if (opts.wrapWithDirectory === true) params['wrap-with-directory'] = 'true'
  if (opts.onlyHash === true) params['only-hash'] = 'true'
  const res = await call(api, 'add', params, { upload: multipartBody(entries, progress.add) })
  const results: Array<{ Hash: string, Name: string }> = []
  for await (const line of ndjson<{ Hash?: string, Name: string, Message?: string }>(res)) {
    if (line.Message != null) throw new Error(line.Message)
    if (line.Hash != null) results.push({ ...line, Hash: line.Hash })
  }
  progress.stop()
  const shown = opts.quiet === true ? results.slice(-1) : results
  for (const r of shown) {
    process.stdout.write(opts.json === true ? `${JSON.stringify(r)}\n` : opts.quiet === true ? `${r.Hash}\n` : `added ${r.Hash} ${r.Name}\n`)
  }
}

/**
 * Where an entry of the archive goes: under `root`, the archive's top entry,
 * by segments that may not climb out of it; and inside a directory this
 * command made or checked, so that a symbolic link already on disk is never
 * followed.
 */
function targetOf (root: string, top: string, path: string, dirs: Set<string>): string {
  const [first, ...rest] = path.split('/')
  if (first !== top || rest.some(s => s === '' || s === '.' || s === '..')) throw new Error(`the archive's entry ${JSON.stringify(path)} leaves the directory it unpacks into; stopped there`)
  const target = resolve(root, ...rest)
  if (target !== root && (!target.startsWith(root + sep) || !dirs.has(dirname(target)))) throw new Error(`the archive's entry ${JSON.stringify(path)} is not inside a directory it holds; stopped there`)
  return target
}

/** Makes a directory, or takes one that is there, never a link to one. */
async function directory (path: string): Promise<void> {
  try {
    await mkdir(path)
  } catch (err: any) {
    if (err.code !== 'EEXIST' || !(await lstat(path)).isDirectory()) throw new Error(`${path} is there and is not a directory`)
  }
}

/** Writes a file of the archive; a link in its place is refused, not followed. */
async function writeEntry (path: string, content: AsyncIterable<Uint8Array>, onBytes: (n: number) => void): Promise<void> {
  const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o644)
  try {
    for await (const chunk of content) {
      await handle.write(chunk)
      onBytes(chunk.byteLength)
    }
  } finally {
    await handle.close()
  }
}

/** Kubo's `get`: the route's tar archive, unpacked to `-o` (default the path's last segment). */
async function get (path: string, opts: ClientOptions): Promise<void> {
  const res = await call(await apiOf(opts), 'get', { arg: path })
  const size = Number(res.headers.get('x-content-length') ?? 0)
  const root = resolve(opts.output ?? path.split('/').filter(s => s !== '').at(-1) ?? path)
  if (opts.json !== true) process.stdout.write(`Saving file(s) to ${root}\n`)
  const progress = progressBar('saving', size, opts)
  const dirs = new Set<string>()
  let top: string | undefined
  for await (const entry of readTar(Readable.fromWeb(res.body as any), { keepTop: true })) {
    top ??= entry.path
    const target = targetOf(root, top, entry.path, dirs)
    if (target === root) {
      if (dirs.size > 0 || entry.path !== top) throw new Error('the archive holds more than one top entry')
      await mkdir(dirname(root), { recursive: true })
    }
    if (entry.type === 'directory') {
      await directory(target)
      dirs.add(target)
    } else {
      await writeEntry(target, entry.content, progress.add)
    }
  }
  progress.stop()
  if (top == null) throw new Error('the daemon sent an empty archive')
  if (opts.json === true) print(opts, { Path: root, Size: size }, () => [])
}

function pinCommands (program: Command): void {
  const pin = program.command('pin').description('pin content so that GC keeps it')
  clientCommand(pin, 'add')
    .description('pin content (recursively, unless --no-recursive) and print what was pinned')
    .argument('<path...>', 'CIDs or /ipfs/ paths')
    .option('--no-recursive', 'pin the root block only')
    .action(async (paths: string[], opts) => {
      const body = await kubo<{ Pins: string[] }>(opts, 'pin/add', { arg: paths, recursive: String(opts.recursive) })
      print(opts, body, b => b.Pins.map(cid => `pinned ${cid} ${opts.recursive === false ? 'directly' : 'recursively'}`))
    })
  clientCommand(pin, 'rm')
    .description('remove pins')
    .argument('<path...>', 'CIDs or /ipfs/ paths')
    .option('--no-recursive', 'remove a direct pin')
    .action(async (paths: string[], opts) => {
      const body = await kubo<{ Pins: string[] }>(opts, 'pin/rm', { arg: paths, recursive: String(opts.recursive) })
      print(opts, body, b => b.Pins.map(cid => `unpinned ${cid}`))
    })
  clientCommand(pin, 'ls')
    .description('list pins: a CID and its type per line')
    .argument('[path...]', 'list these only')
    .option('--type <type>', 'all, recursive, direct or indirect', 'all')
    .option('-q, --quiet', 'CIDs only')
    .action(async (paths: string[], opts) => {
      const res = await call(await apiOf(opts), 'pin/ls', { arg: paths, type: opts.type, stream: 'true' })
      await streamLines<{ Cid: string, Type: string }>(opts, res, line => opts.quiet === true ? line.Cid : `${line.Cid} ${line.Type}`)
    })
}

function nameCommands (program: Command): void {
  const name = program.command('name').description('IPNS names')
  clientCommand(name, 'publish')
    .description('publish a path under an IPNS name (a key of this node)')
    .argument('<ipfs-path>', 'CID or /ipfs/ path')
    .option('-k, --key <name>', "the key to sign with: 'self' or one of `key list`", 'self')
    .option('--lifetime <duration>', 'how long the record is valid', '48h')
    .option('--ttl <duration>', 'how long resolvers may cache it')
    .action(async (path: string, opts) => {
      const params: Record<string, string> = { arg: path, key: opts.key, lifetime: opts.lifetime }
      if (opts.ttl != null) params.ttl = opts.ttl
      const body = await kubo<{ Name: string, Value: string }>(opts, 'name/publish', params)
      print(opts, body, b => `Published to ${b.Name}: ${b.Value}`)
    })
  clientCommand(name, 'resolve')
    .description("resolve an IPNS name (default this node's) to a path")
    .argument('[name]')
    .option('--nocache', 'ask the network, not the cache')
    .action(async (target: string | undefined, opts) => {
      const params: Record<string, string> = target == null ? {} : { arg: target }
      if (opts.nocache === true) params.nocache = 'true'
      const body = await kubo<{ Path: string }>(opts, 'name/resolve', params)
      print(opts, body, b => b.Path)
    })

  const key = program.command('key').description('the keys IPNS names are signed with')
  clientCommand(key, 'gen')
    .description('create a named Ed25519 key and print its id')
    .argument('<name>')
    .option('-t, --type <type>', 'key type: ed25519', 'ed25519')
    .action(async (keyName: string, opts) => {
      const body = await kubo<{ Id: string }>(opts, 'key/gen', { arg: keyName, type: opts.type })
      print(opts, body, b => b.Id)
    })
  clientCommand(key, 'list')
    .description('list the keys by name')
    .option('-l', 'with their ids')
    .action(async (opts) => {
      const body = await kubo<{ Keys: Array<{ Name: string, Id: string }> }>(opts, 'key/list')
      print(opts, body, b => b.Keys.map(k => opts.l === true ? `${k.Id} ${k.Name}` : k.Name))
    })
  clientCommand(key, 'rm')
    .description('remove keys')
    .argument('<name...>')
    .option('-l', 'with their ids')
    .action(async (names: string[], opts) => {
      const removed: Array<{ Name: string, Id: string }> = []
      for (const keyName of names) removed.push(...(await kubo<{ Keys: Array<{ Name: string, Id: string }> }>(opts, 'key/rm', { arg: keyName })).Keys)
      print(opts, { Keys: removed }, b => b.Keys.map(k => opts.l === true ? `${k.Id} ${k.Name}` : k.Name))
    })
}

function blockCommands (program: Command): void {
  const block = program.command('block').description('raw blocks')
  clientCommand(block, 'get')
    .description('write the raw bytes of a block to stdout')
    .argument('<cid>')
    .action(async (cid: string, opts) => {
      await toStdout(opts, 'block/get', { arg: cid })
    })
  clientCommand(block, 'put')
    .description('store a block from a file (or stdin) and print its CID')
    .argument('[file]', 'default stdin')
    .option('--cid-codec <codec>', 'raw, dag-pb, dag-cbor, dag-json...', 'raw')
    .option('--mhtype <hash>', 'multihash function', 'sha2-256')
    .option('--pin', 'pin the block')
    .action(async (file: string | undefined, opts) => {
      const params = { 'cid-codec': opts.cidCodec, mhtype: opts.mhtype, pin: String(opts.pin === true) }
      const body = await kubo<{ Key: string }>(opts, 'block/put', params, onePart(await input(file)))
      print(opts, body, b => b.Key)
    })
  clientCommand(block, 'stat')
    .description("a block's CID and size")
    .argument('<cid>')
    .action(async (cid: string, opts) => {
      const body = await kubo<{ Key: string, Size: number }>(opts, 'block/stat', { arg: cid })
      print(opts, body, b => [`Key: ${b.Key}`, `Size: ${b.Size}`])
    })
  clientCommand(block, 'rm')
    .description('remove blocks that nothing pins')
    .argument('<cid...>')
    .option('-f, --force', 'a block that is not here is no error')
    .option('-q, --quiet', 'print only the blocks that could not be removed')
    .action(async (cids: string[], opts) => {
      const res = await call(await apiOf(opts), 'block/rm', { arg: cids, force: String(opts.force === true), quiet: String(opts.quiet === true) })
      let failed = 0
      await streamLines<{ Hash: string, Error?: string }>(opts, res, line => {
        if (line.Error == null) return `removed ${line.Hash}`
        failed++
        process.stderr.write(`cannot remove ${line.Hash}: ${line.Error}\n`)
        return undefined
      })
      if (failed > 0) throw new Error(`${failed} of ${cids.length} blocks were not removed`)
    })

  const dag = program.command('dag').description('IPLD nodes')
  clientCommand(dag, 'get')
    .description('write an IPLD node, or the value at a path inside it, to stdout')
    .argument('<ref>', 'CID with an optional path')
    .option('--output-codec <codec>', 'dag-json, dag-cbor, json, raw...', 'dag-json')
    .action(async (ref: string, opts) => {
      await toStdout(opts, 'dag/get', { arg: ref, 'output-codec': opts.outputCodec })
    })
  clientCommand(dag, 'put')
    .description('store an IPLD node from a file (or stdin) and print its CID')
    .argument('[file]', 'default stdin')
    .option('--store-codec <codec>', 'the codec it is stored in', 'dag-cbor')
    .option('--input-codec <codec>', 'the codec it is given in', 'dag-json')
    .option('--hash <hash>', 'multihash function', 'sha2-256')
    .option('--pin', 'pin the node')
    .action(async (file: string | undefined, opts) => {
      const params = { 'store-codec': opts.storeCodec, 'input-codec': opts.inputCodec, hash: opts.hash, pin: String(opts.pin === true) }
      const body = await kubo<{ Cid: { '/': string } }>(opts, 'dag/put', params, onePart(await input(file)))
      print(opts, body, b => b.Cid['/'])
    })
}

function networkCommands (program: Command): void {
  const swarm = program.command('swarm').description('the peers this node is connected to')
  clientCommand(swarm, 'peers')
    .description('connected peers, a multiaddr per line')
    .action(async (opts) => {
      const body = await kubo<{ Peers: Array<{ Addr: string, Peer: string }> }>(opts, 'swarm/peers')
      print(opts, body, b => b.Peers.map(p => `${p.Addr}/p2p/${p.Peer}`))
    })
  clientCommand(swarm, 'connect')
    .description('connect to peers')
    .argument('<multiaddr...>', 'addresses ending in /p2p/<peer id>')
    .action(async (addrs: string[], opts) => {
      const body = await kubo<{ Strings: string[] }>(opts, 'swarm/connect', { arg: addrs })
      print(opts, body, b => b.Strings)
    })

  const pubsub = program.command('pubsub').description('publish and subscribe to topics')
  clientCommand(pubsub, 'pub')
    .description('publish the bytes of a file (or stdin) to a topic')
    .argument('<topic>')
    .argument('[file]', 'default stdin')
    .action(async (topic: string, file: string | undefined, opts) => {
      const body = await kubo(opts, 'pubsub/pub', { arg: topicArg(topic) }, onePart(await input(file)))
      print(opts, body, () => [])
    })
  clientCommand(pubsub, 'sub')
    .description("write the messages of a topic to stdout as they come, until interrupted; with --json Kubo's message lines")
    .argument('<topic>')
    .action(async (topic: string, opts) => {
      const res = await call(await apiOf(opts), 'pubsub/sub', { arg: topicArg(topic) })
      for await (const msg of ndjson<{ data?: string, Message?: string, Type?: string }>(res)) {
        if (msg.Type === 'error' && msg.Message != null) throw new Error(msg.Message)
        if (opts.json === true) process.stdout.write(`${JSON.stringify(msg)}\n`)
        // Kubo writes the data alone, as sent.
        else if (msg.data != null) process.stdout.write(Buffer.from(msg.data.slice(1), 'base64url'))
      }
    })
  clientCommand(pubsub, 'ls')
    .description('the topics this node is subscribed to')
    .action(async (opts) => {
      const body = await kubo<{ topics: string[] }>(opts, 'pubsub/ls')
      print(opts, body, b => b.topics)
    })
}

/** Adds Kubo's verbs to the program, among them the `pin` group. */
export function contentCommands (program: Command): void {
  clientCommand(program, 'add')
    .description('add files or directories (-r) and print their CIDs')
    .argument('<path...>')
    .option('-r, --recursive', 'add directories recursively')
    .option('-w, --wrap-with-directory', 'wrap the files in a directory')
    .option('-q, --quiet', 'print only the root CID')
    .option('-n, --only-hash', 'compute CIDs without storing')
    .option('--cid-version <n>', 'CID version: 0 (default) or 1')
    .option('--no-pin', 'do not pin')
    .option('--no-progress', 'no progress bar')
    .action(add)

  clientCommand(program, 'cat')
    .description('write the bytes of a file to stdout')
    .argument('<path>', 'CID or /ipfs/ path')
    .action(async (path: string, opts) => {
      await toStdout(opts, 'cat', { arg: path })
    })

  clientCommand(program, 'get')
    .description('save a file or a directory to disk')
    .argument('<path>', 'CID or /ipfs/ path')
    .option('-o, --output <path>', 'where to save it (default: the last segment of the path)')
    .option('--no-progress', 'no progress bar')
    .action(get)

  clientCommand(program, 'ls')
    .description('list the links of directories: CID, size and name')
    .argument('<path...>', 'CIDs or /ipfs/ paths')
    .action(async (paths: string[], opts) => {
      const body = await kubo<{ Objects: Array<{ Hash: string, Links: Array<{ Name: string, Hash: string, Size: number, Type: number }> }> }>(opts, 'ls', { arg: paths })
      print(opts, body, b => b.Objects.flatMap((o, i) => [
        ...b.Objects.length > 1 ? [...i > 0 ? [''] : [], `${o.Hash}:`] : [],
        ...o.Links.map(l => l.Type === 1 ? `${l.Hash} - ${l.Name}/` : `${l.Hash} ${l.Size} ${l.Name}`)
      ]))
    })

  pinCommands(program)
  nameCommands(program)
  blockCommands(program)
  networkCommands(program)

  const repo = program.command('repo').description("the node's block store")
  clientCommand(repo, 'gc')
    .description('remove every block that nothing keeps, and print each')
    .option('-q, --quiet', 'print nothing')
    .action(async (opts) => {
      const res = await call(await apiOf(opts), 'repo/gc', { 'stream-errors': 'true' })
      await streamLines<{ Key?: { '/': string }, Error?: string }>(opts, res, line => {
        if (line.Error != null) process.stderr.write(`${line.Error}\n`)
        return line.Key == null || opts.quiet === true ? undefined : `removed ${line.Key['/']}`
      })
    })

  clientCommand(program, 'id')
    .description('the identity of this node, or of another peer, as JSON')
    .argument('[peer-id]')
    .action(async (peer: string | undefined, opts) => {
      const body = await kubo(opts, 'id', peer == null ? {} : { arg: peer })
      const { ID, PublicKey, Addresses, AgentVersion, ProtocolVersion, Protocols } = body
      // Kubo's fields alone: the rest are document 000's, which --json keeps.
      print(opts, body, () => JSON.stringify({ ID, PublicKey, Addresses, AgentVersion, ProtocolVersion, Protocols }, null, 2))
    })

  clientCommand(program, 'version')
    .description("the running daemon's version")
    .action(async (opts) => {
      const body = await kubo<{ Version: string }>(opts, 'version')
      print(opts, body, b => `node-daemon version ${b.Version}`)
    })
}
