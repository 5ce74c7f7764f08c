/**
 * A tiny in-memory cluster for scripted tests: RawNodes whose Readys are
 * carried out synchronously (persist, send, apply, advance) and whose
 * messages are delivered in order, with links that can be cut.
 */
import { MemoryStorage, RawNode, decodeConfChange } from '../../src/index.ts'
import type { ConfState, Entry, HardState, Message, RaftConfig, Ready, SoftState } from '../../src/index.ts'
import { Rng } from '../sim/rng.ts'

export function conf (voters: string[]): ConfState {
  return { voters, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false }
}

export function bytes (s: string): Uint8Array {
  return new TextEncoder().encode(s)
}

/** A message with every field set, as the library sends them. */
export function msg (m: Partial<Message> & Pick<Message, 'type' | 'from' | 'to'>): Message {
  return { term: 0, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, ...m }
}

/** Entries with the given terms at indexes 1, 2, ... */
export function entries (terms: number[], from = 1): Entry[] {
  return terms.map((term, i) => ({ term, index: from + i, type: 'normal', data: bytes(`${from + i}@${term}`) }))
}

/** A disk holding a log with the given terms and a hard state, as if written before a restart. */
export function storageWith (voters: string[], terms: number[], hs: Partial<HardState> = {}): MemoryStorage {
  const s = new MemoryStorage(conf(voters))
  s.append(entries(terms))
  s.setHardState({ term: hs.term ?? (terms.at(-1) ?? 0), vote: hs.vote ?? '', commit: hs.commit ?? 0 })
  return s
}

export interface TestNode {
  id: string
  raw: RawNode
  storage: MemoryStorage
  /** Every entry handed out for applying, in order. */
  applied: Entry[]
  softState: SoftState
  /** The membership as of the last conf change applied. */
  conf?: ConfState
}

export type NodeOptions = Partial<Omit<RaftConfig, 'id' | 'storage'>> & { storage?: MemoryStorage, seed?: number }

export function newNode (id: string, voters: string[], opts: NodeOptions = {}): TestNode {
  const { storage: given, seed, ...config } = opts
  const storage = given ?? new MemoryStorage(conf(voters))
  const rng = new Rng(seed ?? Number(id))
  const raw = new RawNode({
    electionTick: 10,
    heartbeatTick: 1,
    preVote: false,
    checkQuorum: false,
    random: () => rng.next(),
    ...config,
    id,
    storage
  })
  return { id, raw, storage, applied: [], softState: { lead: '', raftState: 'follower' } }
}

/** Sees each Ready before it is carried out, to check invariants against the node's disk. */
export type ReadyObserver = (n: TestNode, rd: Ready) => void

/** Carries out the node's Readys and returns the messages it sends. */
export function drain (n: TestNode, observe?: ReadyObserver): Message[] {
  const out: Message[] = []
  for (let i = 0; i < 100 && n.raw.hasReady(); i++) {
    const rd = n.raw.ready()
    observe?.(n, rd)
    if (rd.snapshot !== undefined) n.storage.applySnapshot(rd.snapshot)
    n.storage.append(rd.entries)
    if (rd.hardState !== undefined) n.storage.setHardState(rd.hardState)
    if (rd.softState !== undefined) n.softState = rd.softState
    out.push(...rd.messages)
    n.applied.push(...rd.committedEntries)
    for (const e of rd.committedEntries) if (e.type === 'conf-change') n.conf = n.raw.applyConfChange(decodeConfChange(e.data))
    n.raw.advance()
  }
  return out
}

/** The node's log as persisted: [index, term] pairs. */
export function logOf (n: TestNode): Array<[number, number]> {
  const s = n.storage
  if (s.lastIndex() < s.firstIndex()) return []
  return s.entries(s.firstIndex(), s.lastIndex() + 1).map(e => [e.index, e.term])
}

export function hardState (n: TestNode): HardState {
  return n.raw.status().hardState
}

export class Network {
  readonly nodes = new Map<string, TestNode>()
  /** Cut links, as "from>to". */
  readonly cut = new Set<string>()
  /** Messages sent to ids that are not nodes here, for the test to look at. */
  readonly elsewhere: Message[] = []
  /** Every message sent, delivered or not. */
  readonly sent: Message[] = []
  /** Drops messages besides those on cut links. */
  drop: (m: Message) => boolean = () => false
  observe: ReadyObserver | undefined

  constructor (nodes: TestNode[]) {
    for (const n of nodes) this.nodes.set(n.id, n)
  }

  node (id: string): TestNode {
    const n = this.nodes.get(id)
    if (n === undefined) throw new Error(`no node ${id}`)
    return n
  }

  isolate (id: string): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue
      this.cut.add(`${id}>${other}`)
      this.cut.add(`${other}>${id}`)
    }
  }

  heal (): void {
    this.cut.clear()
    this.drop = () => false
  }

  /** Delivers messages, in order, until no node has anything more to say. */
  settle (maxRounds = 200): void {
    for (let round = 0; round < maxRounds; round++) {
      const msgs: Message[] = []
      for (const n of this.nodes.values()) msgs.push(...drain(n, this.observe))
      if (msgs.length === 0) return
      for (const m of msgs) this.send(m)
    }
    throw new Error(`the network did not settle in ${maxRounds} rounds`)
  }

  send (m: Message): void {
    this.sent.push(m)
    if (this.cut.has(`${m.from}>${m.to}`) || this.drop(m)) return
    const to = this.nodes.get(m.to)
    if (to === undefined) this.elsewhere.push(m)
    else to.raw.step(m)
  }

  /** Ticks every node (or those given) once and lets the consequences play out. */
  tick (ids: string[] = [...this.nodes.keys()]): void {
    for (const id of ids) this.node(id).raw.tick()
    this.settle()
  }

  /** Campaigns at `id` and delivers everything; the node should be leader after. */
  elect (id: string): void {
    this.node(id).raw.campaign()
    this.settle()
  }

  leaders (): TestNode[] {
    return [...this.nodes.values()].filter(n => n.raw.status().softState.raftState === 'leader')
  }
}
