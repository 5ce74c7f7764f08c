/**
 * The peers a transfer between daemons is measured against, each end its own
 * process as the daemons are: a bare libp2p stream built from the daemon's own
 * swarm options (pnet + noise + yamux, and its services), and plain TCP;
 * and, to tell the daemon's own costs from its channel's, the sealed channel
 * its block streams use, alone.
 *
 *   node bench/lib/stream-peer.ts serve <tcp|libp2p> <bytes>        prints {"addr"} and serves each fetch <bytes>
 *   node bench/lib/stream-peer.ts fetch <tcp|libp2p> <addr> <bytes> prints {"seconds", "cores"} of one fetch
 *
 * Both ends of a libp2p run take the private-network key from STREAM_PEER_PSK
 * (64 hex digits). The server sends 256 KiB writes, the size of a block.
 */
import { spawn } from 'node:child_process'
import { randomBytes, randomFillSync } from 'node:crypto'
import { once } from 'node:events'
import { createServer, connect } from 'node:net'
import { fileURLToPath } from 'node:url'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { defaultLogger } from '@libp2p/logger'
import { dialSealed, formatSwarmKey, SealedListener, swarmOptions } from '@node-daemon/swarm'
import { createLibp2p } from 'libp2p'
import { cpuSecondsOf, nodeBinary } from './daemon.ts'
import type { ChildProcessWithoutNullStreams } from 'node:child_process'
import type { Socket } from 'node:net'

export const STREAM_PEER_KINDS = ['tcp', 'libp2p', 'sealed'] as const
export type StreamPeerKind = typeof STREAM_PEER_KINDS[number]

const PROTOCOL = '/node-daemon-bench/stream/1.0.0'
const log = defaultLogger().forComponent('bench:stream-peer')
const CHUNK = 262_144

/** One random chunk, sent over and over: the peers measure moving bytes, not making them. */
const chunk = randomFillSync(Buffer.allocUnsafe(CHUNK))

async function swarm (): Promise<Awaited<ReturnType<typeof createLibp2p>>> {
  const psk = process.env.STREAM_PEER_PSK
  if (psk == null || !/^[0-9a-f]{64}$/i.test(psk)) throw new Error('STREAM_PEER_PSK: expected 64 hex digits')
  const options = swarmOptions({ privateKey: await generateKeyPair('Ed25519'), host: '127.0.0.1', port: 0, swarmKey: formatSwarmKey(Buffer.from(psk, 'hex')) })
  return createLibp2p(options)
}

async function writeAll (write: (data: Uint8Array) => boolean, drained: () => Promise<unknown>, bytes: number): Promise<void> {
  for (let sent = 0; sent < bytes;) {
    const n = Math.min(CHUNK, bytes - sent)
    sent += n
    if (!write(n === CHUNK ? chunk : chunk.subarray(0, n))) await drained()
  }
}

async function serve (kind: StreamPeerKind, bytes: number): Promise<void> {
  if (kind === 'tcp') {
    const server = createServer((socket: Socket) => {
      writeAll(data => socket.write(data), async () => once(socket, 'drain'), bytes).then(() => socket.end(), () => socket.destroy())
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const address = server.address()
    if (address == null || typeof address === 'string') throw new Error('no TCP address')
    process.stdout.write(`${JSON.stringify({ addr: `${address.address}:${address.port}` })}\n`)
    return
  }
  if (kind === 'sealed') {
    const listener = new SealedListener({
      host: '127.0.0.1',
      log,
      onStream: (stream) => {
        writeAll(data => stream.send(data), async () => stream.onDrain(), bytes).then(async () => stream.close(), (err: Error) => { stream.abort(err) })
      }
    })
    // One offer per fetch the bench may make; the offer would travel inside a libp2p connection.
    const offers = await Promise.all(Array.from({ length: 4 }, async () => listener.offer(undefined)))
    process.stdout.write(`${JSON.stringify({ addr: offers.map(o => `${o.port}:${Buffer.from(o.token).toString('hex')}:${Buffer.from(o.key).toString('hex')}`).join(',') })}\n`)
    return
  }
  const node = await swarm()
  await node.handle(PROTOCOL, async (stream) => {
    try {
      await writeAll(data => stream.send(data), async () => stream.onDrain(), bytes)
      await stream.close()
    } catch (err: any) {
      stream.abort(err)
    }
  })
  const addr = node.getMultiaddrs()[0]
  process.stdout.write(`${JSON.stringify({ addr: addr.toString() })}\n`)
}

/** Seconds of one fetch, and the CPU cores the fetching process used meanwhile. */
async function fetchOnce (kind: StreamPeerKind, addr: string, bytes: number): Promise<{ seconds: number, cores: number }> {
  let got = 0
  let cpu0 = process.cpuUsage()
  const result = (t0: number): { seconds: number, cores: number } => {
    const seconds = (performance.now() - t0) / 1000
    if (got !== bytes) throw new Error(`got ${got} bytes, expected ${bytes}`)
    const cpu = process.cpuUsage(cpu0)
    return { seconds, cores: (cpu.user + cpu.system) / 1e6 / seconds }
  }
  if (kind === 'tcp') {
    const [host, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))]
    const t0 = performance.now()
    const socket = connect(port, host)
    for await (const data of socket as AsyncIterable<Buffer>) got += data.byteLength
    return result(t0)
  }
  if (kind === 'sealed') {
    const [port, token, key] = addr.split(',')[0].split(':')
    const t0 = performance.now()
    const stream = await dialSealed('127.0.0.1', { port: Number(port), token: new Uint8Array(Buffer.from(token, 'hex')), key: new Uint8Array(Buffer.from(key, 'hex')) }, log)
    for await (const data of stream) got += data.byteLength
    return result(t0)
  }
  const node = await swarm()
  try {
    // The connection (and its handshakes) is made before the clock starts, as the daemons' is by swarm connect.
    const connection = await node.dial(multiaddr(addr))
    cpu0 = process.cpuUsage()
    const t0 = performance.now()
    const stream = await connection.newStream(PROTOCOL)
    for await (const data of stream) got += data.byteLength
    return result(t0)
  } finally {
    await node.stop()
  }
}

/** The first line a child prints, parsed as JSON; fails with its output if it exits or `signal` aborts first. */
async function firstLine<T> (child: ChildProcessWithoutNullStreams, signal: AbortSignal): Promise<T> {
  let out = ''
  let err = ''
  child.stderr.on('data', (data: Buffer) => { err += data.toString('utf8') })
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => { reject(signal.reason) }
    signal.addEventListener('abort', onAbort, { once: true })
    child.stdout.on('data', (data: Buffer) => {
      out += data.toString('utf8')
      const end = out.indexOf('\n')
      if (end < 0) return
      signal.removeEventListener('abort', onAbort)
      resolve(JSON.parse(out.slice(0, end)) as T)
    })
    child.once('exit', (code) => {
      signal.removeEventListener('abort', onAbort)
      reject(new Error(`stream peer exited with ${code}: ${err.slice(-2000)}`))
    })
  })
}

/**
 * One transfer of `bytes` between two peer processes of `kind`: the seconds
 * the receiver took, and the CPU cores each end used meanwhile.
 */
export async function measureStreamPeer (kind: StreamPeerKind, bytes: number, signal: AbortSignal): Promise<{ seconds: number, senderCores: number, receiverCores: number }> {
  const script = fileURLToPath(import.meta.url)
  const env = { ...process.env, STREAM_PEER_PSK: randomBytes(32).toString('hex') }
  const server = spawn(nodeBinary(), [script, 'serve', kind, String(bytes)], { env, stdio: 'pipe' })
  try {
    const { addr } = await firstLine<{ addr: string }>(server, signal)
    const client = spawn(nodeBinary(), [script, 'fetch', kind, addr, String(bytes)], { env, stdio: 'pipe' })
    try {
      const serverCpu0 = await cpuSecondsOf(server.pid ?? 0)
      const t0 = performance.now()
      const { seconds, cores } = await firstLine<{ seconds: number, cores: number }>(client, signal)
      // Over the fetching process's whole life (its connection and handshakes too): an upper bound.
      const senderCores = (await cpuSecondsOf(server.pid ?? 0) - serverCpu0) / ((performance.now() - t0) / 1000)
      return { seconds, senderCores, receiverCores: cores }
    } finally {
      client.kill()
    }
  } finally {
    server.kill()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [mode, kind, ...rest] = process.argv.slice(2)
  if (!(STREAM_PEER_KINDS as readonly string[]).includes(kind)) throw new Error(`kind: one of ${STREAM_PEER_KINDS.join(', ')}`)
  if (mode === 'serve') {
    await serve(kind as StreamPeerKind, Number(rest[0]))
    // Serves until the bench closes stdin.
    process.stdin.resume()
    process.stdin.on('end', () => { process.exit(0) })
  } else if (mode === 'fetch') {
    process.stdout.write(`${JSON.stringify(await fetchOnce(kind as StreamPeerKind, rest[0], Number(rest[1])))}\n`)
    process.exit(0)
  } else {
    throw new Error('mode: serve or fetch')
  }
}
