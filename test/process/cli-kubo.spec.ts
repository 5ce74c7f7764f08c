import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { after, before, describe, it } from 'node:test'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { agreedLeader, pinStatus, ProcessCluster, waitFor } from '../helpers/cluster.ts'
import { BIN, runCli } from '../helpers/process.ts'
import type { Member } from '../helpers/cluster.ts'

/** Every file under `dir` with its bytes, and every directory, by relative path. */
async function tree (dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const path = relative(dir, join(entry.parentPath, entry.name))
    out[path] = entry.isDirectory() ? '<dir>' : (await readFile(join(dir, path))).toString('hex')
  }
  return out
}

/** A failed command says why in one line of stderr, with no stack. */
function failsCleanly (res: { code: number | null, stderr: string }, message: RegExp): void {
  assert.notEqual(res.code, 0)
  assert.notEqual(res.code, null)
  assert.match(res.stderr, message)
  assert.doesNotMatch(res.stderr, /\n\s+at /)
}

// Two daemons: Kubo's verbs run against the first, ipfs-cluster-ctl's across both.
describe('the command line against running daemons', () => {
  const cluster = new ProcessCluster()
  let a: Member
  let b: Member
  let dir: string
  const cli = async (...args: string[]): ReturnType<typeof runCli> => runCli([...args, '--repo', a.repo])

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'node-daemon-verbs-'))
    a = await cluster.add()
    b = await cluster.add()
    await agreedLeader([a, b], 60_000)
  })

  after(async () => {
    await cluster.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('get saves a directory as it was added, and a file of it; ls lists it', async () => {
    const src = join(dir, 'src')
    await mkdir(join(src, 'sub', 'deeper'), { recursive: true })
    await mkdir(join(src, 'empty'))
    await writeFile(join(src, 'a.txt'), 'a\n')
    // Several chunks, so that the file is read through its links.
    await writeFile(join(src, 'sub', 'big.bin'), randomBytes(700_000))
    await writeFile(join(src, 'sub', 'deeper', 'c.txt'), '')
    const added = await cli('add', '-r', '-q', src)
    assert.equal(added.code, 0, added.stderr)
    const cid = added.stdout.trim()

    const out = join(dir, 'out')
    const got = await cli('get', cid, '-o', out)
    assert.equal(got.code, 0, got.stderr)
    assert.equal(got.stdout, `Saving file(s) to ${out}\n`)
    assert.deepEqual(await tree(out), await tree(src))

    const one = await cli('get', `/ipfs/${cid}/sub/big.bin`, '-o', join(dir, 'big.bin'), '--json')
    assert.equal(one.code, 0, one.stderr)
    assert.deepEqual(JSON.parse(one.stdout), { Path: join(dir, 'big.bin'), Size: 700_000 })
    assert.deepEqual(await readFile(join(dir, 'big.bin')), await readFile(join(src, 'sub', 'big.bin')))

    const ls = await cli('ls', cid)
    const lines = ls.stdout.trim().split('\n')
    assert.deepEqual(lines.map(l => l.split(' ').slice(1).join(' ')), ['2 a.txt', '- empty/', '- sub/'])
    const json = JSON.parse((await cli('ls', cid, '--json')).stdout)
    assert.deepEqual(json.Objects[0].Links.map((l: { Name: string }) => l.Name), ['a.txt', 'empty', 'sub'])
  })

  it('get refuses an archive entry that climbs out of its directory, and writes nothing outside', async () => {
    // A UnixFS directory whose one link is named "..", stored as a raw dag-pb block.
    const file = await cli('block', 'put', await fileOf('escaped\n'))
    const node = dagPb.encode(dagPb.prepare({ Data: new UnixFS({ type: 'directory' }).marshal(), Links: [{ Name: '..', Hash: CID.parse(file.stdout.trim()), Tsize: 8 }] }))
    const cid = CID.createV1(dagPb.code, await sha256.digest(node)).toString()
    const put = await cli('block', 'put', '--cid-codec', 'dag-pb', await fileOf(node))
    assert.equal(put.stdout.trim(), cid, put.stderr)
    const target = join(dir, 'evil', 'inside')
    failsCleanly(await cli('get', cid, '-o', target), /leaves the directory it unpacks into/)
    // The ".." entry would have been the file dir/evil; the top directory alone was made.
    assert.deepEqual(await tree(join(dir, 'evil')), { inside: '<dir>' })
  })

  let fileCount = 0
  async function fileOf (bytes: string | Uint8Array): Promise<string> {
    const path = join(dir, `input-${fileCount++}`)
    await writeFile(path, bytes)
    return path
  }

  it('pin add, ls and rm; repo gc removes what is no longer pinned', async () => {
    const added = await cli('add', '-q', '--no-pin', await fileOf('to pin\n'))
    const cid = added.stdout.trim()
    assert.equal((await cli('pin', 'add', cid)).stdout, `pinned ${cid} recursively\n`)
    assert.match((await cli('pin', 'ls', '--type', 'recursive')).stdout, new RegExp(`^${cid} recursive$`, 'm'))
    const lines = (await cli('pin', 'ls', cid, '--json')).stdout.trim().split('\n').map(l => JSON.parse(l))
    assert.deepEqual(lines, [{ Cid: cid, Type: 'recursive' }])
    assert.equal((await cli('pin', 'rm', cid)).stdout, `unpinned ${cid}\n`)
    const gc = await cli('repo', 'gc')
    assert.equal(gc.code, 0, gc.stderr)
    // Blocks are kept by multihash, so GC names them as raw CIDv1s, as Kubo's does.
    assert.match(gc.stdout, new RegExp(`^removed ${CID.createV1(0x55, CID.parse(cid).multihash).toString()}$`, 'm'))
  })

  it('block and dag put, get, stat and rm', async () => {
    const put = await cli('block', 'put', await fileOf('a block'))
    const cid = put.stdout.trim()
    assert.match(cid, /^bafk\w+$/)
    assert.equal((await cli('block', 'get', cid)).stdout, 'a block')
    assert.equal((await cli('block', 'stat', cid)).stdout, `Key: ${cid}\nSize: 7\n`)
    assert.deepEqual(JSON.parse((await cli('block', 'stat', cid, '--json')).stdout), { success: true, cid, size: 7, Key: cid, Size: 7 })
    assert.equal((await cli('block', 'rm', cid)).stdout, `removed ${cid}\n`)
    failsCleanly(await cli('block', 'rm', cid), /not removed/)

    const dag = await cli('dag', 'put', await fileOf('{"hello":"world","n":[1,2]}'))
    assert.equal(dag.code, 0, dag.stderr)
    assert.match(dag.stdout, /^bafyrei\w+\n$/)
    assert.deepEqual(JSON.parse((await cli('dag', 'get', dag.stdout.trim())).stdout), { hello: 'world', n: [1, 2] })
    assert.equal((await cli('dag', 'get', `${dag.stdout.trim()}/hello`)).stdout, '"world"')
  })

  it('key gen, list and rm; name publish and resolve', async () => {
    const id = (await cli('key', 'gen', 'cli-key')).stdout.trim()
    assert.match(id, /^k51\w+$|^12D3KooW\w+$/)
    assert.match((await cli('key', 'list')).stdout, /^cli-key$/m)
    assert.match((await cli('key', 'list', '-l')).stdout, new RegExp(`^${id} cli-key$`, 'm'))
    const cid = (await cli('add', '-q', await fileOf('published\n'))).stdout.trim()
    const published = await cli('name', 'publish', cid, '--key', 'cli-key')
    assert.equal(published.code, 0, published.stderr)
    assert.equal(published.stdout, `Published to ${id}: /ipfs/${cid}\n`)
    // The node that published a name resolves it to the path as published (a CIDv0 stays v0), as Kubo.
    assert.equal((await cli('name', 'resolve', id)).stdout, `/ipfs/${cid}\n`)
    assert.equal((await cli('key', 'rm', 'cli-key')).stdout, 'cli-key\n')
    assert.doesNotMatch((await cli('key', 'list')).stdout, /cli-key/)
  })

  it('swarm peers and connect, id and version', async () => {
    const connect = await cli('swarm', 'connect', b.swarmAddr)
    assert.equal(connect.stdout, `connect ${b.peerId} success\n`, connect.stderr)
    assert.match((await cli('swarm', 'peers')).stdout, new RegExp(`/p2p/${b.peerId}$`, 'm'))
    assert.equal(JSON.parse((await cli('id')).stdout).ID, a.peerId)
    const other = JSON.parse((await cli('id', b.peerId, '--json')).stdout)
    assert.equal(other.ID, b.peerId)
    assert.equal(other.success, true)
    const version = JSON.parse(await readFile(new URL('../../packages/daemon/package.json', import.meta.url), 'utf8')).version
    assert.equal((await cli('version')).stdout, `node-daemon version ${version}\n`)
    assert.equal(JSON.parse((await cli('version', '--json')).stdout).Version, version)
  })

  it('pubsub sub prints what pubsub pub sends; pubsub ls lists the topic', async () => {
    const sub = spawn(process.execPath, [BIN, 'pubsub', 'sub', 'cli-topic', '--repo', a.repo], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    sub.stdout.on('data', (d: Buffer) => { out += d.toString() })
    try {
      await waitFor('the subscription', async () => (await cli('pubsub', 'ls')).stdout.includes('cli-topic'), 60_000)
      const pub = await cli('pubsub', 'pub', 'cli-topic', await fileOf('hello topic\n'))
      assert.equal(pub.code, 0, pub.stderr)
      await waitFor('the message', async () => out === 'hello topic\n', 30_000)
    } finally {
      sub.kill('SIGKILL')
      await once(sub, 'exit').catch(() => {})
    }
  })

  it('errors: a clear message and exit code, never a stack', async () => {
    failsCleanly(await cli('cat', 'not-a-cid'), /^Error: invalid CID "not-a-cid"\n$/)
    failsCleanly(await cli('get', 'not-a-cid', '-o', join(dir, 'nothing')), /^Error: invalid CID/)
    failsCleanly(await cli('block', 'stat', 'bafkqaaa!'), /^Error: invalid CID/)
    failsCleanly(await cli('cluster', 'status', 'not-a-cid'), /^Error: .*CID/i)
    failsCleanly(await cli('pin', 'add'), /error: missing required argument 'path'/)
    failsCleanly(await runCli(['no-such-verb']), /unknown command 'no-such-verb'/)
    failsCleanly(await cli('cluster', 'pin', 'add', 'x', '--replication', '0'), /argument '0' is invalid\. a count of peers/)
    failsCleanly(await cli('cluster', 'pin', 'add', 'x', '--wait-timeout', 'soon'), /--wait-timeout: "soon" is not a duration/)
    failsCleanly(await cli('key', 'rm', 'no-such-key'), /^Error: .*no-such-key/)
  })

  it('cluster peers ls, pin add --wait until pinned on both, status per peer, pins and pin rm', async () => {
    const peers = await cli('cluster', 'peers', 'ls')
    assert.equal(peers.code, 0, peers.stderr)
    assert.match(peers.stdout, /^PEER ID\s+ROLE\s+STATE\s+API$/m)
    for (const m of [a, b]) assert.match(peers.stdout, new RegExp(`^${m.peerId}.*online`, 'm'))

    const cid = (await cli('add', '-q', '--no-pin', await fileOf(randomBytes(300_000)))).stdout.trim()
    const pinned = await cli('cluster', 'pin', 'add', cid, '--replication', '2', '--name', 'cli-pin', '--wait', '--wait-timeout', '2m')
    assert.equal(pinned.code, 0, pinned.stderr)
    // Pinned on both the moment --wait returns.
    const status = await pinStatus(a, cid)
    assert.equal(status.status, 'pinned')
    assert.deepEqual(Object.keys(status.peer_map).sort(), [a.peerId, b.peerId].sort())
    assert.ok(Object.values(status.peer_map).every(p => p.status === 'pinned'))
    assert.match(pinned.stdout, new RegExp(`^${cid} \\| cli-pin: PINNED$`, 'm'))

    const human = await cli('cluster', 'status', cid)
    for (const m of [a, b]) assert.match(human.stdout, new RegExp(`^    > ${m.peerId} : PINNED \\| `, 'm'))
    const json = JSON.parse((await runCli(['cluster', 'status', cid, '--json', '--repo', b.repo])).stdout)
    assert.equal(json.status[cid].status, 'pinned')

    const pins = await cli('cluster', 'pins')
    assert.match(pins.stdout, new RegExp(`^${cid}\\s+cli-pin\\s+2\\.\\.2\\s+`, 'm'))
    assert.equal((await cli('cluster', 'pin', 'rm', cid)).stdout, `unpinned ${cid}\n`)
    assert.doesNotMatch((await cli('cluster', 'pins')).stdout, new RegExp(cid))
  })
})
