// Cluster: every node with its Raft role, online state and resources, and a picture of who replicates to whom.
import { bytes, get, percent, short } from '../api.ts'
import { Section, Status, usePoll } from '../ui.tsx'
import type { ComponentChildren } from 'preact'

interface ClusterNode {
  id: string
  role: string
  online: boolean
  is_leader: boolean
  is_self: boolean
  drained: boolean
  api_url: string | null
  models: string[]
  resources: { cpu: number | null, memory: number | null, disk: number | null, gpu: number | null }
  hardware?: {
    cpu: { cores: number, load1: number }
    memory: { total: number, free: number }
    gpus: Array<{ name: string, vram: { total: number, used: number } }>
    disk: { total: number, free: number }
  }
}

/** The role a person reads: the leader is a voter the others follow. */
const roleOf = (n: ClusterNode): string => n.is_leader ? 'leader' : n.role

/** The leader in the middle, the other nodes around it; lines are Raft's replication from the leader. */
function Topology ({ nodes }: { nodes: ClusterNode[] }): ComponentChildren {
  const size = 320
  const centre = size / 2
  const leader = nodes.find(n => n.is_leader)
  const others = nodes.filter(n => n !== leader)
  const at = (i: number): [number, number] => {
    const angle = (2 * Math.PI * i) / Math.max(1, others.length) - Math.PI / 3
    return [centre + 115 * Math.cos(angle), centre + 115 * Math.sin(angle)]
  }
  const dot = (n: ClusterNode, x: number, y: number): ComponentChildren => (
    <g key={n.id} data-topology-node={n.id}>
      <circle cx={x} cy={y} r={n.is_leader ? 22 : 16} fill={!n.online ? '#f3b4ae' : n.is_leader ? '#2d6cdf' : n.role === 'voter' ? '#7aa5ef' : '#c4ccd4'} stroke={n.is_self ? '#1d232a' : 'none'} stroke-width='2' />
      <text x={x} y={y + (n.is_leader ? 36 : 30)} text-anchor='middle' font-size='11'>{short(n.id, 4)} · {roleOf(n)}</text>
    </g>
  )
  return (
    <svg width={size} height={size} viewBox={`0 0 ${size} ${size}`} role='img' aria-label='cluster topology'>
      {leader != null && others.map((n, i) => { const [x, y] = at(i); return <line key={n.id} x1={centre} y1={centre} x2={x} y2={y} stroke={n.online ? '#9aa6b2' : '#f3b4ae'} stroke-dasharray={n.role === 'learner' ? '4 3' : undefined} /> })}
      {others.map((n, i) => { const [x, y] = at(i); return dot(n, x, y) })}
      {leader != null && dot(leader, centre, centre)}
    </svg>
  )
}

export function ClusterPage (): ComponentChildren {
  const nodes = usePoll(async () => (await get<{ nodes: ClusterNode[] }>('/api/v1/nodes')).nodes, 3000)
  const consensus = usePoll(async () => get<{ leader: string, term: number, commit_index: number }>('/api/v1/consensus/status'), 3000)
  const list = nodes.data ?? []
  return (
    <>
      <Section title='Cluster'>
        <Status error={nodes.error ?? consensus.error} />
        {consensus.data != null && (
          <p>
            <span data-leader={consensus.data.leader}>Leader <code>{short(consensus.data.leader)}</code></span>, term {consensus.data.term}, commit index {consensus.data.commit_index}; {list.filter(n => n.online).length} of {list.length} nodes online.
          </p>
        )}
        <table>
          <thead><tr><th>Node</th><th>Role</th><th>State</th><th>CPU</th><th>Load</th><th>RAM</th><th>GPU / VRAM</th><th>Disk</th><th>Models</th></tr></thead>
          <tbody>
            {list.map(n => {
              const h = n.hardware
              return (
                <tr key={n.id} data-node={n.id} data-role={roleOf(n)} data-online={String(n.online)}>
                  <td><code title={n.id}>{short(n.id)}</code>{n.is_self && ' (this node)'}<br /><small>{n.api_url}</small></td>
                  <td><span class={`badge ${roleOf(n)}`}>{roleOf(n)}</span></td>
                  <td><span class={`badge ${n.online ? 'online' : 'offline'}`}>{n.online ? 'online' : 'offline'}</span>{n.drained && ' drained'}</td>
                  <td>{percent(n.resources.cpu)}{h != null && ` of ${h.cpu.cores} cores`}</td>
                  <td>{h?.cpu.load1?.toFixed(2) ?? '–'}</td>
                  <td>{percent(n.resources.memory)}{h != null && ` of ${bytes(h.memory.total)}`}</td>
                  <td>{h == null || h.gpus.length === 0 ? 'none' : h.gpus.map(g => `${g.name}: ${bytes(g.vram.used)} of ${bytes(g.vram.total)}`).join(', ')}</td>
                  <td>{percent(n.resources.disk)}{h != null && ` of ${bytes(h.disk.total)}`}</td>
                  <td>{n.models.join(', ')}</td>
                </tr>
              )
            })}
          </tbody>
        </table>
      </Section>
      <Section title='Topology'>
        <Topology nodes={list} />
      </Section>
    </>
  )
}
