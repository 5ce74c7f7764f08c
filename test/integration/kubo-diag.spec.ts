import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { create } from 'kubo-rpc-client'
import { waitFor } from '../helpers/cluster.ts'
import { formOf, rpc, startTestDaemon } from '../helpers/daemon.ts'
import { ndjson } from '../helpers/streams.ts'
import type { TestDaemon } from '../helpers/daemon.ts'
import type { KuboRPCClient } from 'kubo-rpc-client'

/** Reads NDJSON lines of a streaming answer until one passes `match`, bounded by the body's signal. */
async function lineMatching (res: Response, match: (line: any) => boolean): Promise<any> {
  const decoder = new TextDecoder()
  let text = ''
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    text += decoder.decode(chunk, { stream: true })
    const lines = text.split('\n')
    text = lines.pop() ?? ''
    for (const line of lines) {
      if (line !== '' && match(JSON.parse(line))) return JSON.parse(line)
    }
  }
  throw new Error('the stream ended without a matching line')
}

/** Unpacks a zip with Python's zipfile (python3 is among CI's tools), apart from the daemon's zip writer; returns the files by name. */
async function unzipped (bytes: Uint8Array): Promise<Map<string, Buffer>> {
  const dir = await mkdtemp(join(tmpdir(), 'node-daemon-profile-'))
  try {
    await writeFile(join(dir, 'profile.zip'), bytes)
    await promisify(execFile)('python3', ['-m', 'zipfile', '-e', 'profile.zip', 'out'], { cwd: dir, timeout: 30_000 })
    const files = new Map<string, Buffer>()
    for (const name of await readdir(join(dir, 'out'))) files.set(name, await readFile(join(dir, 'out', name)))
    return files
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

describe('Kubo commands of a node without peers: name/pubsub, routing/provide|put, diag and log', { timeout: 120_000 }, () => {
  let daemon: TestDaemon
  let client: KuboRPCClient

  before(async () => {
    daemon = await startTestDaemon()
    client = create({ url: `${daemon.url}/api/v0`, timeout: 30_000 })
  })

  after(async () => {
    await daemon?.cleanup()
  })

  it('says IPNS over pubsub is off, and refuses its subscriptions as Kubo does then', async () => {
    assert.deepEqual(await client.name.pubsub.state(), { enabled: false })
    await assert.rejects(client.name.pubsub.subs(), /IPNS pubsub subsystem is not enabled/)
    const cancel = await rpc(daemon, 'name/pubsub/cancel', { arg: `/ipns/${daemon.node.peerId}` })
    assert.equal(cancel.status, 400)
    assert.equal((await cancel.json()).Type, 'error')
  })

  it('cannot provide or query the DHT without peers, once the input is found good', async () => {
    const { cid } = await client.add('provided by nobody\n')
    const res = await rpc(daemon, 'routing/provide', { arg: cid.toString() })
    assert.equal(res.status, 409)
    assert.match((await res.json()).Message, /no connected peers/)
    // kad-dht would hold these until a peer came; they are refused at once.
    for (const [path, arg] of [['dht/query', daemon.node.peerId], ['routing/findprovs', cid.toString()], ['routing/findpeer', '12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq'], ['ping', '12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq']]) {
      const started = Date.now()
      assert.equal((await rpc(daemon, path, { arg })).status, 409, path)
      assert.ok(Date.now() - started < 5000, `${path} answered at once`)
    }
    assert.equal((await rpc(daemon, 'routing/provide', { arg: 'bafkqaaa-not' })).status, 400)
  })

  it('puts an IPNS record without peers only with allow-offline', async () => {
    const { cid } = await client.add('published by a node alone\n')
    await client.name.publish(cid)
    const key = `/ipns/${daemon.node.peerId}`
    const [value] = await ndjson(await rpc(daemon, 'routing/get', { arg: key }))
    assert.equal(value.Type, 5)
    const record = Buffer.from(value.Extra, 'base64')
    const offline = await rpc(daemon, 'routing/put', { arg: key }, { body: formOf([{ path: 'record', content: record }]) })
    assert.equal(offline.status, 400)
    assert.match((await offline.json()).Message, /can't put while offline/)
    const allowed = await rpc(daemon, 'routing/put', { arg: key, 'allow-offline': 'true' }, { body: formOf([{ path: 'record', content: record }]) })
    assert.deepEqual(await ndjson(allowed), [{ Extra: '', ID: daemon.node.peerId, Responses: null, Type: 5 }])
  })

  it('describes the system with diag/sys, naming no path of the host', async () => {
    const sys = await client.diag.sys() as any
    assert.equal(sys.runtime.os, process.platform)
    assert.equal(sys.runtime.arch, process.arch)
    assert.ok(sys.runtime.numcpu >= 1)
    assert.ok(sys.diskinfo.total_space > 0 && sys.diskinfo.free_space <= sys.diskinfo.total_space)
    assert.ok(sys.memory.virt > 0 && sys.memory.rss > 0)
    assert.ok(sys.net.interface_addresses.includes('/ip4/127.0.0.1'))
    assert.equal(sys.net.online, true)
    assert.equal(sys.ipfs_version, daemon.node.version().version)
    assert.ok(!JSON.stringify(sys).includes(daemon.repo), 'the repo path is not shown')
    const version = await client.repo.version()
    assert.equal(`fs-repo@${version}`, (await client.repo.stat()).version, 'repo/version is the version repo/stat names')
  })

  it('lists running requests with diag/cmds, and ended ones for the time set-time keeps them', async () => {
    const gone = new AbortController()
    const tail = await rpc(daemon, 'log/tail', { 'log-level': 'error' }, { signal: gone.signal })
    try {
      const running = await client.diag.cmds() as any[]
      const entry = running.find(e => e.Command === 'log/tail')
      assert.ok(entry != null, JSON.stringify(running))
      assert.deepEqual([entry.Active, entry.Options, entry.Args, entry.EndTime], [true, { 'log-level': 'error' }, [], '0001-01-01T00:00:00Z'])
      assert.ok(running.some(e => e.Command === 'diag/cmds' && e.Active === true), 'the request asking is running too')
    } finally {
      gone.abort()
      await tail.body?.cancel().catch(() => {})
    }
    // As Kubo, ended requests leave the log unless set-time keeps them.
    await waitFor('log/tail gone from the log', async () => !((await client.diag.cmds()) as any[]).some(e => e.Command === 'log/tail'))
    assert.equal((await rpc(daemon, 'diag/cmds/set-time', { arg: '1m' })).status, 200)
    await rpc(daemon, 'version', { arg: 'ignored' })
    const kept = (await client.diag.cmds() as any[]).find(e => e.Command === 'version')
    assert.ok(kept != null && kept.Active === false && kept.EndTime >= kept.StartTime, JSON.stringify(kept))
    assert.deepEqual(kept.Args, ['ignored'])
    assert.equal((await rpc(daemon, 'diag/cmds/clear')).status, 200)
    assert.ok(!(await client.diag.cmds() as any[]).some(e => e.Command === 'version'))
    assert.equal((await rpc(daemon, 'diag/cmds/set-time', { arg: 'soon' })).status, 400)
  })

  it('lists and sets log levels with log/ls and log/level', async () => {
    const subsystems = await client.log.ls()
    assert.ok(subsystems.includes('(default)') && subsystems.includes('api'), JSON.stringify(subsystems))
    assert.deepEqual(await (await rpc(daemon, 'log/level')).json(), { Levels: { '(default)': 'silent' } })
    assert.deepEqual(await client.log.level('api', 'debug'), { message: "Changed log level of 'api' to 'debug'\n" })
    assert.deepEqual(await (await rpc(daemon, 'log/level', { arg: 'api' })).json(), { Levels: { api: 'debug' } })
    assert.deepEqual(await (await rpc(daemon, 'log/level')).json(), { Levels: { '(default)': 'silent' } }, 'the default is unchanged')
    await client.log.level('all', 'warn')
    const all = await (await rpc(daemon, 'log/level', { arg: '*' })).json()
    assert.ok(Object.values(all.Levels).every(level => level === 'warn'), JSON.stringify(all))
    await client.log.level('api', 'default')
    assert.deepEqual(await (await rpc(daemon, 'log/level', { arg: 'api' })).json(), { Levels: { api: 'warn' } })
    assert.equal((await rpc(daemon, 'log/level', { arg: ['api', 'loud'] })).status, 400)
    assert.equal((await rpc(daemon, 'log/level', { arg: ['nothing', 'info'] })).status, 400)
    await client.log.level('all', 'silent')
  })

  it('streams the operator log with log/tail', async () => {
    await client.log.level('all', 'info')
    const gone = new AbortController()
    try {
      const res = await rpc(daemon, 'log/tail', { 'log-level': 'info' }, { signal: AbortSignal.any([gone.signal, AbortSignal.timeout(30_000)]) })
      assert.equal(res.status, 200)
      // A client error is logged as one line at info.
      assert.equal((await rpc(daemon, 'block/stat', { arg: 'not-a-cid' })).status, 400)
      const line = await lineMatching(res, l => typeof l.msg === 'string' && l.msg.includes('not-a-cid'))
      assert.equal(line.level, 30)
      assert.equal(line.component, 'api')
    } finally {
      gone.abort()
      await client.log.level('all', 'silent')
    }
    assert.equal((await rpc(daemon, 'log/tail', { 'log-level': 'loud' })).status, 400)
  })

  it('collects a zip of V8 profiles and version.json with diag/profile, honouring collectors and profile-time', async () => {
    const profiling = rpc(daemon, 'diag/profile', { 'profile-time': '500ms' })
    // Work for the samplers: blocks the node keeps (and indexes) while they run.
    for (let i = 0; i < 20; i++) await rpc(daemon, 'add', {}, { body: formOf([{ path: `p${i}.txt`, content: `kept while profiling ${i}\n` }]) })
    const res = await profiling
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('content-type'), 'application/zip')
    const files = await unzipped(new Uint8Array(await res.arrayBuffer()))
    assert.deepEqual([...files.keys()].sort(), ['cpu.cpuprofile', 'heap.heapprofile', 'version.json'])
    assert.deepEqual(JSON.parse(files.get('version.json')?.toString() ?? ''), await (await rpc(daemon, 'version')).json())
    const cpu = JSON.parse(files.get('cpu.cpuprofile')?.toString() ?? '')
    assert.ok(cpu.nodes.length > 0 && Array.isArray(cpu.samples), 'a V8 CPU profile')
    // Microseconds: the samplers ran for the profile-time asked.
    assert.ok(cpu.endTime - cpu.startTime >= 400_000, String(cpu.endTime - cpu.startTime))
    const heap = JSON.parse(files.get('heap.heapprofile')?.toString() ?? '')
    assert.ok(heap.head.children.length > 0 && Array.isArray(heap.samples), 'a V8 sampling heap profile')

    // Kubo's collector names pick the files; Go's own (goroutines, mutex...) give none here.
    const some = await rpc(daemon, 'diag/profile', { 'profile-time': '200ms', collectors: 'cpu,goroutines-stack,mutex' })
    assert.deepEqual([...(await unzipped(new Uint8Array(await some.arrayBuffer()))).keys()], ['cpu.cpuprofile'])
    // A profile-time of 0 skips the samplers, as Kubo's.
    const none = await rpc(daemon, 'diag/profile', { 'profile-time': '0' })
    assert.deepEqual([...(await unzipped(new Uint8Array(await none.arrayBuffer()))).keys()], ['version.json'])

    const unknown = await rpc(daemon, 'diag/profile', { collectors: 'cpu,bogus', 'profile-time': '0' })
    assert.equal(unknown.status, 400)
    assert.equal((await unknown.json()).Message, "unknown collector 'bogus'")
    assert.equal((await rpc(daemon, 'diag/profile', { 'profile-time': 'soon' })).status, 400)
    // One profile at a time, as Go's runtime allows one CPU profile.
    const first = rpc(daemon, 'diag/profile', { 'profile-time': '2s', collectors: 'cpu' })
    await waitFor('the first profile running', async () => ((await client.diag.cmds()) as any[]).some(e => e.Command === 'diag/profile' && e.Active === true))
    const second = await rpc(daemon, 'diag/profile', { 'profile-time': '1s', collectors: 'cpu' })
    // The two overlap: whichever reached the profiler first ran, the other was refused.
    assert.deepEqual([second.status, (await first).status].sort(), [200, 409])
  })
})
