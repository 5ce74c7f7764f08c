/**
 * `node-daemon sdk` against a real in-process node: the Python client it
 * writes imports with python3 and calls the node (JSON bodies, query
 * parameters, path parameters, bytes, an error status); the TypeScript
 * client compiles with tsc, runs as compiled, and refuses at compile time a
 * path the API lacks and a body of the wrong type.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { COOKIE_FILE } from '@node-daemon/access'
import { rpc, startTestDaemon } from '../helpers/daemon.ts'
import { runCli } from '../helpers/process.ts'
import type { TestDaemon } from '../helpers/daemon.ts'

const run = promisify(execFile)
const TSC = createRequire(import.meta.url).resolve('typescript/bin/tsc')

/** The CIDv0 Kubo gives `text`, from the node's own add. */
async function kuboCid (d: TestDaemon, text: string, headers: Record<string, string> = {}): Promise<string> {
  const form = new FormData()
  form.append('file', new Blob([text]), 'file')
  const res = await rpc(d, 'add', { 'only-hash': 'true' }, { body: form, headers })
  return ((await res.json()) as { Hash: string }).Hash
}

describe('node-daemon sdk on a real node', { timeout: 240_000 }, () => {
  let d: TestDaemon
  let dir: string

  before(async () => {
    d = await startTestDaemon()
    dir = await mkdtemp(join(tmpdir(), 'node-daemon-sdk-'))
  })
  after(async () => {
    await d?.cleanup()
    if (dir != null) await rm(dir, { recursive: true, force: true })
  })

  it('writes a Python client that python3 imports and calls the node with', async () => {
    const out = join(dir, 'python')
    const cli = await runCli(['sdk', '--api', d.url, '--language', 'python', '--out', out, '--json'])
    assert.equal(cli.code, 0, cli.stderr)
    const answer = JSON.parse(cli.stdout)
    assert.deepEqual([answer.success, answer.language, answer.output_path], [true, 'python', out])
    assert.ok(answer.files_generated.includes(join(out, 'node_daemon_client', 'client.py')), cli.stdout)

    const script = `
import json, sys
sys.path.insert(0, ${JSON.stringify(out)})
from node_daemon_client import ApiError, Client, models
client = Client(${JSON.stringify(d.url)}, timeout=30)
added = client.api_add(body={"kwargs": {"content": "hello from python"}})
pins = client.pin_ls(type="recursive")
cat = client.cat(arg=added["cid"])
try:
    client.get_v1_models_by_name("no-such-model")
    status = None
except ApiError as err:
    status = err.status
print(json.dumps({"added": added, "pinned": added["cid"] in pins["Keys"], "cat": cat.decode(), "status": status, "typed": "kwargs" in models.ApiAddBody.__annotations__}))
`
    const { stdout } = await run('python3', ['-c', script], { timeout: 60_000 })
    const result = JSON.parse(stdout)
    assert.equal(result.added.success, true)
    assert.equal(result.added.cid, await kuboCid(d, 'hello from python'))
    assert.deepEqual([result.pinned, result.cat, result.status, result.typed], [true, 'hello from python', 404, true])
  })

  it('writes a TypeScript client that compiles with tsc, runs as compiled, and types the routes', async () => {
    const out = join(dir, 'typescript')
    const cli = await runCli(['sdk', '--api', d.url, '--language', 'typescript', '--out', out])
    assert.equal(cli.code, 0, cli.stderr)
    assert.deepEqual(cli.stdout.trim().split('\n').map(line => line.slice(out.length + 1)).sort(), ['client.ts', 'index.ts', 'package.json', 'schema.ts', 'tsconfig.json'])

    await writeFile(join(out, 'usage.ts'), `
import { ApiError, createNodeDaemonClient } from './index.ts'
const client = createNodeDaemonClient({ baseUrl: ${JSON.stringify(d.url)} })
const added = await client.post('/api/add', { body: { kwargs: { content: 'hello from typescript' } } })
const cid: string = added.cid
const text = await (await client.fetch('post', '/api/v0/cat', { query: { arg: [cid] } })).text()
let status = 0
try {
  await client.get('/api/v1/models/{name}', { path: { name: 'no-such-model' } })
} catch (err) {
  if (err instanceof ApiError) status = err.status
}
console.log(JSON.stringify({ cid, text, status }))
`)
    await run(process.execPath, [TSC, '-p', out], { timeout: 120_000 })
    const { stdout } = await run(process.execPath, [join(out, 'dist', 'usage.js')], { timeout: 60_000 })
    assert.deepEqual(JSON.parse(stdout), { cid: await kuboCid(d, 'hello from typescript'), text: 'hello from typescript', status: 404 })

    await mkdir(join(out, 'wrong'))
    await writeFile(join(out, 'wrong', 'wrong.ts'), `
import { createNodeDaemonClient } from '../index.ts'
const client = createNodeDaemonClient({ baseUrl: 'http://127.0.0.1:1' })
export const a = client.post('/api/no-such-route')
export const b = client.post('/api/add', { body: { kwargs: { content: 42 } } })
export const c = client.get('/api/v1/models/{name}')
`)
    const flags = ['--noEmit', '--strict', '--target', 'ES2022', '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--lib', 'ES2022,DOM', '--allowImportingTsExtensions', '--skipLibCheck']
    const failed = await run(process.execPath, [TSC, ...flags, join(out, 'wrong', 'wrong.ts')], { timeout: 120_000 }).then(() => undefined, (err: { stdout: string }) => err.stdout)
    assert.ok(failed != null, 'tsc takes calls the API does not')
    const lines = failed.split('\n').filter(line => line.includes('wrong.ts(')).map(line => /wrong\.ts\((\d+),/.exec(line)?.[1])
    assert.deepEqual([...new Set(lines)], ['4', '5', '6'], failed)
  })

  it("sends the Python client's token, which a node with credentials needs", async () => {
    const admin = { authorization: `Bearer ${(await readFile(join(d.repo, COOKIE_FILE), 'utf8')).trim()}` }
    const made = await fetch(`${d.url}/api/v1/auth/keys`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'sdk', permissions: ['content:write'] }), signal: AbortSignal.timeout(30_000) })
    const { key } = await made.json() as { key: string }
    const script = `
import json, sys
sys.path.insert(0, ${JSON.stringify(join(dir, 'python'))})
from node_daemon_client import ApiError, Client
added = Client(${JSON.stringify(d.url)}, token=sys.argv[1], timeout=30).api_add(body={"kwargs": {"content": "with a key"}})
try:
    Client(${JSON.stringify(d.url)}, timeout=30).api_add(body={"kwargs": {"content": "without one"}})
    refused = None
except ApiError as err:
    refused = [err.status, err.body["error_type"]]
print(json.dumps({"cid": added["cid"], "refused": refused}))
`
    const { stdout } = await run('python3', ['-c', script, key], { timeout: 60_000 })
    assert.deepEqual(JSON.parse(stdout), { cid: await kuboCid(d, 'with a key', admin), refused: [401, 'AuthenticationError'] })
  })

  it('refuses a language it does not write', async () => {
    const cli = await runCli(['sdk', '--api', d.url, '--language', 'rust', '--out', join(dir, 'rust')])
    assert.equal(cli.code, 1)
    assert.match(cli.stderr, /Allowed choices are typescript, python/)
  })
})
