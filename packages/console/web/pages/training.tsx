// Training: datasets, a form that starts a session, and live loss, accuracy and samples/s charts fed by /api/v1/ws.
import { useEffect, useRef, useState } from 'preact/hooks'
import UPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'
import { call, get, socket, upload } from '../api.ts'
import { Section, Status, useAction, usePoll } from '../ui.tsx'
import { SessionsTable } from './jobs.tsx'
import type { RegistryModel } from './models.tsx'
import type { Session } from './jobs.tsx'
import type { ComponentChildren } from 'preact'

interface Step { session_id: string, step: number, loss: number, accuracy: number | null, samples_per_second: number }

/** One series over the steps; its values are also in data-values, for whoever reads the page rather than looks at it. */
function Chart ({ name, color, steps, values }: { name: string, color: string, steps: number[], values: Array<number | null> }): ComponentChildren {
  const box = useRef<HTMLDivElement>(null)
  const plot = useRef<UPlot | undefined>(undefined)
  useEffect(() => {
    plot.current = new UPlot({
      width: 360,
      height: 200,
      title: name,
      scales: { x: { time: false } },
      // Room for the labels of thousands of samples a second.
      axes: [{}, { size: 70 }],
      series: [{ label: 'step' }, { label: name, stroke: color, width: 2 }]
    }, [[], []], box.current as HTMLDivElement)
    return () => { plot.current?.destroy() }
  }, [])
  useEffect(() => { plot.current?.setData([steps, values]) }, [steps, values])
  return <div ref={box} data-chart={name} data-values={JSON.stringify(values)} />
}

function Datasets ({ onAdded }: { onAdded: (cid: string) => void }): ComponentChildren {
  const registered = usePoll(async () => (await get<{ models: RegistryModel[] }>('/api/distributed/models')).models.filter(m => m.kind === 'dataset'), 5000)
  const [name, setName] = useState('')
  const [file, setFile] = useState<File>()
  const action = useAction()
  const add = async (): Promise<void> => action.run(async () => {
    const form = new FormData()
    form.append('name', name.trim() !== '' ? name.trim() : file?.name ?? 'dataset')
    form.append('file', file as File, file?.name)
    const { cid } = JSON.parse(await upload('/api/v0/ai/dataset/add', form, () => {})) as { cid: string }
    onAdded(cid)
    registered.reload()
    return `dataset ${cid}`
  })
  return (
    <>
      <form onSubmit={e => { e.preventDefault(); void add() }}>
        <label>Dataset name <input name='dataset-name' value={name} onInput={e => setName(e.currentTarget.value)} /></label>
        <label>File (JSONL with a text field, or safetensors of features and labels) <input type='file' name='dataset-file' onChange={e => setFile(e.currentTarget.files?.[0])} /></label>
        <button type='submit' disabled={action.busy || file == null}>Add dataset</button>
      </form>
      <Status error={action.error ?? registered.error} message={action.message} />
      <ul>
        {(registered.data ?? []).map(d => (
          <li key={d.name}>{d.name} <code>{d.cid}</code> on {d.replicas} node{d.replicas === 1 ? '' : 's'} <button class='secondary' onClick={() => onAdded(d.cid)}>Use</button></li>
        ))}
      </ul>
    </>
  )
}

export function TrainingPage (): ComponentChildren {
  const sessions = usePoll(async () => (await get<{ sessions: Session[] }>('/api/v1/training/sessions')).sessions, 3000)
  const [form, setForm] = useState({ dataset: '', model: '', epochs: '3', batch_size: '16', learning_rate: '0.01', nodes: '1' })
  const [session, setSession] = useState<string>()
  // Steps of every session this page saw, from one socket opened with the page, so that a session started here misses none.
  const [steps, setSteps] = useState<Record<string, Step[]>>({})
  const action = useAction()
  const shown = session ?? sessions.data?.[0]?.session_id

  useEffect(() => {
    const ws = socket('/api/v1/ws')
    ws.onmessage = (e) => {
      const event = JSON.parse(e.data as string) as { type: string, data: Step }
      if (event.type === 'training_progress') setSteps(all => ({ ...all, [event.data.session_id]: [...all[event.data.session_id] ?? [], event.data] }))
      if (event.type === 'model_update') sessions.reload()
    }
    return () => { ws.close() }
  }, [])

  const field = (key: keyof typeof form, label: string, numeric = false): ComponentChildren =>
    <label>{label} <input name={key} inputMode={numeric ? 'decimal' : 'text'} value={form[key]} onInput={e => setForm({ ...form, [key]: e.currentTarget.value })} /></label>

  const start = async (): Promise<void> => action.run(async () => {
    const model = form.model.trim()
    const body = {
      dataset: form.dataset.trim(),
      ...(model === '' ? {} : { model: model.startsWith('{') ? JSON.parse(model) : model }),
      epochs: Number(form.epochs),
      batch_size: Number(form.batch_size),
      learning_rate: Number(form.learning_rate),
      nodes: Number(form.nodes)
    }
    const { session_id: id } = await get<{ session_id: string }>('/api/v1/training/start', { json: body })
    setSession(id)
    sessions.reload()
    return `started ${id}`
  })
  const control = (verb: 'stop' | 'pause' | 'resume'): void => {
    void action.run(async () => { await call(`/api/v1/training/${verb}`, { json: { session_id: shown } }); sessions.reload() })
  }
  const current = sessions.data?.find(s => s.session_id === shown)
  const series = steps[shown ?? ''] ?? []
  const x = series.map(s => s.step)
  return (
    <>
      <Section title='Datasets'>
        <Datasets onAdded={cid => setForm(f => ({ ...f, dataset: cid }))} />
      </Section>
      <Section title='Start training'>
        <form onSubmit={e => { e.preventDefault(); void start() }}>
          {field('dataset', 'Dataset (CID or name)')}
          {field('model', 'Model (name, CID or config JSON; empty: the default)')}
          {field('epochs', 'Epochs', true)}
          {field('batch_size', 'Batch size', true)}
          {field('learning_rate', 'Learning rate', true)}
          {field('nodes', 'Nodes', true)}
          <button type='submit' disabled={action.busy || form.dataset.trim() === ''}>Start</button>
        </form>
        <Status error={action.error ?? sessions.error} message={action.message} />
      </Section>
      <Section title={shown == null ? 'Live metrics' : `Live metrics of ${shown}`}>
        {current != null && (
          <p data-shown-session={current.session_id} data-status={current.status}>
            <span class={`badge ${current.status}`}>{current.status}</span> epoch {current.progress.epoch}/{current.progress.total_epochs}, step {current.progress.step}/{current.progress.total_steps ?? '?'}{' '}
            <button class='secondary' onClick={() => control('pause')}>Pause</button>{' '}
            <button class='secondary' onClick={() => control('resume')}>Resume</button>{' '}
            <button class='secondary' onClick={() => control('stop')}>Stop</button>
          </p>
        )}
        <div class='charts'>
          <Chart name='loss' color='#d94a38' steps={x} values={series.map(s => s.loss)} />
          <Chart name='accuracy' color='#2d9d5c' steps={x} values={series.map(s => s.accuracy)} />
          <Chart name='samples/s' color='#2d6cdf' steps={x} values={series.map(s => s.samples_per_second)} />
        </div>
      </Section>
      <Section title='Sessions'>
        <SessionsTable sessions={sessions.data ?? []} onPick={setSession} />
      </Section>
    </>
  )
}
