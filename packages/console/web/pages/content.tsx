// Content: add files by drag and drop (with upload progress), browse directories, download, pin locally and in the cluster.
import { useState } from 'preact/hooks'
import { bytes, download, rpc, short, upload } from '../api.ts'
import { Section, Status, useAction, usePoll } from '../ui.tsx'
import type { ComponentChildren } from 'preact'

interface Added { name: string, cid: string, size: number }
interface Link { Name: string, Hash: string, Size: number, Type: number }
interface PinStatus { cid: string, name: string, status: string, peer_map: Record<string, { status: string, error: string }> }

function AddFiles ({ onAdded }: { onAdded: (file: Added) => void }): ComponentChildren {
  const [over, setOver] = useState(false)
  const [progress, setProgress] = useState<{ name: string, fraction: number }>()
  const action = useAction()
  /** Uploads one file, or a folder's files (named by their paths in it) as one directory; the root's line comes last. */
  const send = async (name: string, files: File[]): Promise<void> => {
    setProgress({ name, fraction: 0 })
    const form = new FormData()
    for (const file of files) form.append('file', file, encodeURIComponent(file.webkitRelativePath !== '' ? file.webkitRelativePath : file.name))
    const answer = await upload('/api/v0/add?pin=true', form, fraction => { setProgress({ name, fraction }) })
    const root = JSON.parse(answer.trim().split('\n').at(-1) as string) as { Name: string, Hash: string, Size: string }
    onAdded({ name, cid: root.Hash, size: Number(root.Size) })
  }
  const add = async (files: File[]): Promise<void> => action.run(async () => {
    for (const file of files) await send(file.name, [file])
    setProgress(undefined)
    return `added ${files.length} file${files.length === 1 ? '' : 's'}`
  })
  const addFolder = async (files: File[]): Promise<void> => action.run(async () => {
    if (files.length === 0) return
    const name = files[0].webkitRelativePath.split('/')[0]
    await send(name, files)
    setProgress(undefined)
    return `added ${name}/, ${files.length} file${files.length === 1 ? '' : 's'}`
  })
  return (
    <>
      <div
        class={`drop ${over ? 'over' : ''}`} data-dropzone
        onDragOver={e => { e.preventDefault(); setOver(true) }}
        onDragLeave={() => setOver(false)}
        onDrop={e => { e.preventDefault(); setOver(false); void add([...e.dataTransfer?.files ?? []]) }}
      >
        Drop files here, or <input type='file' multiple name='files' onChange={e => { void add([...e.currentTarget.files ?? []]); e.currentTarget.value = '' }} />
        {' '}or a folder: <input type='file' name='folder' {...{ webkitdirectory: true }} onChange={e => { void addFolder([...e.currentTarget.files ?? []]); e.currentTarget.value = '' }} />
      </div>
      {progress != null && <p>{progress.name}: <progress value={progress.fraction} max={1} /> {Math.round(progress.fraction * 100)}%</p>}
      <Status error={action.error} message={action.message} />
    </>
  )
}

function Browse ({ path, setPath }: { path: string, setPath: (p: string) => void }): ComponentChildren {
  const [input, setInput] = useState(path)
  const listing = usePoll(async () => path === '' ? [] : (await rpc<{ Objects: Array<{ Links: Link[] }> }>('ls', { arg: path })).Objects[0]?.Links ?? [], 0, [path])
  const action = useAction()
  return (
    <>
      <form onSubmit={e => { e.preventDefault(); setPath(input.trim()) }}>
        <label>CID or path <input name='browse' size={60} value={input} onInput={e => setInput(e.currentTarget.value)} /></label>
        <button type='submit'>Open</button>
        {path.includes('/') && <button type='button' class='secondary' onClick={() => { const up = path.slice(0, path.lastIndexOf('/')); setInput(up); setPath(up) }}>Up</button>}
      </form>
      <Status error={listing.error ?? action.error} />
      {listing.data != null && listing.data.length > 0 && (
        <table>
          <thead><tr><th>Name</th><th>CID</th><th>Size</th><th /></tr></thead>
          <tbody>
            {listing.data.map(l => (
              <tr key={l.Hash + l.Name}>
                <td>{l.Type === 1 ? <a href='#/content' onClick={e => { e.preventDefault(); const p = `${path}/${l.Name}`; setInput(p); setPath(p) }}>{l.Name}/</a> : l.Name}</td>
                <td><code>{short(l.Hash)}</code></td><td>{bytes(l.Size)}</td>
                <td>{l.Type !== 1 && <button class='secondary' onClick={() => { void action.run(async () => download(`/api/v0/cat?arg=${encodeURIComponent(`${path}/${l.Name}`)}`, l.Name)) }}>Download</button>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {listing.data != null && listing.data.length === 0 && path !== '' && (
        <p>
          A file. <button class='secondary' onClick={() => { void action.run(async () => download(`/api/v0/cat?arg=${encodeURIComponent(path)}`, path.split('/').at(-1) ?? path)) }}>Download</button>
        </p>
      )}
    </>
  )
}

function ClusterPins ({ preset }: { preset: string }): ComponentChildren {
  const [cid, setCid] = useState(preset)
  const [replication, setReplication] = useState('-1')
  const statuses = usePoll(async () => Object.values((await rpc<{ status: Record<string, PinStatus> }>('cluster/status')).status), 2000)
  const action = useAction()
  const peers = [...new Set((statuses.data ?? []).flatMap(s => Object.keys(s.peer_map)))].sort()
  return (
    <>
      <form onSubmit={e => {
        e.preventDefault()
        void action.run(async () => {
          const pin = await rpc<{ peers: string[] }>('cluster/pin/add', { arg: cid.trim(), replication_factor: Number(replication) })
          statuses.reload()
          return `allocated to ${pin.peers.length === 0 ? 'every node' : pin.peers.map(p => short(p, 4)).join(', ')}`
        })
      }}
      >
        <label>CID <input name='cluster-pin' size={50} value={cid} onInput={e => setCid(e.currentTarget.value)} /></label>
        <label>Replication factor (-1: every node) <input name='replication' type='number' min={-1} value={replication} onInput={e => setReplication(e.currentTarget.value)} /></label>
        <button type='submit' disabled={action.busy}>Pin in the cluster</button>
      </form>
      <Status error={action.error ?? statuses.error} message={action.message} />
      <table>
        <thead><tr><th>CID</th><th>Name</th><th>Status</th>{peers.map(p => <th key={p}><code title={p}>{short(p, 4)}</code></th>)}<th /></tr></thead>
        <tbody>
          {(statuses.data ?? []).map(s => (
            <tr key={s.cid} data-cluster-pin={s.cid} data-status={s.status}>
              <td><code title={s.cid}>{short(s.cid)}</code></td><td>{s.name}</td><td><span class={`badge ${s.status}`}>{s.status}</span></td>
              {peers.map(p => <td key={p} data-peer={p} data-peer-status={s.peer_map[p]?.status ?? ''} title={s.peer_map[p]?.error}>{s.peer_map[p] != null && <span class={`badge ${s.peer_map[p].status}`}>{s.peer_map[p].status}</span>}</td>)}
              <td><button class='secondary' onClick={() => { void action.run(async () => { await rpc('cluster/pin/rm', { arg: s.cid }); statuses.reload() }) }}>Unpin</button></td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  )
}

export function ContentPage (): ComponentChildren {
  const [added, setAdded] = useState<Added[]>([])
  const [path, setPath] = useState('')
  const [clusterCid, setClusterCid] = useState('')
  const pins = usePoll(async () => Object.keys((await rpc<{ Keys: Record<string, unknown> }>('pin/ls', { type: 'recursive' })).Keys ?? {}), 5000)
  const action = useAction()
  const pinned = new Set(pins.data ?? [])
  const pinAction = (cid: string, verb: 'add' | 'rm'): void => { void action.run(async () => { await rpc(`pin/${verb}`, { arg: cid }); pins.reload() }) }
  return (
    <>
      <Section title='Add'>
        <AddFiles onAdded={file => { setAdded(list => [file, ...list]); pins.reload() }} />
        {added.length > 0 && (
          <table>
            <thead><tr><th>File</th><th>CID</th><th>Size</th><th /></tr></thead>
            <tbody>
              {added.map(f => (
                <tr key={f.cid + f.name} data-added={f.name}>
                  <td>{f.name}</td><td><code data-cid={f.cid}>{f.cid}</code></td><td>{bytes(f.size)}</td>
                  <td>
                    <button class='secondary' onClick={() => setPath(f.cid)}>Open</button>{' '}
                    {pinned.has(f.cid) ? <button class='secondary' onClick={() => pinAction(f.cid, 'rm')}>Unpin</button> : <button class='secondary' onClick={() => pinAction(f.cid, 'add')}>Pin</button>}{' '}
                    <button class='secondary' onClick={() => setClusterCid(f.cid)}>Cluster pin…</button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <Status error={action.error ?? pins.error} />
      </Section>
      <Section title='Browse'>
        <Browse key={path} path={path} setPath={setPath} />
      </Section>
      <Section title='Pins on this node'>
        <ul>{(pins.data ?? []).map(cid => <li key={cid}><code>{cid}</code> <button class='secondary' onClick={() => pinAction(cid, 'rm')}>Unpin</button></li>)}</ul>
      </Section>
      <Section title='Cluster pins'>
        <ClusterPins key={clusterCid} preset={clusterCid} />
      </Section>
    </>
  )
}
