import AdmZip from 'adm-zip'
import { Type } from 'typebox'
import { args, delimited, duration, firstArg } from '../args.ts'
import { BadRequestError } from '../errors.ts'
import { requestSignal, streamLive } from '../stream.ts'
import { kuboRoute } from './route.ts'
import { kuboVersion } from './system.ts'
import { DEFAULT_SUBSYSTEM } from '@node-daemon/daemon'
import type { RequestLog } from '../request-log.ts'
import type { Routes } from '../server.ts'

/** Go's zero time, which Kubo's request log gives a request still running as its EndTime. */
const ZERO_TIME = '0001-01-01T00:00:00Z'
/** Kubo's names of every subsystem at once. */
const ALL = new Set(['*', 'all'])

/**
 * Kubo's diag/profile collectors (all of them by default), and the file each
 * that has a Node counterpart gives: V8's profiles in the JSON forms Chrome
 * DevTools reads, where Kubo's are pprof.
 */
const COLLECTORS: Record<string, string | undefined> = {
  version: 'version.json',
  cpu: 'cpu.cpuprofile',
  heap: 'heap.heapprofile',
  // Go's runtime's own: goroutines, allocations apart from the live heap, lock contention, the execution trace, the binary.
  'goroutines-stack': undefined,
  'goroutines-pprof': undefined,
  allocs: undefined,
  bin: undefined,
  mutex: undefined,
  block: undefined,
  trace: undefined
}

/**
 * Kubo's diag/sys, diag/profile, diag/cmds (with clear and set-time),
 * log/level, log/ls and log/tail: the node's system facts and profiles, the
 * Kubo RPC requests it serves, and its operator log.
 */
export function diagnosticsRoutes (requests: RequestLog): Routes {
  return (app, { node, shutdown }) => {
    kuboRoute(app, {
      path: 'diag/sys',
      permission: 'cluster:read',
      tags: ['diagnostics'],
      summary: 'The runtime, the repo\'s disk, memory and network interfaces (Kubo\'s fields that Node has; no host path)',
      handler: async () => node.diagnostics()
    })

    kuboRoute(app, {
      path: 'diag/profile',
      permission: 'cluster:admin',
      tags: ['diagnostics'],
      summary: 'A zip of this process\'s profiles, as Kubo\'s: version.json, and over profile-time a V8 CPU profile (cpu.cpuprofile) and sampling heap profile (heap.heapprofile); Go-only collectors give nothing',
      schema: {
        querystring: Type.Object({
          collectors: Type.Optional(Type.Array(Type.String(), { description: `Comma-separated, of ${Object.keys(COLLECTORS).join(', ')}; all by default` })),
          'profile-time': Type.Optional(Type.String({ default: '30s', description: 'How long the samplers run; 0 skips them, as Kubo' })),
          'mutex-profile-fraction': Type.Optional(Type.Integer({ description: 'Tunes Go\'s mutex collector, which Node has no counterpart of' })),
          'block-profile-rate': Type.Optional(Type.String({ description: 'Tunes Go\'s block collector, which Node has no counterpart of' }))
        })
      },
      handler: async (request, reply) => {
        const q = request.query as { collectors?: string[], 'profile-time'?: string, 'block-profile-rate'?: string }
        const collectors = delimited(q.collectors) ?? Object.keys(COLLECTORS)
        const unknown = collectors.find(name => !Object.hasOwn(COLLECTORS, name))
        if (unknown != null) throw new BadRequestError(`unknown collector '${unknown}'`)
        const durationMs = duration(q['profile-time'] ?? '30s', 'profile-time') ?? 0
        duration(q['block-profile-rate'], 'block-profile-rate')
        // As Kubo's, the samplers run only for a time above zero.
        const sampled = (name: string): boolean => durationMs > 0 && collectors.includes(name)
        const zip = new AdmZip()
        if (sampled('cpu') || sampled('heap')) {
          const profiles = await node.profile({ durationMs, cpu: sampled('cpu'), heap: sampled('heap'), signal: AbortSignal.any([requestSignal(reply), shutdown]) })
          if (profiles.cpu != null) zip.addFile('cpu.cpuprofile', Buffer.from(JSON.stringify(profiles.cpu)))
          if (profiles.heap != null) zip.addFile('heap.heapprofile', Buffer.from(JSON.stringify(profiles.heap)))
        }
        if (collectors.includes('version')) zip.addFile('version.json', Buffer.from(JSON.stringify(kuboVersion(node.version())) + '\n'))
        return reply.type('application/zip').send(zip.toBuffer())
      }
    })

    kuboRoute(app, {
      path: 'diag/cmds',
      permission: 'cluster:admin',
      tags: ['diagnostics'],
      summary: 'The Kubo RPC requests running now, and those ended within the time diag/cmds/set-time keeps them (none by default, as Kubo)',
      schema: { querystring: Type.Object({ verbose: Type.Optional(Type.Boolean({ description: "Kubo's flag for its text output; the JSON answer is the same" })) }) },
      handler: async () => requests.report().map(entry => ({
        StartTime: entry.startTime.toISOString(),
        EndTime: entry.endTime?.toISOString() ?? ZERO_TIME,
        Active: entry.endTime == null,
        Command: entry.command,
        Options: entry.options,
        Args: entry.args,
        ID: entry.id
      }))
    })

    kuboRoute(app, {
      path: 'diag/cmds/clear',
      permission: 'cluster:admin',
      tags: ['diagnostics'],
      summary: 'Forget the requests that ended',
      handler: async (_request, reply) => {
        requests.clear()
        return reply.code(200).send()
      }
    })

    kuboRoute(app, {
      path: 'diag/cmds/set-time',
      permission: 'cluster:admin',
      tags: ['diagnostics'],
      summary: 'How long ended requests stay in the log (a Kubo duration such as 1m)',
      schema: { querystring: Type.Object({ arg: Type.Optional(Type.Array(Type.String(), { description: 'Duration' })) }) },
      handler: async (request, reply) => {
        const ms = duration(firstArg(request, 'time'), 'time') ?? 0
        requests.setKeepTime(ms)
        return reply.code(200).send()
      }
    })

    kuboRoute(app, {
      path: 'log/ls',
      permission: 'cluster:read',
      tags: ['diagnostics'],
      summary: 'The subsystems of the operator log: (default), its root, and each component logger (api)',
      handler: async () => ({ Strings: node.logs.subsystems() })
    })

    kuboRoute(app, {
      path: 'log/level',
      permission: 'cluster:admin',
      tags: ['diagnostics'],
      summary: 'The level of a subsystem (all with * or all; the default without one), or with a level, set it until restart',
      schema: { querystring: Type.Object({ arg: Type.Optional(Type.Array(Type.String(), { description: 'Subsystem, then level' })) }) },
      handler: async (request) => {
        const [given, level] = args(request)
        const subsystem = given == null || given === '' ? DEFAULT_SUBSYSTEM : ALL.has(given) ? '*' : given
        if (level != null && level !== '') {
          node.logs.setLevel(subsystem, level)
          return { Message: `Changed log level of '${subsystem}' to '${level}'\n` }
        }
        return { Levels: node.logs.levels(subsystem) }
      }
    })

    kuboRoute(app, {
      path: 'log/tail',
      permission: 'cluster:admin',
      tags: ['diagnostics'],
      summary: 'The operator log\'s JSON lines as they are logged (at log-level or above, among what its levels let through), until the client goes away',
      schema: { querystring: Type.Object({ 'log-level': Type.Optional(Type.String({ description: 'Only lines at this level or above' })) }) },
      handler: async (request, reply) => {
        const level = (request.query as { 'log-level'?: string })['log-level']
        const signal = AbortSignal.any([requestSignal(reply), shutdown])
        const lines = node.logs.tail({ level: level === '' ? undefined : level, signal })
        await streamLive(reply, lines, signal)
      }
    })
  }
}
