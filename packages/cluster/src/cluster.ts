/**
 * The cluster service of a node: joins (or founds) a cluster, runs Raft over
 * the replicated ClusterState, keeps membership healthy as leader, gossips
 * heartbeats, and pins what the state allocates here. Factory plus injected
 * components, with start()/stop() like the libp2p services it sits beside.
 */
import { randomBytes } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { TypedEventEmitter } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { Key } from 'interface-datastore'
import { createRaftNode, createRaftTransport, NotLeaderError, openRaftStorage, ProposalLostError, ProposalTimeoutError, ReadTimeoutError } from '@node-daemon/raft-node'
import { ConfChangeError } from '@node-daemon/raft'
import { checkCID, encodeCommand, encodeJoinContext } from './commands.ts'
import { ClusterProtocolError, CollectionNotFoundError, DocumentNotFoundError, InvalidClusterRequestError, JoinError, NodeNotFoundError, NoQuorumError, NotTrustedError, PinNotFoundError, JobNotFoundError, ModelNotFoundError } from './errors.ts'
import { encodeInvite, readInvite, signJoinToken, verifyJoinToken } from './join-token.ts'
import { GroupCommit } from './group-commit.ts'
import { MembershipManager } from './membership.ts'
import { PinTracker } from './pin-tracker.ts'
import type { PinTrackerComponents } from './pin-tracker.ts'
import { measureResources } from './resources.ts'
import { ClusterRpc } from './rpc.ts'
import type { Handler, ServiceMethod } from './rpc.ts'
import type { AbortOptions } from '@libp2p/interface'
import { checkDocumentName, ClusterState, documentKey, workedOn } from './state.ts'
import type { BatchOutcome } from './state.ts'
import { untrustedMay, untrustedMayPropose } from './trust.ts'
import { connect, parseSwarmKey } from '@node-daemon/swarm'
import type { Command, CommandBody, JoinContext, TrainingChange } from './commands.ts'
import type { MembershipView } from './membership.ts'
import type { CredentialStore } from '@node-daemon/access'
import type { Cluster, ClusterProblem, CreateCollectionInput, SetCollectionHeadInput, JoinFailure, ConsensusStatus, DiscoveryResult, HistoryQuery, JobQuery, JoinToken, JoinTokenOptions, NodeView, PeerPinStatus, PinAddOptions, PinStatus, PinStatusReport, PutDocumentInput, ReadOptions, RegisterModelInput, SubmitJobInput, UpdateModelOptions, WriteOptions } from './interface.ts'
import type { Allocation, ClusterEvents, CollectionRecord, Decision, DocumentRecord, JobRecord, ModelRecord, NodeRecord, PinRecord, Resources } from './types.ts'
import type { ComponentLogger, Logger, PeerInfo, PrivateKey } from '@libp2p/interface'
import type { Message } from '@libp2p/gossipsub'
import type { Swarm } from '@node-daemon/swarm'
import type { ConfChangeSingle, ConfState } from '@node-daemon/raft'
import type { RaftNode, RaftStorage, Libp2pRaftTransport } from '@node-daemon/raft-node'
import type { Datastore } from 'interface-datastore'

export const HEARTBEAT_TOPIC = '/node-daemon/cluster/heartbeat/1.0.0'

export interface ClusterComponents {
  libp2p: Swarm
  /** What the pin tracker pins with (its `notes` go into `datastore` below), and sizes. */
  content: PinTrackerComponents['content'] & {
    /** The bytes of a DAG from local blocks; undefined when its root is not here, failing when a block under it is not. */
    dagSize (path: string, options?: { signal?: AbortSignal }): Promise<number | undefined>
  }
  datastore: Pick<Datastore, 'get' | 'put' | 'delete' | 'query'>
  logger: ComponentLogger
  /** The node's peer key, which signs the join tokens it makes. */
  privateKey: PrivateKey
  /** The daemon's log, which an operator reads without DEBUG set: why joining fails goes there. */
  operatorLog?: { warn: (fields: object, message: string) => void, info: (fields: object, message: string) => void }
}

export interface ClusterInit {
  /** Where the Raft log and its snapshots live. */
  dir: string
  /** The repo directory, whose disk the node reports. */
  repoDir: string
  /** Which onnxruntime execution provider the node's runtime uses, as reported in its resources; default auto. */
  executionProvider?: 'auto' | 'cpu' | 'cuda'
  /** Members to join through; none founds a new cluster of one. */
  bootstrap: string[]
  /** Voters the cluster keeps (3 or 5). Default 3. */
  voters?: number
  tickMs?: number
  electionTick?: number
  heartbeatMs?: number
  nodeTimeoutMs?: number
  voterTimeoutMs?: number
  /** How often a node reports its resources through Raft. Default 60 s. */
  reportMs?: number
  /** Applied entries between Raft snapshots. Default 10,000. */
  snapshotEvery?: number
  /** This node's HTTP API, announced to the others. */
  apiUrl?: () => string | undefined
  /**
   * The swarm's private-network key, as a swarm.key file holds it; none for
   * an open swarm. Holding the key lets a node join without a join token,
   * and every member is trusted unless `trustedPeers` says otherwise. Join
   * tokens carry it, so that the invited node can connect at all.
   */
  swarmKey?: Uint8Array
  /**
   * IPFS Cluster's trusted peers: the members that may become voters and
   * propose admin commands (peer ids; `*` for every member). The founder, nodes
   * admitted with a voter token and voters are trusted besides. Default `*`
   * in a private network, else none.
   */
  trustedPeers?: string[]
  /**
   * The join token (`node-daemon cluster invite`) this node joins with: its
   * admission is presented to the members, needed where the swarm is open.
   * Its addresses and key are the daemon's to use: they are in `bootstrap`
   * and the swarm by now.
   */
  joinToken?: string
  /** The most of each resource this node's allocation may give, in percent; 100 each by default. */
  allocationLimits?: Partial<Allocation>
}

const NO_LIMITS: Allocation = { cpu: 100, memory: 100, gpu: 100, storage: 100 }

/** Join failures, most telling last: a member's refusal says more than a failed handshake, which says more than silence. */
const FAILURE_ORDER: Array<JoinFailure['kind']> = ['unreachable', 'failed', 'secret', 'refused']
/** How often a node that cannot join says so again in the daemon's log. */
const JOIN_WARN_MS = 5_000
/** Longest pause between rounds of asking to join. */
const JOIN_RETRY_MAX_MS = 5_000
/** Members and addresses of each that a join token names: enough to find one that answers, short enough to paste. */
const INVITE_MEMBERS = 5
const INVITE_ADDRS = 4
/** Discovered addresses a joining node asks besides its bootstrap peers: a LAN full of IPFS nodes does not make each round endless. */
const JOIN_CANDIDATES = 16

/** How long a join token admits nodes unless told otherwise, and at most. */
const TOKEN_EXPIRY_MS = 3_600_000
const MAX_TOKEN_EXPIRY_MS = 30 * 24 * 3_600_000

/** What a node keeps of the cluster it belongs to, next to its Raft log. */
interface Membership {
  /** The membership at index 0 that every node of this cluster starts from. */
  genesis: ConfState
  /** Set once this node applied its own removal: it stays out, even after a restart from a snapshot without it. */
  removed?: boolean
  /**
   * The members the member that admitted this node named, and those of them
   * it trusted: until this node's own state knows a peer, it goes by these,
   * or it would refuse the leader that is to bring it that state.
   */
  members?: string[]
  vouched?: string[]
}

/** What a node tells the others every heartbeat. */
interface Heartbeat {
  at: number
  applied: number
  pinQueue: number
  resources: Resources
}

export interface JoinResult {
  genesis: ConfState
  /** With whether the answering member trusts each. */
  members: Array<{ id: string, addrs: string[], trusted?: boolean }>
}

/**
 * A follower's answer to a node that said it follows referrals: ask the
 * leader. A follower's own proposal of the admission is forwarded, and the
 * leader drops a forwarded membership change while another is pending
 * without telling the follower, which then waits out its proposal timeout;
 * the leader's own proposal is refused at once and retried in a tick.
 */
export interface JoinReferral {
  leader: { id: string, addrs: string[] }
}

/** What this node keeps of its cluster, in the repo's datastore (written atomically). */
const MEMBERSHIP_KEY = new Key('/cluster/membership')
const RPC_TIMEOUT_MS = 30_000
/** How long a joining node gives the leader it was referred to before it asks the member that referred it to admit it after all. */
const REFERRAL_TIMEOUT_MS = 10_000
const STATUS_TIMEOUT_MS = 5_000
/** Connections past which discovered non-voting members are not dialled: gossipsub's D_hi, the most mesh peers it keeps per topic. */
const GOSSIP_NEIGHBOURS = 12

type Events = { [K in keyof ClusterEvents]: CustomEvent<ClusterEvents[K]> }

export class ClusterService extends TypedEventEmitter<Events> implements Cluster {
  readonly state: ClusterState
  private readonly components: ClusterComponents
  private readonly init: Required<Omit<ClusterInit, 'apiUrl' | 'joinToken' | 'trustedPeers' | 'swarmKey'>> & Pick<ClusterInit, 'apiUrl'>
  /** The private-network key as hex, which join tokens carry; none in an open swarm. */
  private readonly networkKey?: string
  /** The signed join token of the invite this node joins with. */
  private readonly admission?: string
  private joinFailure?: JoinFailure
  private lastJoinWarning = 0
  /** The configured trusted peers; `*` trusts every member. */
  private readonly trustedPeers: ReadonlySet<string>
  private readonly log: Logger
  private readonly rpc: ClusterRpc
  /** What services beside the cluster answer other members (see serve). */
  private readonly services = new Map<ServiceMethod, Handler>()
  private readonly tracker: PinTracker
  /** Pin requests made here, proposed together while earlier ones are in Raft. */
  private readonly pinRequests: GroupCommit
  private raft?: RaftNode
  private storage?: RaftStorage
  private transport?: Libp2pRaftTransport
  private membership?: Membership
  private running = false
  private readonly shutdown = new AbortController()
  private timers: Array<ReturnType<typeof setInterval>> = []
  /** Heartbeats heard, by peer id: the soft state of the other nodes. */
  readonly heard = new Map<string, Heartbeat & { receivedAt: number }>()
  /** Peers known from a join answer, before the replicated state names them. */
  private readonly introduced = new Set<string>()
  private peersDirty = false
  /** Discovered members being dialled (see onDiscovery). */
  private readonly dialling = new Set<string>()
  private joining?: Promise<void>
  private lastReport = 0
  private beating = false
  private readonly manager: MembershipManager
  /** Reads are of this node's applied state: a request's credential is checked without a Raft round. */
  readonly credentials: CredentialStore = {
    bySecretHash: (hash) => this.state.bySecretHash(hash),
    user: (name) => this.state.user(name),
    count: () => this.state.count(),
    list: () => [...this.state.credentials.values()],
    signingKey: (kid) => this.state.signingKeys.get(kid),
    putCredential: async (credential, options) => this.propose({ op: 'credential.put', credential }, options),
    removeCredential: async (id, options) => this.propose({ op: 'credential.remove', id }, options),
    putSigningKey: async (kid, jwk, options) => this.propose({ op: 'signing-key.put', kid, jwk }, options),
    caughtUp: async (options) => this.barrier(options)
  }

  constructor (components: ClusterComponents, init: ClusterInit) {
    super()
    this.components = components
    this.init = {
      voters: 3,
      tickMs: 100,
      electionTick: 10,
      heartbeatMs: 1000,
      nodeTimeoutMs: 10_000,
      voterTimeoutMs: 30_000,
      reportMs: 60_000,
      snapshotEvery: 10_000,
      ...init,
      executionProvider: init.executionProvider ?? 'auto',
      allocationLimits: { ...NO_LIMITS, ...init.allocationLimits }
    }
    this.networkKey = init.swarmKey == null ? undefined : Buffer.from(parseSwarmKey(init.swarmKey)).toString('hex')
    this.admission = init.joinToken == null ? undefined : readInvite(init.joinToken).admission
    this.trustedPeers = new Set(init.trustedPeers ?? (this.networkKey != null ? ['*'] : []))
    this.log = components.logger.forComponent('node-daemon:cluster')
    this.manager = new MembershipManager(this.init)
    this.state = new ClusterState((type, detail) => {
      if (type === 'NodeLeft' && (detail as { id: string }).id === this.id) this.noteRemoved()
      if (type === 'NodeJoined') this.learnJoined((detail as { id: string }).id)
      this.safeDispatchEvent(type, { detail } as any)
    })
    this.state.onApplied = () => { this.peersDirty = true }
    this.state.onAllocationChange = (cid) => { this.tracker.changed(cid) }
    this.rpc = new ClusterRpc({ get libp2p () { return components.libp2p }, log: this.log }, {
      handlerTimeoutMs: RPC_TIMEOUT_MS,
      // Anyone may ask to join; admit() checks its credential.
      allow: (peer, method) => method === 'join' || this.isMember(peer),
      handlers: {
        join: async (from, body, signal) => this.admit(from, body, signal),
        'pin-status': async (_from, body) => this.localStatuses(body?.cids),
        search: async (from, body, signal) => {
          const handler = this.services.get('search')
          if (handler == null) throw new ClusterProtocolError('this node does not serve search')
          return handler(from, body, signal)
        }
      }
    })
    const unlessStopped = { signal: this.shutdown.signal }
    this.pinRequests = new GroupCommit({
      propose: async (command) => this.proposeCommand(command, unlessStopped),
      proposeBatch: async (commands) => await this.proposeCommand({ op: 'batch', commands, at: Date.now(), by: this.id }, unlessStopped) as BatchOutcome[]
    })
    this.tracker = new PinTracker({
      content: components.content,
      datastore: components.datastore,
      log: this.log,
      dial: async (addr, signal) => connect(components.libp2p, addr, { signal })
    }, {
      allocated: () => this.state.pinsAllocatedTo(this.id),
      allocation: (cid) => {
        const pin = this.state.pins.get(cid)
        return pin?.allocations.includes(this.id) === true ? pin : undefined
      }
    })
  }

  /** This node's peer id; read when needed, since the swarm may be built after this service. */
  get id (): string {
    return this.components.libp2p.peerId.toString()
  }

  // ---- lifecycle

  async start (): Promise<void> {
    if (this.running) return
    await mkdir(this.init.dir, { recursive: true })
    this.membership = await this.readMembership()
    for (const id of this.membership?.members ?? []) this.introduced.add(id)
    this.running = true
    await this.rpc.start()
    const pubsub = this.components.libp2p.services.pubsub
    pubsub.subscribe(HEARTBEAT_TOPIC)
    pubsub.addEventListener('message', this.onPubsub)
    this.components.libp2p.addEventListener('peer:discovery', this.onDiscovery)
    if (this.membership == null && this.init.bootstrap.length === 0) {
      // A new cluster of one: this node is its genesis voter.
      this.membership = { genesis: { voters: [this.id], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }
      await this.writeMembership(this.membership)
    }
    if (this.membership != null) {
      await this.startRaft(this.membership)
    } else {
      await this.startTransport()
      this.joining = this.joinLoop()
    }
    await this.tracker.start()
    this.timers.push(setInterval(() => { void this.beat() }, this.init.heartbeatMs))
    void this.beat()
  }

  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    this.shutdown.abort(new Error('the cluster service is stopping'))
    for (const t of this.timers) clearInterval(t)
    this.timers = []
    await this.joining?.catch(() => {})
    const pubsub = this.components.libp2p.services.pubsub
    pubsub.removeEventListener('message', this.onPubsub)
    this.components.libp2p.removeEventListener('peer:discovery', this.onDiscovery)
    pubsub.unsubscribe(HEARTBEAT_TOPIC)
    await this.tracker.stop()
    await this.raft?.stop()
    await this.transport?.stop()
    await this.storage?.close()
    await this.rpc.stop().catch(() => {})
  }

  private async readMembership (): Promise<Membership | undefined> {
    try {
      return JSON.parse(new TextDecoder().decode(await this.components.datastore.get(MEMBERSHIP_KEY)))
    } catch (err: any) {
      if (err.name === 'NotFoundError') return undefined
      throw err
    }
  }

  private async writeMembership (m: Membership): Promise<void> {
    await this.components.datastore.put(MEMBERSHIP_KEY, new TextEncoder().encode(JSON.stringify(m)))
  }

  /**
   * Raft's protocol is served from the start, before this node asks to join:
   * the leader writes to a new learner the moment its admission commits, and
   * a dial that found no handler would hold its messages back for the
   * transport's redial delay, half a second on every join. Streams from peers
   * that are not members yet are refused, and messages that come before Raft
   * starts are lost, as Raft allows; the leader's next heartbeat gets through.
   */
  private async startTransport (): Promise<Libp2pRaftTransport> {
    this.transport = createRaftTransport({ libp2p: this.components.libp2p }, {
      isMember: (peer) => this.isMember(peer),
      mayLead: (peer) => this.trusts(peer),
      // What a follower forwards: an untrusted one's own records and workload only.
      mayPropose: (peer, proposal) => this.trusts(peer) || untrustedMayPropose(peer, proposal)
    })
    await this.transport.start()
    return this.transport
  }

  private async startRaft (m: Membership): Promise<void> {
    this.storage = await openRaftStorage(join(this.init.dir, 'raft'), { confState: m.genesis })
    const transport = this.transport ?? await this.startTransport()
    this.raft = createRaftNode({ transport, storage: this.storage, logger: this.components.logger }, {
      id: this.id,
      stateMachine: this.state,
      tickMs: this.init.tickMs,
      electionTick: this.init.electionTick,
      snapshotEvery: this.init.snapshotEvery,
      // A follower this far behind still catches up from the log; further behind it gets the snapshot.
      snapshotKeepEntries: Math.ceil(this.init.snapshotEvery / 10)
    })
    this.raft.addEventListener('leader', (evt) => {
      if (evt.detail.leader === this.id) this.leaderSince = Date.now()
    })
    await this.raft.start()
    const cs = this.raft.status().config
    // Alone in a cluster of one: no one else can win, so do not wait out an election timeout.
    if (cs.voters.length === 1 && cs.voters[0] === this.id) this.raft.campaign()
  }

  /** When this node became leader, for judging how long others have been silent. */
  private leaderSince = 0

  // ---- joining

  /**
   * Asks the bootstrap peers in turn to admit this node, with backoff, until
   * one does. Each round that fails leaves its most telling failure for
   * /health and says it in the daemon's log: at once, and again every few
   * seconds, for a node that cannot join would otherwise sit there silently.
   */
  private async joinLoop (): Promise<void> {
    let delay = 500
    const signal = this.shutdown.signal
    while (this.running) {
      let worst: Omit<JoinFailure, 'since'> | undefined
      for (const addr of [...this.init.bootstrap, ...await this.foundAddrs()]) {
        if (!this.running) return
        try {
          const peer = await connect(this.components.libp2p, addr, { signal: AbortSignal.any([signal, AbortSignal.timeout(10_000)]) })
          const result = await this.askToJoin(peer, signal)
          await this.learnPeers(result.members)
          this.membership = { genesis: result.genesis, members: result.members.map(m => m.id), vouched: result.members.filter(m => m.trusted === true).map(m => m.id) }
          await this.writeMembership(this.membership)
          if (!this.running) return
          await this.startRaft(this.membership)
          this.joinFailure = undefined
          this.log('joined the cluster through %s', addr)
          this.components.operatorLog?.info({ addr }, 'joined the cluster')
          return
        } catch (err: any) {
          if (!this.running) return
          const failure = this.explainJoinFailure(addr, err)
          if (worst == null || FAILURE_ORDER.indexOf(failure.kind) > FAILURE_ORDER.indexOf(worst.kind)) worst = failure
        }
      }
      if (worst != null) this.noteJoinFailure(worst)
      await new Promise(resolve => setTimeout(resolve, delay))
      delay = Math.min(delay * 2, JOIN_RETRY_MAX_MS)
    }
  }

  /**
   * Asks `peer` to admit this node. A follower names its leader instead; if
   * the leader cannot be reached from here in time (it may listen where only
   * its own network reaches), the follower is asked again and admits it.
   */
  private async askToJoin (peer: string, signal: AbortSignal): Promise<JoinResult> {
    const request = { ...this.joinContext(), token: this.admission }
    const answer = await this.rpc.call<JoinResult | JoinReferral>(peer, 'join', { ...request, follow: true }, AbortSignal.any([signal, AbortSignal.timeout(RPC_TIMEOUT_MS)]))
    if (!('leader' in answer)) return answer
    const { id, addrs } = answer.leader
    try {
      await this.components.libp2p.peerStore.merge(peerIdFromString(id), { multiaddrs: addrs.map(a => multiaddr(a)) })
      return await this.rpc.call<JoinResult>(id, 'join', request, AbortSignal.any([signal, AbortSignal.timeout(REFERRAL_TIMEOUT_MS)]))
    } catch (err: any) {
      // The leader's refusal of the credential is the cluster's answer; anything else may be the path to it.
      if (err.name === 'JoinError' || signal.aborted) throw err
      this.log('the leader %s it was referred to did not admit it - %e', id, err)
      return await this.rpc.call<JoinResult>(peer, 'join', request, AbortSignal.any([signal, AbortSignal.timeout(RPC_TIMEOUT_MS)]))
    }
  }

  /**
   * Addresses of the peers this node found (mDNS on a LAN), which a node
   * still joining asks after its bootstrap peers, since the addresses a join
   * token names may have changed since. It joins through them only with the
   * credential it has, as through any bootstrap peer. Read from the peer
   * store each round: libp2p reports a discovery once, and perhaps before
   * this service started.
   */
  private async foundAddrs (): Promise<string[]> {
    const peers = await this.components.libp2p.peerStore.all().catch(() => [])
    const out = new Set<string>()
    for (const peer of peers) {
      for (const { multiaddr: ma } of peer.addresses.slice(0, INVITE_ADDRS)) {
        const addr = ma.getComponents().some(c => c.name === 'p2p') ? ma.toString() : `${ma.toString()}/p2p/${peer.id.toString()}`
        if (!this.init.bootstrap.includes(addr)) out.add(addr)
      }
      if (out.size >= JOIN_CANDIDATES) break
    }
    return [...out].slice(0, JOIN_CANDIDATES)
  }

  /** What a failed attempt to join through `addr` means, and what to do about it. */
  private explainJoinFailure (addr: string, err: Error): Omit<JoinFailure, 'since'> {
    const invite = '`node-daemon start --join <token>` with a token from `node-daemon cluster invite` on a member'
    if (err.name === 'HandshakeFailedError') {
      return { kind: 'secret', addr, message: `${err.message}: this node's cluster secret is wrong or missing; start it with ${invite}, or with the cluster's --secret` }
    }
    if (err.name === 'DialError') return { kind: 'unreachable', addr, message: `unreachable: ${err.message}` }
    if (err.name === 'JoinError') return { kind: 'refused', addr, message: `${addr} refused to admit this node: ${err.message}; start it with ${invite}` }
    return { kind: 'failed', addr, message: `joining through ${addr} failed: ${err.message}` }
  }

  /** Keeps the failure for /health and logs it when it is new, or again once JOIN_WARN_MS have passed. */
  private noteJoinFailure (failure: Omit<JoinFailure, 'since'>): void {
    const previous = this.joinFailure
    const same = previous?.kind === failure.kind && previous.message === failure.message
    this.joinFailure = { ...failure, since: previous?.kind === failure.kind ? previous.since : Date.now() }
    this.log.error('%s', failure.message)
    if (same && Date.now() - this.lastJoinWarning < JOIN_WARN_MS) return
    this.lastJoinWarning = Date.now()
    this.components.operatorLog?.warn({ reason: failure.kind, addr: failure.addr }, `cannot join the cluster: ${failure.message}`)
  }

  private joinContext (): { addrs: string[], apiUrl?: string } {
    return {
      addrs: this.components.libp2p.getMultiaddrs().map(ma => ma.decapsulate('/p2p').toString()),
      apiUrl: this.init.apiUrl?.()
    }
  }

  /**
   * A member's side of a join: once the node's credential checks out, the
   * leader commits it as a learner; the answer says how to start. A member
   * that is already known only has its record made again.
   */
  private async admit (from: string, body: { addrs?: unknown, apiUrl?: unknown, token?: unknown, follow?: unknown }, signal: AbortSignal): Promise<JoinResult | JoinReferral> {
    const raft = this.requireRaft()
    const addrs = Array.isArray(body?.addrs) ? body.addrs.filter((a): a is string => typeof a === 'string').slice(0, 32) : []
    const apiUrl = typeof body?.apiUrl === 'string' ? body.apiUrl : undefined
    if (!this.isMember(from) || !this.state.nodes.has(from)) {
      const leader = body?.follow === true ? this.state.nodes.get(raft.leaderId) : undefined
      if (leader != null && leader.id !== this.id && leader.addrs.length > 0) return { leader: { id: leader.id, addrs: leader.addrs } }
      const token = this.isMember(from) ? undefined : await this.credential(from, body?.token)
      await this.components.libp2p.peerStore.merge(peerIdFromString(from), { multiaddrs: addrs.map(a => multiaddr(a)) }).catch(() => {})
      const context = encodeJoinContext({ addrs, apiUrl, at: Date.now(), by: from, token })
      const role: ConfChangeSingle['type'] = raft.status().config.voters.includes(from) ? 'add-node' : 'add-learner-node'
      await this.retrying(async () => raft.proposeConfChange({ changes: [{ type: role, nodeId: from }], context }, { signal }), signal)
    }
    return { genesis: this.membership?.genesis as ConfState, members: this.memberAddrs() }
  }

  /**
   * Checks what a node that is not a member brings to join: a join token,
   * or in a private network nothing more than the key it connected with.
   * Only a trusted member admits, since the leader takes membership changes
   * from trusted peers only.
   */
  private async credential (from: string, token: unknown): Promise<JoinContext['token']> {
    if (!this.trusts(this.id)) throw new JoinError(`${this.id} is not a trusted member of the cluster and cannot admit nodes: join through a trusted one`)
    if (token != null) {
      if (typeof token !== 'string') throw new JoinError('the join token must be a string')
      const claims = await verifyJoinToken(token, { cluster: this.clusterId(), now: Date.now(), trusts: (issuer) => this.trusts(issuer) })
      this.log('admitting %s with a %s token of %s', from, claims.role, claims.issuer)
      return { issuer: claims.issuer, role: claims.role, nonce: claims.nonce }
    }
    if (this.networkKey != null) return undefined
    throw new JoinError('joining a cluster over an open swarm takes a join token')
  }

  /** The founder of the cluster, which names it in join tokens. */
  private clusterId (): string {
    const genesis = this.membership?.genesis
    if (genesis == null) throw new NoQuorumError('this node has not joined a cluster yet')
    return [...genesis.voters].sort()[0]
  }

  /**
   * Whether this node trusts `peer` to vote and to propose anything: a
   * configured trusted peer, the founder, a node admitted with a voter
   * token, or a voter (which a trusted leader made one). A peer the state
   * does not know yet is trusted if the member that admitted this node
   * vouched for it.
   */
  trusts (peer: string): boolean {
    if (this.trustedPeers.has('*') || this.trustedPeers.has(peer)) return true
    if (this.membership?.genesis.voters.includes(peer) === true) return true
    const node = this.state.nodes.get(peer)
    if (node == null) return this.membership?.vouched?.includes(peer) === true
    return node.tokenRole === 'voter' || node.role === 'voter'
  }

  private memberAddrs (): JoinResult['members'] {
    const out = [...this.state.nodes.values()].map(n => ({ id: n.id, addrs: n.addrs, trusted: this.trusts(n.id) }))
    if (!this.state.nodes.has(this.id)) out.push({ id: this.id, addrs: this.joinContext().addrs, trusted: this.trusts(this.id) })
    return out
  }

  /** Puts the members' addresses in the peer store, so that Raft can dial them by peer id. */
  private async learnPeers (members: Array<{ id: string, addrs: string[] }>): Promise<void> {
    for (const m of members) {
      if (m.id === this.id) continue
      this.introduced.add(m.id)
      try {
        await this.components.libp2p.peerStore.merge(peerIdFromString(m.id), { multiaddrs: m.addrs.map(a => multiaddr(a)) })
      } catch (err: any) {
        this.log('cannot record the addresses of %s - %e', m.id, err)
      }
    }
  }

  /**
   * A node that joined is put in the peer store as its conf change applies,
   * not at the next heartbeat: the leader replicates to it at once, and a
   * dial by peer id with no address known asks the DHT, a lookup per join.
   */
  private learnJoined (id: string): void {
    const node = this.state.nodes.get(id)
    if (node == null || id === this.id || !this.running) return
    void this.learnPeers([node])
  }

  private isMember (peer: string): boolean {
    if (this.state.nodes.has(peer) || this.introduced.has(peer)) return true
    if (this.raft == null) return false
    const cs = this.raft.status().config
    return cs.voters.includes(peer) || cs.learners.includes(peer) || cs.votersOutgoing.includes(peer) || cs.learnersNext.includes(peer)
  }

  /**
   * libp2p stores what mDNS or the DHT finds but does not dial it: a member
   * found unconnected is dialled, so Raft and gossip reach it. Only voters
   * always, and others while this node has few connections: dialling every
   * member made a full mesh, N² connections across the cluster, where gossip
   * needs a few neighbours and Raft's leader dials whom it replicates to.
   */
  private readonly onDiscovery = (evt: CustomEvent<PeerInfo>): void => {
    const peer = evt.detail.id
    const id = peer.toString()
    if (!this.running || !this.isMember(id) || this.dialling.has(id) || this.components.libp2p.getConnections(peer).length > 0) return
    const voter = this.raft?.status().config.voters.includes(id) === true
    // Dials under way count: a join answer names every member at once, and each was dialled before the first connected.
    if (!voter && this.components.libp2p.getConnections().length + this.dialling.size >= GOSSIP_NEIGHBOURS) return
    this.dialling.add(id)
    this.components.libp2p.dial(peer, { signal: AbortSignal.any([this.shutdown.signal, AbortSignal.timeout(10_000)]) })
      .catch((err: Error) => { this.log('dialling discovered member %p failed - %e', peer, err) })
      .finally(() => { this.dialling.delete(id) })
  }

  // ---- heartbeats and the leader's duties

  private readonly onPubsub = (evt: CustomEvent<Message>): void => {
    const msg = evt.detail
    // In an open swarm anyone may publish on the topic; only members are heard.
    if (msg.topic !== HEARTBEAT_TOPIC || msg.type !== 'signed' || !this.isMember(msg.from.toString())) return
    try {
      const hb: Heartbeat = JSON.parse(new TextDecoder().decode(msg.data))
      this.heard.set(msg.from.toString(), { ...hb, receivedAt: Date.now() })
    } catch (err: any) {
      this.log('bad heartbeat from %p - %e', msg.from, err)
    }
  }

  private async beat (): Promise<void> {
    // a round waiting on Raft must not pile up behind itself
    if (!this.running || this.beating) return
    this.beating = true
    try {
      const resources = await measureResources(this.init.repoDir, { signal: this.shutdown.signal, executionProvider: this.init.executionProvider })
      const hb: Heartbeat = { at: Date.now(), applied: this.state.appliedIndex, pinQueue: this.tracker.queueLength(), resources }
      this.heard.set(this.id, { ...hb, receivedAt: hb.at })
      await this.components.libp2p.services.pubsub.publish(HEARTBEAT_TOPIC, new TextEncoder().encode(JSON.stringify(hb))).catch(() => {})
      if (this.peersDirty) {
        this.peersDirty = false
        await this.learnPeers(this.memberAddrs())
      }
      if (this.raft == null || this.raft.leaderId === '') return
      await this.report(resources)
      if (this.raft.leaderId === this.id) await this.manager.run(this.membershipView())
    } catch (err: any) {
      if (this.running) this.log('heartbeat round failed - %e', err)
    } finally {
      this.beating = false
    }
  }

  /** Records this node in the state once, then its resources every reportMs. */
  private async report (resources: Resources): Promise<void> {
    const raft = this.raft as RaftNode
    const self = this.state.nodes.get(this.id)
    if (self == null) {
      const cs = raft.status().config
      if (!cs.voters.includes(this.id) && !cs.learners.includes(this.id)) return
      // The founder of a cluster is a member from genesis, without the conf change that records a joiner: record it the same way.
      await raft.proposeConfChange({
        changes: [{ type: cs.voters.includes(this.id) ? 'add-node' : 'add-learner-node', nodeId: this.id }],
        context: encodeJoinContext({ ...this.joinContext(), at: Date.now(), by: this.id })
      }, { signal: this.shutdown.signal })
      return
    }
    const now = Date.now()
    const { addrs, apiUrl } = this.joinContext()
    // A new API address or swarm address is worth telling at once; resources can wait for the period.
    const moved = self.apiUrl !== apiUrl || self.addrs.join() !== addrs.join()
    if (!moved && now - this.lastReport < this.init.reportMs && self.resources != null) return
    this.lastReport = now
    await this.propose({ op: 'node.report', id: this.id, addrs, apiUrl, resources, pinQueue: this.tracker.queueLength() })
  }

  private membershipView (): MembershipView {
    const raft = this.raft as RaftNode
    return {
      self: this.id,
      now: Date.now(),
      leaderSince: this.leaderSince,
      status: raft.status(),
      nodes: this.state.nodes,
      lastHeard: (id) => this.heard.get(id)?.receivedAt,
      trusted: (id) => this.trusts(id),
      proposeConfChange: async (changes) => { await raft.proposeConfChange({ changes, transition: 'auto' }, { signal: this.shutdown.signal }) },
      setOnline: async (id, online) => { await this.propose({ op: 'node.status', id, online }) },
      log: this.log
    }
  }

  // ---- proposing and reading

  private requireRaft (): RaftNode {
    if (this.raft == null || !this.raft.isStarted()) throw new NoQuorumError('this node has not joined a cluster yet')
    return this.raft
  }

  /** Retries what failed only because no leader could take it, until the deadline. */
  private async retrying<T> (fn: () => Promise<T>, signal?: AbortSignal, timeoutMs = 10 * this.init.electionTick * this.init.tickMs): Promise<T> {
    const deadline = Date.now() + timeoutMs
    let delay = this.init.tickMs
    for (;;) {
      try {
        return await fn()
      } catch (err: any) {
        // A membership change refused only because another is still under way may go in later.
        const busy = err instanceof ConfChangeError && /unapplied conf change|joint config/.test(err.message)
        const retriable = err instanceof NotLeaderError || err instanceof ProposalLostError || busy
        if (!retriable || Date.now() + delay > deadline) {
          if (retriable) throw new NoQuorumError(`no leader took the request within ${timeoutMs} ms: ${err.message}`)
          if (err instanceof ProposalTimeoutError) throw new NoQuorumError(`the cluster did not decide within the timeout (the change may still be applied): ${err.message}`)
          throw err
        }
        signal?.throwIfAborted()
        await new Promise(resolve => setTimeout(resolve, delay))
        delay = Math.min(delay * 2, 1000)
      }
    }
  }

  private async propose<T = unknown> (body: CommandBody, options: WriteOptions = {}): Promise<T> {
    return await this.proposeCommand(this.command(body), options) as T
  }

  /** This node's command; refused here if the leader would drop it, where the caller can be told why. */
  private command (body: CommandBody): Command {
    this.requireRaft()
    const command = { ...body, at: Date.now(), by: this.id } as Command
    if (!this.trusts(this.id) && !untrustedMay(this.id, command)) this.refuse(command.op)
    return command
  }

  private async proposeCommand (command: Command, options: WriteOptions = {}): Promise<unknown> {
    const raft = this.requireRaft()
    const bytes = encodeCommand(command)
    return await this.retrying(async () => raft.propose(bytes, options), options.signal)
  }

  private refuse (what: string): never {
    throw new NotTrustedError(`this node is not a trusted peer of the cluster (cluster.trusted_peers, or a voter join token), so it may not propose ${what}`)
  }

  private async barrier (options: ReadOptions = {}): Promise<void> {
    if (options.local === true) return
    const raft = this.requireRaft()
    try {
      await raft.read({ signal: options.signal })
    } catch (err: any) {
      if (err instanceof ReadTimeoutError) throw new NoQuorumError(`no leader confirmed the read: ${err.message}`)
      throw err
    }
  }

  // ---- Cluster: status

  status (): ConsensusStatus {
    const raft = this.raft
    if (raft == null || !raft.isStarted()) {
      return { leader: '', term: 0, commitIndex: 0, appliedIndex: 0, role: 'follower', voters: [], learners: [], ready: false }
    }
    const s = raft.status()
    return {
      leader: s.softState.lead,
      term: s.hardState.term,
      commitIndex: s.hardState.commit,
      appliedIndex: this.state.appliedIndex,
      role: s.softState.raftState,
      voters: [...s.config.voters],
      learners: [...s.config.learners],
      ready: this.isReady()
    }
  }

  isReady (): boolean {
    const raft = this.raft
    if (raft == null || !raft.isStarted() || raft.leaderId === '') return false
    return this.state.appliedIndex >= raft.status().hardState.commit && this.state.nodes.has(this.id)
  }

  lastJoinFailure (): JoinFailure | undefined {
    return this.membership == null ? this.joinFailure : undefined
  }

  problems (): ClusterProblem[] {
    if (this.membership?.removed === true) return ['removed']
    const raft = this.raft
    if (raft == null || !raft.isStarted() || !this.state.nodes.has(this.id)) return ['joining']
    if (raft.leaderId === '') return ['no_quorum']
    return this.isReady() ? [] : ['catching_up']
  }

  private noteRemoved (): void {
    if (this.membership == null || this.membership.removed === true) return
    this.membership = { ...this.membership, removed: true }
    this.log('this node was removed from the cluster')
    this.writeMembership(this.membership).catch((err: Error) => { this.log.error('could not record the removal - %s', err.message) })
  }

  // ---- Cluster: nodes

  private view (node: NodeRecord): NodeView {
    const hb = this.heard.get(node.id)
    const progress = this.raft?.isStarted() === true ? this.raft.status().progress : undefined
    const allocated = this.state.pinsAllocatedTo(node.id).length
    return {
      ...structuredClone(node),
      resources: hb?.resources ?? node.resources,
      lastSeen: hb == null ? undefined : new Date(hb.receivedAt).toISOString(),
      connected: node.id === this.id || this.components.libp2p.getConnections(peerIdFromString(node.id)).length > 0,
      pins: { allocated, pending: node.id === this.id ? this.tracker.queueLength() : Math.min(allocated, hb?.pinQueue ?? allocated) },
      matchIndex: progress?.[node.id]?.match ?? -1,
      isLeader: this.raft?.leaderId === node.id,
      isSelf: node.id === this.id
    }
  }

  async nodes (options?: ReadOptions): Promise<NodeView[]> {
    await this.barrier(options)
    return [...this.state.nodes.values()].map(n => this.view(n))
  }

  async node (id: string, options?: ReadOptions): Promise<NodeView> {
    await this.barrier(options)
    const node = this.state.nodes.get(id)
    if (node == null) throw new NodeNotFoundError(`node ${id} is not in the cluster`)
    return this.view(node)
  }

  async removeNode (id: string, options: WriteOptions = {}): Promise<void> {
    const raft = this.requireRaft()
    if (!this.trusts(this.id)) this.refuse('a membership change')
    await this.barrier(options)
    if (!this.state.nodes.has(id)) throw new NodeNotFoundError(`node ${id} is not in the cluster`)
    const cs = raft.status().config
    if (cs.voters.length === 1 && cs.voters[0] === id) throw new InvalidClusterRequestError(`${id} is the only voter; the cluster cannot go on without it`)
    await this.retrying(async () => raft.proposeConfChange({ changes: [{ type: 'remove-node', nodeId: id }] }, options), options.signal)
  }

  async setDrained (id: string, drained: boolean, options?: WriteOptions): Promise<NodeView> {
    return this.view(await this.propose<NodeRecord>({ op: 'node.drain', id, drained }, options))
  }

  allocationLimits (): Allocation {
    return { ...NO_LIMITS, ...this.init.allocationLimits }
  }

  /** Refuses an allocation above the node's limits, naming the first resource that passes its limit. */
  private withinLimits (allocation: Partial<Allocation>): void {
    const limits = this.allocationLimits()
    for (const k of ['cpu', 'memory', 'gpu', 'storage'] as const) {
      const v = allocation[k]
      if (v != null && v > limits[k]) throw new InvalidClusterRequestError(`${k}: ${v} % is above this node's limit of ${limits[k]} % (cluster.allocation_limits)`)
    }
  }

  async setAllocation (allocation: Partial<Allocation>, options?: WriteOptions): Promise<Allocation> {
    this.withinLimits(allocation)
    const node = await this.propose<NodeRecord>({ op: 'node.allocation', id: this.id, allocation }, options)
    return node.allocation
  }

  async registerNode (limits: { maxRAM: number, maxVRAM: number, maxCPUPercent: number }, options?: WriteOptions): Promise<NodeView> {
    for (const [k, v] of Object.entries(limits)) {
      if (!Number.isFinite(v) || v < 0) throw new InvalidClusterRequestError(`${k} must be a number of at least 0`)
    }
    const r = await this.resources()
    const vram = r.gpus.reduce((sum, g) => sum + g.vram.total, 0)
    const pct = (part: number, whole: number): number => whole <= 0 ? 0 : Math.min(100, Math.round(part / whole * 1000) / 10)
    const allocation = { cpu: Math.min(100, limits.maxCPUPercent), memory: pct(limits.maxRAM, r.memory.total), gpu: pct(limits.maxVRAM, vram) }
    this.withinLimits(allocation)
    return this.view(await this.propose<NodeRecord>({ op: 'node.allocation', id: this.id, allocation, registered: true }, options))
  }

  async deregisterNode (options?: WriteOptions): Promise<void> {
    await this.propose({ op: 'node.allocation', id: this.id, allocation: {}, registered: false }, options)
  }

  async discover (options: WriteOptions = {}): Promise<DiscoveryResult> {
    const members = await this.nodes({ signal: options.signal })
    const missing = members.filter(m => !m.isSelf && !m.connected)
    const dialled = await Promise.all(missing.map(async m => {
      let error = 'no known address'
      for (const addr of m.addrs) {
        try {
          await connect(this.components.libp2p, `${addr}/p2p/${m.id}`, options)
          return { id: m.id, addr }
        } catch (err: any) {
          error = err.message
        }
      }
      return { id: m.id, error }
    }))
    return {
      members: members.length,
      found: missing.length,
      connected: dialled.flatMap(d => d.addr == null ? [] : [{ id: d.id, addr: d.addr }]),
      failed: dialled.flatMap(d => d.error == null ? [] : [{ id: d.id, error: d.error }])
    }
  }

  async createJoinToken (options: JoinTokenOptions = {}): Promise<JoinToken> {
    const expiresInMs = options.expiresInMs ?? TOKEN_EXPIRY_MS
    const role = options.role ?? 'learner'
    if (!Number.isFinite(expiresInMs) || expiresInMs <= 0 || expiresInMs > MAX_TOKEN_EXPIRY_MS) throw new InvalidClusterRequestError(`a join token expires after more than 0 and at most ${MAX_TOKEN_EXPIRY_MS / 3_600_000} hours`)
    if (role !== 'voter' && role !== 'learner') throw new InvalidClusterRequestError('the role of a join token is voter or learner')
    const cluster = this.clusterId()
    if (!this.trusts(this.id)) throw new NotTrustedError('this node is not a trusted peer of the cluster: the tokens it signed would be refused')
    const expires = Date.now() + Math.ceil(expiresInMs)
    const admission = await signJoinToken(this.components.privateKey, { cluster, issuer: this.id, role, expires, nonce: randomBytes(16).toString('base64url') })
    const addrs = this.inviteAddrs()
    return { token: encodeInvite({ addrs, admission, key: this.networkKey }), role, issuer: this.id, expiresAt: new Date(expires).toISOString(), addrs }
  }

  /**
   * Where an invited node can reach members that may admit it: this node
   * first, then the other trusted members this node knows. Loopback
   * addresses go last, since they reach another machine's own daemon.
   */
  private inviteAddrs (): string[] {
    const own = { id: this.id, addrs: this.joinContext().addrs }
    const others = [...this.state.nodes.values()].filter(n => n.id !== this.id && this.trusts(n.id) && this.isMember(n.id))
    return [own, ...others].slice(0, INVITE_MEMBERS).flatMap(m => {
      const loopback = (a: string): boolean => /^\/(ip4\/127\.|ip6\/::1\/)/.test(a)
      const ordered = [...m.addrs.filter(a => !loopback(a)), ...m.addrs.filter(loopback)]
      return ordered.slice(0, INVITE_ADDRS).map(a => `${a}/p2p/${m.id}`)
    })
  }

  async resources (): Promise<Resources> {
    return measureResources(this.init.repoDir, { signal: this.shutdown.signal, executionProvider: this.init.executionProvider })
  }

  // ---- Cluster: services beside it

  serve (method: ServiceMethod, handler: Handler | undefined): void {
    if (handler == null) this.services.delete(method)
    else this.services.set(method, handler)
  }

  async ask<T> (peer: string, method: ServiceMethod, body: unknown, options: AbortOptions = {}): Promise<T> {
    return this.rpc.call<T>(peer, method, body, options.signal == null ? AbortSignal.timeout(RPC_TIMEOUT_MS) : AbortSignal.any([options.signal, AbortSignal.timeout(RPC_TIMEOUT_MS)]))
  }

  // ---- Cluster: pins

  async pinAdd (cid: string, options: PinAddOptions = {}): Promise<PinRecord> {
    const canonical = checkCID(cid)
    const rf = options.replicationFactor
    const rmin = options.replicationFactorMin ?? rf ?? 1
    const rmax = options.replicationFactorMax ?? rf ?? (rmin === -1 ? -1 : Math.max(rmin, this.init.voters))
    const meta = options.meta == null ? undefined : checkMeta(options.meta)
    const origins = options.origins == null ? undefined : checkOrigins(options.origins)
    const size = await this.localSize(canonical, options)
    return await this.pinRequests.submit(this.command({ op: 'pin.add', cid: canonical, name: options.name ?? '', rmin, rmax, size, meta, origins }), options.signal) as PinRecord
  }

  /**
   * A DAG's size for the record the proposer writes: the proposer usually
   * holds what it pins or registers (it just added it). When it does not, 0
   * says unknown, and a later proposal that knows it fills it in.
   */
  private async localSize (cid: string, options?: WriteOptions): Promise<number> {
    try {
      return await this.components.content.dagSize(cid, { signal: options?.signal }) ?? 0
    } catch (err: any) {
      if (options?.signal?.aborted === true) throw err
      return 0
    }
  }

  async pinRm (cid: string, options?: WriteOptions): Promise<void> {
    await this.propose({ op: 'pin.rm', cid: checkCID(cid) }, options)
  }

  async pins (options?: ReadOptions): Promise<PinRecord[]> {
    await this.barrier(options)
    return [...this.state.pins.values()].map(p => structuredClone(p))
  }

  async pin (cid: string, options?: ReadOptions): Promise<PinRecord> {
    const canonical = checkCID(cid)
    await this.barrier(options)
    const pin = this.state.pins.get(canonical)
    if (pin == null) throw new PinNotFoundError(`${canonical} is not pinned in the cluster`)
    return structuredClone(pin)
  }

  localPins (): Array<{ pin: PinRecord, status: PeerPinStatus }> {
    return this.state.pinsAllocatedTo(this.id).map(pin => ({ pin: structuredClone(pin), status: this.localStatus(pin.cid) }))
  }

  private localStatus (cid: string): PeerPinStatus {
    return { ...(this.tracker.status(cid) ?? { status: 'queued' as const, attempts: 0, updatedAt: new Date().toISOString() }), peer: this.id }
  }

  private localStatuses (cids?: unknown): Record<string, PeerPinStatus> {
    const wanted = Array.isArray(cids) ? new Set(cids.filter((c): c is string => typeof c === 'string')) : undefined
    const out: Record<string, PeerPinStatus> = {}
    for (const pin of this.state.pinsAllocatedTo(this.id)) {
      if (wanted == null || wanted.has(pin.cid)) out[pin.cid] = this.localStatus(pin.cid)
    }
    return out
  }

  async pinStatus (cid?: string, options: ReadOptions = {}): Promise<PinStatusReport[]> {
    const pins = cid == null ? await this.pins(options) : [await this.pin(cid, options)]
    const nodes = [...this.state.nodes.keys()]
    const byNode = new Map<string, Record<string, PeerPinStatus>>()
    await Promise.all(nodes.map(async (id) => {
      const mine = pins.filter(p => p.allocations.includes(id)).map(p => p.cid)
      if (mine.length === 0) return
      if (id === this.id) {
        byNode.set(id, this.localStatuses(mine))
        return
      }
      const signal = AbortSignal.any([AbortSignal.timeout(STATUS_TIMEOUT_MS), ...(options.signal != null ? [options.signal] : [])])
      try {
        byNode.set(id, await this.rpc.call<Record<string, PeerPinStatus>>(id, 'pin-status', { cids: mine }, signal))
      } catch (err: any) {
        this.log('asking %s for pin statuses failed - %e', id, err)
      }
    }))
    const now = new Date().toISOString()
    return pins.map(pin => {
      const peers: PeerPinStatus[] = nodes.map(id => {
        if (!pin.allocations.includes(id)) return { peer: id, status: 'remote', updatedAt: now }
        const answers = byNode.get(id)
        if (answers == null) return { peer: id, status: 'unreachable', updatedAt: now }
        // a node that has not applied the pin yet has it queued
        return { ...(answers[pin.cid] ?? { status: 'queued' as const, updatedAt: now }), peer: id }
      })
      return { cid: pin.cid, name: pin.name, peers, summary: summarize(peers.filter(p => p.status !== 'remote').map(p => p.status)) }
    })
  }

  async rebalance (options?: WriteOptions): Promise<PinRecord[]> {
    return this.propose<PinRecord[]>({ op: 'pin.rebalance' }, options)
  }

  async migrate (cid: string, from: string, to: string, options?: WriteOptions): Promise<PinRecord> {
    return this.propose<PinRecord>({ op: 'pin.migrate', cid: checkCID(cid), from, to }, options)
  }

  async allocate (cid: string, to: string, options?: WriteOptions): Promise<PinRecord> {
    return this.propose<PinRecord>({ op: 'pin.allocate', cid: checkCID(cid), to }, options)
  }

  async deallocate (cid: string, from: string, options?: WriteOptions): Promise<PinRecord> {
    return this.propose<PinRecord>({ op: 'pin.deallocate', cid: checkCID(cid), from }, options)
  }

  // ---- Cluster: models

  async registerModel (input: RegisterModelInput, options?: WriteOptions): Promise<ModelRecord> {
    if (typeof input.modelId !== 'string' || input.modelId.trim() === '') throw new InvalidClusterRequestError('modelId must be a non-empty string')
    return this.propose<ModelRecord>({
      op: 'model.register',
      modelId: input.modelId,
      modelCID: checkCID(input.modelCID, 'modelCID'),
      name: input.name ?? input.modelId,
      description: input.description ?? '',
      kind: input.kind ?? 'model',
      metadata: input.metadata ?? {},
      framework: input.framework,
      license: input.license,
      account: input.account,
      size: await this.localSize(input.modelCID, options),
      replicationFactor: input.replicationFactor ?? 3
    }, options)
  }

  async updateModel (modelId: string, modelCID: string, options: UpdateModelOptions = {}): Promise<ModelRecord> {
    return this.propose<ModelRecord>({
      op: 'model.update',
      modelId,
      modelCID: checkCID(modelCID, 'modelCID'),
      size: await this.localSize(modelCID, options),
      expectedVersion: options.expectedVersion,
      description: options.description,
      metadata: options.metadata,
      framework: options.framework,
      license: options.license
    }, options)
  }

  async setModelActive (modelId: string, active: boolean, options?: WriteOptions): Promise<ModelRecord> {
    return this.propose<ModelRecord>({ op: 'model.active', modelId, active }, options)
  }

  async removeModel (modelId: string, options?: WriteOptions): Promise<void> {
    await this.propose({ op: 'model.remove', modelId }, options)
  }

  async getModel (modelId: string, options?: ReadOptions): Promise<ModelRecord> {
    await this.barrier(options)
    const model = this.state.models.get(modelId)
    if (model == null) throw new ModelNotFoundError(`model ${modelId} is not registered`)
    return structuredClone(model)
  }

  async findModel (modelId: string, options?: AbortOptions): Promise<ModelRecord | undefined> {
    const unknown = (): undefined => undefined
    return await this.getModel(modelId, { ...options, local: true }).catch(unknown) ?? await this.getModel(modelId, options).catch(unknown)
  }

  async getAllModels (options?: ReadOptions): Promise<ModelRecord[]> {
    await this.barrier(options)
    return [...this.state.models.values()].map(m => structuredClone(m))
  }

  async getActiveModels (options?: ReadOptions): Promise<ModelRecord[]> {
    return (await this.getAllModels(options)).filter(m => m.isActive)
  }

  // ---- Cluster: stored documents

  async putDocument (input: PutDocumentInput, options?: WriteOptions): Promise<DocumentRecord> {
    const command = {
      op: 'document.put' as const,
      family: input.family,
      name: input.name,
      version: input.version,
      cid: checkCID(input.cid),
      metadata: input.metadata ?? {},
      size: 0,
      replicationFactor: input.replicationFactor ?? 3
    }
    // Refused here rather than after the log carried it.
    checkDocumentName(command)
    return this.propose<DocumentRecord>({ ...command, size: await this.localSize(command.cid, options) }, options)
  }

  async getDocument (family: string, name: string, options?: ReadOptions): Promise<DocumentRecord> {
    await this.barrier(options)
    const record = this.state.documents.get(documentKey(family, name))
    if (record == null) throw new DocumentNotFoundError(`no ${family} is stored under the name ${JSON.stringify(name)}`)
    return structuredClone(record)
  }

  async documents (family: string, options?: ReadOptions): Promise<DocumentRecord[]> {
    await this.barrier(options)
    return [...this.state.documents.values()].filter(d => d.family === family).map(d => structuredClone(d))
  }

  // ---- Cluster: search collections

  async createCollection (input: CreateCollectionInput, options?: WriteOptions): Promise<CollectionRecord> {
    return this.propose<CollectionRecord>({
      op: 'collection.create',
      name: input.name,
      embeddingModel: input.embeddingModel,
      chunking: input.chunking,
      metadataSchema: input.metadataSchema ?? {},
      replicationFactor: input.replicationFactor ?? 3
    }, options)
  }

  async setCollectionHead (name: string, input: SetCollectionHeadInput, options?: WriteOptions): Promise<CollectionRecord> {
    const headCID = checkCID(input.headCID, 'headCID')
    return this.propose<CollectionRecord>({ op: 'collection.head', name, headCID, expectedHead: input.expectedHead, chunks: input.chunks, size: await this.localSize(headCID, options), ...(input.embeddingModel != null ? { embeddingModel: input.embeddingModel } : {}) }, options)
  }

  async removeCollection (name: string, options?: WriteOptions): Promise<CollectionRecord> {
    return this.propose<CollectionRecord>({ op: 'collection.remove', name }, options)
  }

  async collection (name: string, options?: ReadOptions): Promise<CollectionRecord> {
    await this.barrier(options)
    const collection = this.state.collections.get(name)
    if (collection == null) throw new CollectionNotFoundError(`collection ${JSON.stringify(name)} does not exist`)
    return structuredClone(collection)
  }

  async collections (options?: ReadOptions): Promise<CollectionRecord[]> {
    await this.barrier(options)
    return [...this.state.collections.values()].map(c => structuredClone(c))
  }

  // ---- Cluster: jobs

  async submitJob (input: SubmitJobInput, options?: WriteOptions): Promise<JobRecord> {
    return this.propose<JobRecord>({
      op: 'job.submit',
      kind: input.kind ?? 'inference',
      promptCID: checkCID(input.promptCID, 'promptCID'),
      modelId: input.modelId,
      modelCID: input.modelCID == null ? undefined : checkCID(input.modelCID, 'modelCID'),
      params: input.params ?? {}
    }, options)
  }

  async startJob (jobId: number, options?: WriteOptions): Promise<JobRecord> {
    return this.propose<JobRecord>({ op: 'job.start', jobId }, options)
  }

  async submitResponse (jobId: number, responseCID: string, options?: WriteOptions & { metrics?: Record<string, number> }): Promise<JobRecord> {
    return this.propose<JobRecord>({ op: 'job.complete', jobId, responseCID: checkCID(responseCID, 'responseCID'), metrics: options?.metrics }, options)
  }

  async failJob (jobId: number, error: string, options?: WriteOptions): Promise<JobRecord> {
    return this.propose<JobRecord>({ op: 'job.fail', jobId, error }, options)
  }

  async cancelJob (jobId: number, reason: string, options?: WriteOptions): Promise<JobRecord> {
    return this.propose<JobRecord>({ op: 'job.cancel', jobId, reason }, options)
  }

  async removeJob (jobId: number, options?: WriteOptions): Promise<JobRecord> {
    return this.propose<JobRecord>({ op: 'job.remove', jobId }, options)
  }

  async changeTraining (change: TrainingChange, options?: WriteOptions): Promise<JobRecord> {
    if (change.op === 'training.submit') {
      checkCID(change.modelCID, 'model')
      checkCID(change.datasetCID, 'dataset')
    }
    if ('checkpoint' in change && change.checkpoint != null) checkCID(change.checkpoint.cid, 'checkpoint')
    return this.propose<JobRecord>(change, options)
  }

  async job (jobId: number, options?: ReadOptions): Promise<JobRecord> {
    await this.barrier(options)
    const job = this.state.jobs.get(jobId)
    if (job == null) throw new JobNotFoundError(`job ${jobId} does not exist`)
    return structuredClone(job)
  }

  async jobs (query: JobQuery = {}, options?: ReadOptions): Promise<JobRecord[]> {
    await this.barrier(options)
    const limit = query.limit ?? 100
    const statuses = query.status == null ? undefined : new Set([query.status].flat())
    const out: JobRecord[] = []
    for (const job of [...this.state.jobs.values()].reverse()) {
      if (out.length >= limit) break
      if (statuses != null && !statuses.has(job.status)) continue
      if (query.worker != null && !workedOn(job, query.worker)) continue
      out.push(structuredClone(job))
    }
    return out
  }

  async history (query: HistoryQuery = {}, options?: ReadOptions): Promise<Decision[]> {
    await this.barrier(options)
    return this.state.decisions(query.since ?? 0, query.limit ?? 100, query.op).map(d => ({ ...d }))
  }
}

const SEVERITY: PinStatus[] = ['error', 'unreachable', 'unpinning', 'queued', 'pinning', 'pinned', 'remote']

/** The weakest status among the allocated nodes'. */
/** Keys of a pin's metadata, at most, as the Pinning Service API bounds them. */
const MAX_META_KEYS = 1000
/** Origins of a pin, at most, as the Pinning Service API bounds them. */
const MAX_ORIGINS = 20

/** A pin's metadata: string keys and string values only, so that every node applies the same record. */
function checkMeta (meta: Record<string, string>): Record<string, string> {
  const entries = Object.entries(meta)
  if (entries.length > MAX_META_KEYS) throw new InvalidClusterRequestError(`meta has ${entries.length} keys; at most ${MAX_META_KEYS} are kept`)
  for (const [key, value] of entries) {
    if (typeof value !== 'string') throw new InvalidClusterRequestError(`meta ${JSON.stringify(key.slice(0, 100))}: values must be strings`)
  }
  return Object.fromEntries(entries)
}

/** Origins as the Pinning Service API gives them: multiaddrs that end in /p2p/<peer id>. */
function checkOrigins (origins: string[]): string[] {
  if (origins.length > MAX_ORIGINS) throw new InvalidClusterRequestError(`${origins.length} origins given; at most ${MAX_ORIGINS} are taken`)
  return [...new Set(origins)].map(addr => {
    let last: string | undefined
    try {
      last = multiaddr(addr).getComponents().at(-1)?.name
    } catch {}
    if (last !== 'p2p') throw new InvalidClusterRequestError(`origin ${JSON.stringify(String(addr).slice(0, 200))} is not a multiaddr ending in /p2p/<peer id>`)
    return addr
  })
}

function summarize (statuses: PinStatus[]): PinStatus {
  let worst: PinStatus = 'pinned'
  for (const s of statuses) if (SEVERITY.indexOf(s) < SEVERITY.indexOf(worst)) worst = s
  return worst
}

export function createCluster (components: ClusterComponents, init: ClusterInit): ClusterService {
  return new ClusterService(components, init)
}
