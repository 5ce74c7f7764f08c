/**
 * ipfs-cluster-ctl's verbs, under `cluster`: thin clients of document 000's
 * /api/v0/cluster routes, with tables for people and the API's JSON with
 * --json.
 */
import { InvalidArgumentError } from 'commander'
import { parseDuration } from '@node-daemon/access/duration'
import { apiOf, clientCommand, print, progressBar, request, table } from '../command.ts'
import type { Api } from '../client.ts'
import type { ClientOptions } from '../command.ts'
import type { Command } from 'commander'

interface PeerStatus {
  status: string
  error: string
  timestamp: string
}

/** IPFS Cluster's GlobalPinInfo, as /api/v0/cluster/status answers it. */
interface PinInfo {
  cid: string
  name: string
  status: string
  peer_map: Record<string, PeerStatus>
}

interface Pin {
  cid: string
  name: string
  allocations: string[]
  replication_factor_min: number
  replication_factor_max: number
}

const statusOf = async (api: Api, cid?: string): Promise<Record<string, PinInfo>> =>
  (await request<{ status: Record<string, PinInfo> }>(api, 'POST', `/api/v0/cluster/status${cid == null ? '' : `?arg=${encodeURIComponent(cid)}`}`)).status

/** A pin's status on each peer, as ipfs-cluster-ctl prints it. */
function statusLines (info: PinInfo): string[] {
  return [
    `${info.cid} | ${info.name}: ${info.status.toUpperCase()}`,
    ...Object.entries(info.peer_map).map(([peer, s]) => `    > ${peer} : ${s.status.toUpperCase()} | ${s.timestamp}${s.error === '' ? '' : ` | ${s.error}`}`)
  ]
}

const factor = (n: number): string => n === -1 ? 'all' : String(n)

/**
 * Waits until every peer the pin is allocated to has pinned it, with a bar
 * of the peers pinned, and fails after `timeoutMs` with their statuses.
 */
async function waitPinned (api: Api, cid: string, allocations: string[], timeoutMs: number, opts: ClientOptions): Promise<PinInfo> {
  const progress = progressBar(`pinning ${cid}`, allocations.length, opts, 'items')
  const deadline = Date.now() + timeoutMs
  try {
    for (;;) {
      const info = (await statusOf(api, cid))[cid]
      const wanted = Object.entries(info?.peer_map ?? {}).filter(([, s]) => s.status !== 'remote')
      const pinned = wanted.filter(([, s]) => s.status === 'pinned').length
      progress.set(pinned, wanted.length)
      if (info != null && info.status === 'pinned' && pinned === wanted.length) return info
      if (Date.now() > deadline) {
        const lines = info == null ? [] : statusLines(info)
        throw new Error(`${cid} is not pinned on every peer it is allocated to after ${timeoutMs / 1000}s:\n${lines.join('\n')}`)
      }
      await new Promise(resolve => setTimeout(resolve, 500))
    }
  } finally {
    progress.stop()
  }
}

/** Adds ipfs-cluster-ctl's verbs to the `cluster` command. */
export function clusterCommands (cluster: Command): void {
  const peers = cluster.command('peers').description('the members of the cluster')
  clientCommand(peers, 'ls')
    .description('the members of the cluster: role, state and API')
    .action(async (opts) => {
      const body = await request<{ peers: Array<{ id: string, role: string, online: boolean, is_leader: boolean, is_self: boolean, api_url: string | null }> }>(await apiOf(opts), 'POST', '/api/v0/cluster/peers')
      print(opts, body, b => table(['PEER ID', 'ROLE', 'STATE', 'API'], b.peers.map(p => [
        `${p.id}${p.is_self ? ' (self)' : ''}`,
        p.is_leader ? `${p.role}, leader` : p.role,
        p.online ? 'online' : 'offline',
        p.api_url ?? ''
      ])))
    })

  clientCommand(cluster, 'status')
    .description('the status of a pin (default every pin) on each peer')
    .argument('[cid]')
    .action(async (cid: string | undefined, opts) => {
      const status = await statusOf(await apiOf(opts), cid)
      print(opts, { status }, s => Object.values(s.status).flatMap(statusLines))
    })

  clientCommand(cluster, 'pins')
    .description('the cluster pinset: each pin with its replication factors and allocations')
    .action(async (opts) => {
      const body = await request<{ pins: Pin[] }>(await apiOf(opts), 'POST', '/api/v0/cluster/pins')
      print(opts, body, b => table(['CID', 'NAME', 'REPLICATION', 'ALLOCATIONS'], b.pins.map(p => [
        p.cid,
        p.name,
        `${factor(p.replication_factor_min)}..${factor(p.replication_factor_max)}`,
        p.allocations.length === 0 ? 'every peer' : p.allocations.join(', ')
      ])))
    })

  const pin = cluster.command('pin').description('pins of the cluster')
  clientCommand(pin, 'add')
    .description('pin a CID in the cluster; with --wait, until every peer it is allocated to has pinned it')
    .argument('<cid>')
    .option('-r, --replication <n>', 'how many peers hold it; -1 is every peer (default: the cluster\'s)', (v) => parseReplication(v))
    .option('-n, --name <name>', 'a name for the pin')
    .option('-w, --wait', 'wait until it is pinned, with a progress bar of the peers')
    .option('--wait-timeout <duration>', 'give up waiting after this long: 30s, 10m, 1h', (v) => parseDuration(v, '--wait-timeout'), 600_000)
    .option('--no-progress', 'no progress bar')
    .action(async (cid: string, opts) => {
      const api = await apiOf(opts)
      const added = await request<Pin & { peers: string[] }>(api, 'POST', '/api/v0/cluster/pin/add', { cid, name: opts.name, replication_factor: opts.replication })
      if (opts.wait !== true) {
        print(opts, added, a => `${a.cid}: allocated to ${a.peers.length === 0 ? 'every peer' : a.peers.join(', ')}`)
        return
      }
      const info = await waitPinned(api, added.cid, added.peers, opts.waitTimeout, opts)
      print(opts, { ...added, status: info }, () => statusLines(info))
    })
  clientCommand(pin, 'rm')
    .description('remove a pin from the cluster: every peer unpins it')
    .argument('<cid>')
    .action(async (cid: string, opts) => {
      const body = await request<{ cid: string }>(await apiOf(opts), 'POST', '/api/v0/cluster/pin/rm', { cid })
      print(opts, body, b => `unpinned ${b.cid}`)
    })
}

function parseReplication (value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < -1 || n === 0) throw new InvalidArgumentError('a count of peers is 1 or more, or -1 for every peer')
  return n
}
