/**
 * One member of the Raft bench's cluster, in a process of its own:
 * libp2p on 127.0.0.1 with the daemon's own connection stack (a private
 * network's key, noise on libsodium, yamux), the libp2p transport, a
 * durable log in the directory given as its argument, and a RaftNode at the
 * default timeouts. Started and driven by bench/lib/raft-cluster.ts over the
 * IPC channel; exits when the channel closes, so that it never outlives the
 * bench.
 */
import { createHash } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { createRaftNode, createRaftTransport, openRaftStorage } from '@node-daemon/raft-node'
import { formatSwarmKey, swarmOptions } from '@node-daemon/swarm'
import { createLibp2p } from 'libp2p'
import { closedLoop, openLoop, proposeUntilCommitted } from './raft-load.ts'
import type { MemberCommands, MemberMessage, MemberRequest } from './raft-cluster.ts'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import type { RaftNode, StateMachine } from '@node-daemon/raft-node'

/** Counts applied commands: the benchmark measures replication, not the state machine. */
class CountingMachine implements StateMachine {
  applied = 0
  apply (): unknown {
    return ++this.applied
  }

  snapshot (): Uint8Array {
    return new TextEncoder().encode(String(this.applied))
  }

  restore (data: Uint8Array): void {
    this.applied = Number(new TextDecoder().decode(data))
  }
}

const [dir, port] = process.argv.slice(2)
const send = process.send?.bind(process)
if (dir == null || port == null || send == null) throw new Error('usage: started by bench/lib/raft-cluster.ts, with an IPC channel, as raft-member.ts <log dir> <tcp port, 0 for any>')
const reply = (m: MemberMessage): void => { send(m) }
// The bench died or let go of this member: so does the member.
process.on('disconnect', () => process.exit(1))

/** The member's key lives beside its log, so that a member restarted after a kill is the same peer. */
async function peerKey (): Promise<PrivateKey> {
  const file = join(dir, 'peer.key')
  try {
    return privateKeyFromProtobuf(await readFile(file))
  } catch (err: any) {
    if (err.code !== 'ENOENT') throw err
  }
  const key = await generateKeyPair('Ed25519')
  await writeFile(file, privateKeyToProtobuf(key))
  return key
}

/**
 * A daemon's connection stack, as swarmOptions builds it for a cluster behind
 * a swarm key (what `node-daemon init` makes): a member's Raft pays for the
 * same framing and ciphers as in a daemon. Its services (DHT, gossipsub) are
 * left out: they carry none of Raft's traffic.
 */
async function startSwarm (privateKey: PrivateKey, tcpPort: number): Promise<Libp2p> {
  const swarmKey = formatSwarmKey(createHash('sha256').update('node-daemon raft bench').digest())
  const { addresses, transports, connectionEncrypters, streamMuxers, connectionProtector } = swarmOptions({ privateKey, host: '127.0.0.1', port: tcpPort, swarmKey })
  return createLibp2p({ privateKey, addresses, transports, connectionEncrypters, streamMuxers, connectionProtector })
}

const libp2p = await startSwarm(await peerKey(), Number(port))
let node: RaftNode | undefined
let profiler: Session | undefined

function started (): RaftNode {
  if (node == null) throw new Error('not joined yet')
  return node
}

const handlers: { [K in keyof MemberCommands]: (params: MemberCommands[K]['params']) => Promise<MemberCommands[K]['result']> } = {
  async join ({ peers }) {
    if (node != null) throw new Error('joined already')
    const self = libp2p.peerId.toString()
    for (const p of peers) {
      if (p.id !== self) await libp2p.peerStore.merge(peerIdFromString(p.id), { multiaddrs: p.addrs.map(a => multiaddr(a)) })
    }
    const ids = peers.map(p => p.id)
    const confState = { voters: ids, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false }
    const transport = createRaftTransport({ libp2p }, { isMember: id => ids.includes(id) })
    await transport.start()
    const storage = await openRaftStorage(dir, { confState })
    // The driver's defaults: tickMs 100, electionTick 10.
    node = createRaftNode({ transport, storage }, { id: self, stateMachine: new CountingMachine() })
    await node.start()
    return null
  },
  async status () {
    return { leader: node?.leaderId ?? '' }
  },
  async closed ({ concurrency, seconds, bytes }) {
    const n = started()
    const command = new Uint8Array(bytes).fill(7)
    return closedLoop(async () => n.propose(command), concurrency, seconds)
  },
  async open ({ perSecond, seconds, bytes }) {
    const n = started()
    const command = new Uint8Array(bytes).fill(7)
    return openLoop(async () => n.propose(command), perSecond, seconds)
  },
  async commit ({ retryMs, deadlineMs }) {
    const n = started()
    await proposeUntilCommitted(n, new Uint8Array(16), retryMs, deadlineMs)
    return { leader: n.leaderId }
  },
  // Started and stopped on command rather than with --cpu-prof, whose profile a SIGKILLed leader would never write.
  async profile ({ file }) {
    if (file == null) {
      profiler = new Session()
      profiler.connect()
      await profiler.post('Profiler.enable')
      await profiler.post('Profiler.start')
      return null
    }
    if (profiler == null) throw new Error('no profile was started')
    const { profile } = await profiler.post('Profiler.stop')
    profiler.disconnect()
    profiler = undefined
    await writeFile(file, JSON.stringify(profile))
    return null
  }
}

process.on('message', (req: MemberRequest) => {
  (handlers[req.cmd] as (params: unknown) => Promise<unknown>)(req.params).then(
    value => { reply({ id: req.id, ok: true, value }) },
    (err: any) => { reply({ id: req.id, ok: false, error: `${req.cmd} failed: ${err?.stack ?? String(err)}` }) }
  )
})

reply({ ready: { id: libp2p.peerId.toString(), addrs: libp2p.getMultiaddrs().map(a => a.toString()) } })
