/**
 * A client command starts in a fraction of a second because its import graph
 * stays clear of the node's heavy packages: main.ts imports the node only
 * inside init, start and worker, and takes small helpers from light subpaths
 * (@node-daemon/daemon/settings, @node-daemon/api/tar, ...). This records
 * every module the command resolves, through a resolve hook loaded with
 * --import, and fails on any of them.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { after, before, describe, it } from 'node:test'
import { spawnDaemon, stopDaemon } from '../../../test/helpers/process.ts'

const BIN = fileURLToPath(new URL('../../../bin/node-daemon.ts', import.meta.url))
const run = promisify(execFile)

/** The engines, Helia, libp2p and Fastify: each alone takes a second or more to load on a busy machine. */
const HEAVY = /\/node_modules\/(onnxruntime-node|onnxruntime-common|node-llama-cpp|helia|@helia\/[^/]+|libp2p|@libp2p\/[^/]+|fastify|@fastify\/[^/]+)\//

// Writes the URL of every module resolved into the file $RESOLVED when the process exits.
const RECORDER = `data:text/javascript,${encodeURIComponent(`
import { registerHooks } from 'node:module'
import { writeFileSync } from 'node:fs'
const urls = []
registerHooks({ resolve: (specifier, context, next) => { const r = next(specifier, context); urls.push(r.url); return r } })
process.on('exit', () => { writeFileSync(process.env.RESOLVED, urls.join('\\n')) })
`)}`

describe('a client command', () => {
  let dir: string

  before(async () => { dir = await mkdtemp(join(tmpdir(), 'node-daemon-startup-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  async function resolved (args: string[]): Promise<string[]> {
    const file = join(dir, `${args[0]}.txt`)
    const env = { ...process.env, RESOLVED: file, NODE_DAEMON_REPO: dir }
    await run(process.execPath, ['--import', RECORDER, BIN, ...args], { env, timeout: 60_000 }).catch((err: { code?: number }) => {
      if (err.code !== 1) throw err
    })
    return (await readFile(file, 'utf8')).split('\n')
  }

  for (const args of [['--version'], ['id', '--api', 'http://127.0.0.1:1']]) {
    it(`node-daemon ${args.join(' ')} loads no engine, Helia, libp2p or Fastify`, async () => {
      const urls = await resolved(args)
      assert.ok(urls.some(u => u.endsWith('/packages/cli/src/main.ts')), 'the hook saw the command load')
      assert.deepEqual(urls.filter(u => HEAVY.test(u)), [])
    })
  }
})

/**
 * Packages a node loads only when asked for what needs them: what a module
 * loads stays in the heap for the process's life, and every full collection
 * marks it (the TypeScript compiler alone, brought by the SDK generator, was
 * 18 MB of source kept twice).
 */
const ON_DEMAND = /\/node_modules\/(typescript|openapi-typescript|@redocly\/[^/]+|node-llama-cpp|@lancedb\/[^/]+|apache-arrow)\//

describe('a node', () => {
  let dir: string

  before(async () => { dir = await mkdtemp(join(tmpdir(), 'node-daemon-startup-node-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('loads the GGUF engine, the SDK generator and the vector store only when asked for them', async () => {
    const file = join(dir, 'start.txt')
    const daemon = await spawnDaemon(join(dir, 'repo'), [], 60_000, { env: { NODE_OPTIONS: `--import=${RECORDER}`, RESOLVED: file } })
    const code = await stopDaemon(daemon)
    // Once (one CI run in several), the daemon ended without its exit event: say how, for the next time.
    const list = await readFile(file, 'utf8').catch((err: Error) => {
      throw new Error(`the daemon wrote no list (exit code ${code}, signal ${daemon.child.signalCode}): ${daemon.stderr().slice(-2000)}`, { cause: err })
    })
    const urls = list.split('\n')
    assert.ok(urls.some(u => u.includes('/packages/daemon/src/')), 'the hook saw the node load')
    assert.deepEqual(urls.filter(u => ON_DEMAND.test(u)), [])
  })
})
