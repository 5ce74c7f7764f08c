// Jobs and tasks: the inference history with the CIDs of prompts and responses, and the training sessions.
import { useState } from 'preact/hooks'
import { get, short } from '../api.ts'
import { Section, Status, usePoll } from '../ui.tsx'
import type { ComponentChildren } from 'preact'

interface Task {
  id: string
  type: 'inference' | 'training'
  status: string
  model?: string
  promptCID?: string
  responseCID?: string
  worker?: string
  progress: number
  created_at: string
  timing?: { totalTime?: number }
}

export interface Session {
  session_id: string
  status: string
  model: string
  model_id: string | null
  dataset: string
  nodes: Array<{ id: string }>
  progress: { epoch: number, total_epochs: number, step: number, total_steps: number | null, loss: number | null, accuracy: number | null }
  checkpoint_cid: string | null
  created_at: string
  error: string | null
}

export function SessionsTable ({ sessions, onPick }: { sessions: Session[], onPick?: (id: string) => void }): ComponentChildren {
  return (
    <table>
      <thead><tr><th>Session</th><th>Status</th><th>Model</th><th>Dataset</th><th>Nodes</th><th>Epoch</th><th>Step</th><th>Loss</th><th>Accuracy</th><th>Checkpoint</th></tr></thead>
      <tbody>
        {sessions.map(s => (
          <tr key={s.session_id} data-session={s.session_id} data-status={s.status}>
            <td>{onPick == null ? s.session_id : <a href='#/training' onClick={e => { e.preventDefault(); onPick(s.session_id) }}>{s.session_id}</a>}</td>
            <td><span class={`badge ${s.status}`} title={s.error ?? undefined}>{s.status}</span></td>
            <td>{s.model_id ?? short(s.model)}</td><td><code title={s.dataset}>{short(s.dataset)}</code></td><td>{s.nodes.length}</td>
            <td>{s.progress.epoch}/{s.progress.total_epochs}</td><td>{s.progress.step}/{s.progress.total_steps ?? '?'}</td>
            <td>{s.progress.loss?.toFixed(4) ?? '–'}</td><td>{s.progress.accuracy?.toFixed(3) ?? '–'}</td>
            <td><code title={s.checkpoint_cid ?? ''}>{short(s.checkpoint_cid)}</code></td>
          </tr>
        ))}
      </tbody>
    </table>
  )
}

export function JobsPage (): ComponentChildren {
  const tasks = usePoll(async () => (await get<{ tasks: Task[], total: number }>('/api/tasks?limit=50')), 3000)
  const sessions = usePoll(async () => (await get<{ sessions: Session[] }>('/api/v1/training/sessions')).sessions, 3000)
  const [picked, setPicked] = useState<string>()
  const detail = usePoll(async () => picked == null ? undefined : get(`/api/tasks/${picked}`), 0, [picked])
  const inference = (tasks.data?.tasks ?? []).filter(t => t.type === 'inference')
  return (
    <>
      <Section title={`Inference tasks (${inference.length} of ${tasks.data?.total ?? 0} tasks)`}>
        <Status error={tasks.error} />
        <table>
          <thead><tr><th>Task</th><th>Status</th><th>Model</th><th>Prompt CID</th><th>Response CID</th><th>Worker</th><th>Time</th><th>Submitted</th></tr></thead>
          <tbody>
            {inference.map(t => (
              <tr key={t.id} data-task={t.id}>
                <td><a href='#/jobs' onClick={e => { e.preventDefault(); setPicked(t.id) }}>{short(t.id)}</a></td>
                <td><span class={`badge ${t.status}`}>{t.status}</span></td><td>{t.model}</td>
                <td><code title={t.promptCID}>{short(t.promptCID)}</code></td><td><code title={t.responseCID} data-response-cid={t.responseCID}>{short(t.responseCID)}</code></td>
                <td><code title={t.worker}>{short(t.worker, 4)}</code></td>
                <td>{t.timing?.totalTime != null ? `${t.timing.totalTime.toFixed(2)} s` : '–'}</td>
                <td>{new Date(t.created_at).toLocaleString()}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {detail.data != null && <pre class='mono' data-task-detail>{JSON.stringify(detail.data, null, 2)}</pre>}
      </Section>
      <Section title='Training sessions'>
        <Status error={sessions.error} />
        <SessionsTable sessions={sessions.data ?? []} />
      </Section>
    </>
  )
}
