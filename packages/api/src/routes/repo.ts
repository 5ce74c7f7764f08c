import { setTimeout as sleep } from 'node:timers/promises'
import { Type } from 'typebox'
import { duration } from '../args.ts'
import { BadRequestError } from '../errors.ts'
import { requestSignal, sendNdjson } from '../stream.ts'
import { rates, TrafficMeter, transferred } from '../traffic.ts'
import { kuboRoute } from './route.ts'
import type { Routes } from '../server.ts'
import type { Sample } from '../traffic.ts'
import type { Node } from '@node-daemon/daemon'

const StatQuery = Type.Object({
  'size-only': Type.Optional(Type.Boolean({ description: 'Leave out the count of blocks, which reads them all' })),
  human: Type.Optional(Type.Boolean({ description: 'Kubo formats sizes in its text output only; the JSON answer is the same' }))
})

const BwQuery = Type.Object({
  proto: Type.Optional(Type.String({ description: 'One libp2p protocol, e.g. /ipfs/bitswap/1.2.0' })),
  peer: Type.Optional(Type.String()),
  poll: Type.Optional(Type.Boolean({ description: 'A line every interval, until the client goes away' })),
  interval: Type.Optional(Type.String({ description: 'Kubo duration; default 1s' }))
})

function bwLine (now: Sample, before: Sample): object {
  const rate = rates(now, before)
  return { TotalIn: now.in, TotalOut: now.out, RateIn: rate.in, RateOut: rate.out }
}

/** Kubo's repo/stat and stats/repo answer, without Kubo's RepoPath: no answer names a path on the node's disk. */
function repoStatJson (stat: Awaited<ReturnType<Node['repoStat']>>): object {
  return { RepoSize: stat.repoSize, StorageMax: stat.storageMax, ...stat.numObjects == null ? {} : { NumObjects: stat.numObjects }, Version: stat.version }
}

/** The repo and the node's traffic: Kubo's repo/stat, stats/repo, repo/version, repo/verify and stats/bw. */
export const repoRoutes: Routes = (app, { node, shutdown }) => {
  for (const path of ['repo/stat', 'stats/repo']) {
    kuboRoute(app, {
      path,
      permission: 'cluster:read',
      tags: ['repo'],
      summary: 'Bytes of blocks in the repo (RepoSize), the GC limit (StorageMax), and how many blocks (NumObjects)',
      schema: { querystring: StatQuery },
      handler: async (request, reply) => {
        const sizeOnly = (request.query as { 'size-only'?: boolean })['size-only'] === true
        return repoStatJson(await node.repoStat({ sizeOnly, signal: requestSignal(reply) }))
      }
    })
  }

  kuboRoute(app, {
    path: 'repo/version',
    permission: 'cluster:read',
    tags: ['repo'],
    summary: "The version of the repo's layout, as Kubo's fs-repo version",
    schema: { querystring: Type.Object({ quiet: Type.Optional(Type.Boolean({ description: "Kubo's flag for its text output; the JSON answer is the same" })) }) },
    handler: async () => ({ Version: node.version().repo })
  })

  kuboRoute(app, {
    path: 'repo/verify',
    permission: 'cluster:read',
    tags: ['repo'],
    summary: 'Check every local block against its CID; NDJSON progress, each corrupt block named, then the verdict',
    handler: async (_request, reply) => {
      const signal = AbortSignal.any([requestSignal(reply), shutdown])
      return sendNdjson(reply, (async function * () {
        let checked = 0
        let corrupt = 0
        for await (const block of node.content.verifyBlocks({ signal })) {
          checked++
          if (block.error != null) {
            corrupt++
            yield { Msg: `block ${block.cid} was corrupt (${block.error})`, Progress: checked }
          } else {
            yield { Msg: '', Progress: checked }
          }
        }
        // Kubo ends a failed verify with an error after the lines; the stream's last line says it here.
        if (corrupt > 0) throw new BadRequestError(`verify complete, ${corrupt} blocks were corrupt`)
        yield { Msg: 'verify complete, all blocks validated.', Progress: 0 }
      })())
    }
  })

  // The rates of a stats/bw without `poll` are over the time since the one before it for the same protocol (or since the start).
  const meter = new TrafficMeter(node)
  kuboRoute(app, {
    path: 'stats/bw',
    permission: 'cluster:read',
    tags: ['repo'],
    summary: 'Bytes in and out over libp2p, and rates (bytes/s) since the previous call, or each interval with poll',
    schema: { querystring: BwQuery },
    handler: async (request, reply) => {
      const q = request.query as { proto?: string, peer?: string, poll?: boolean, interval?: string }
      if (q.peer != null) throw new BadRequestError('stats/bw by peer is not supported: traffic is counted by protocol only')
      if (q.poll !== true) {
        const { now, before } = await meter.read(q.proto)
        return bwLine(now, before)
      }
      const intervalMs = duration(q.interval, 'interval') ?? 1000
      if (intervalMs <= 0) throw new BadRequestError('interval must be positive')
      const signal = AbortSignal.any([requestSignal(reply), shutdown])
      return sendNdjson(reply, (async function * () {
        let before = await transferred(node, q.proto)
        while (!signal.aborted) {
          try {
            await sleep(intervalMs, undefined, { signal })
          } catch {
            return
          }
          const now = await transferred(node, q.proto)
          yield bwLine(now, before)
          before = now
        }
      })())
    }
  })
}
