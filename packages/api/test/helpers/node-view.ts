import type { NodeView } from '@node-daemon/cluster'

/** A cluster node as the API reads it, online and idle unless `over` says otherwise. */
export function nodeView (id: string, over: Partial<NodeView> = {}): NodeView {
  return {
    id,
    addrs: [],
    role: 'voter',
    online: true,
    joinedAt: '2025-01-01T00:00:00.000Z',
    registered: false,
    allocation: { cpu: 10, memory: 10, gpu: 10, storage: 10 },
    drained: false,
    connected: true,
    pins: { allocated: 0, pending: 0 },
    matchIndex: 0,
    isLeader: false,
    isSelf: false,
    ...over
  }
}
