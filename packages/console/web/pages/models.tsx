// Models: the cluster's registry with versions and replicas per node; import, pull to this node, delete, and a way to try one.
import { useState } from 'preact/hooks'
import { bytes, call, get, lines, short, upload } from '../api.ts'
import { Section, Status, useAction, usePoll } from '../ui.tsx'
import type { ComponentChildren } from 'preact'

export interface RegistryModel { name: string, kind: 'model' | 'dataset', cid: string, version: number, replicas: number, nodes: string[], replication_factor_min: number, replication_factor_max: number, status: string }
interface Tag { name: string, size: number, details: { format: string, family: string, parameter_size: string, quantization_level: string } }

function Import ({ onImported }: { onImported: () => void }): ComponentChildren {
  const [name, setName] = useState('')
  const [files, setFiles] = useState<File[]>([])
  const [progress, setProgress] = useState<number>()
  const action = useAction()
  const send = async (): Promise<void> => action.run(async () => {
    const form = new FormData()
    form.append('modelId', name.trim())
    for (const file of files) {
      // A picked directory's files are named dir/…: the model's paths start inside it.
      const path = file.webkitRelativePath === '' ? file.name : file.webkitRelativePath.split('/').slice(1).join('/')
      form.append('file', file, encodeURIComponent(path))
    }
    setProgress(0)
    await upload('/api/models/upload', form, setProgress)
    setProgress(undefined)
    onImported()
    return `imported ${name}`
  })
  return (
    <form onSubmit={e => { e.preventDefault(); void send() }}>
      <label>Name <input name='model-name' value={name} onInput={e => setName(e.currentTarget.value)} placeholder='my-model:latest' /></label>
      <label>Model directory (Hugging Face ONNX layout) <input type='file' name='model-dir' {...{ webkitdirectory: true }} onChange={e => setFiles([...e.currentTarget.files ?? []])} /></label>
      <label>or a .tar of it <input type='file' name='model-tar' accept='.tar,.tar.gz,.tgz' onChange={e => setFiles([...e.currentTarget.files ?? []])} /></label>
      <button type='submit' disabled={action.busy || name.trim() === '' || files.length === 0}>Import</button>
      {progress != null && <progress value={progress} max={1} />}
      <Status error={action.error} message={action.message} />
    </form>
  )
}

export function ModelsPage (): ComponentChildren {
  // The registry holds datasets too: the training page lists those.
  const registry = usePoll(async () => (await get<{ models: RegistryModel[] }>('/api/distributed/models')).models.filter(m => m.kind === 'model'), 5000)
  const tags = usePoll(async () => new Map((await get<{ models: Tag[] }>('/api/tags')).models.map(t => [t.name, t])), 5000)
  const loaded = usePoll(async () => new Set((await get<{ models: Array<{ name: string }> }>('/api/ps')).models.map(m => m.name)), 5000)
  const [pullName, setPullName] = useState('')
  const [pullStatus, setPullStatus] = useState<string>()
  const action = useAction()
  const pull = async (model: string): Promise<void> => action.run(async () => {
    const res = await call('/api/pull', { json: { model, stream: true } })
    for await (const line of lines<{ status: string, completed?: number, total?: number, error?: string }>(res)) {
      if (line.error != null) throw new Error(line.error)
      setPullStatus(`${model}: ${line.status}${line.total != null ? ` ${bytes(line.completed)} of ${bytes(line.total)}` : ''}`)
    }
    registry.reload()
    return `${model} is on this node`
  })
  const remove = async (model: string): Promise<void> => action.run(async () => {
    if (!confirm(`Remove ${model} from the registry?`)) return
    await call('/api/delete', { method: 'DELETE', json: { model } })
    registry.reload()
    return `removed ${model}`
  })
  return (
    <>
      <Section title='Registry'>
        <Status error={registry.error ?? action.error} message={action.busy ? pullStatus : action.message} />
        <table>
          <thead><tr><th>Model</th><th>Version</th><th>Format</th><th>Size</th><th>Replicas (min–max)</th><th>Nodes</th><th>Status</th><th /></tr></thead>
          <tbody>{(registry.data ?? []).map(m => {
            const tag = tags.data?.get(m.name)
            return (
              <tr key={m.name} data-model={m.name}>
                <td>{m.name}{loaded.data?.has(m.name) === true && <> <span class='badge'>loaded here</span></>}<br /><code title={m.cid}>{short(m.cid)}</code></td>
                <td>{m.version}</td>
                <td>{tag == null ? '–' : `${tag.details.format} ${tag.details.family} ${tag.details.parameter_size} ${tag.details.quantization_level}`}</td>
                <td>{bytes(tag?.size)}</td>
                <td>{m.replicas} ({m.replication_factor_min}–{m.replication_factor_max})</td>
                <td>{m.nodes.map(n => <div key={n} data-holder={n}><code title={n}>{short(n, 4)}</code></div>)}</td>
                <td><span class='badge'>{m.status}</span></td>
                <td>
                  <a href={`#/chat?model=${encodeURIComponent(m.name)}`}>Try it</a>{' '}
                  <button class='secondary' onClick={() => { void pull(m.name) }} disabled={action.busy}>Pull here</button>{' '}
                  <button class='secondary' onClick={() => { void remove(m.name) }} disabled={action.busy}>Delete</button>
                </td>
              </tr>
            )
          })}
          </tbody>
        </table>
      </Section>
      <Section title='Pull'>
        <form onSubmit={e => { e.preventDefault(); void pull(pullName.trim()) }}>
          <label>Model name <input name='pull' value={pullName} onInput={e => setPullName(e.currentTarget.value)} /></label>
          <button type='submit' disabled={action.busy || pullName.trim() === ''}>Pull to this node</button>
        </form>
      </Section>
      <Section title='Import'>
        <Import onImported={() => registry.reload()} />
      </Section>
    </>
  )
}
