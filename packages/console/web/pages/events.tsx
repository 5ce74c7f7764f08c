// Events: the cluster's live events (nodes joining and leaving, models, votes, training) and the inference tasks', newest first.
import { useEffect, useState } from 'preact/hooks'
import { socket } from '../api.ts'
import { Section, Status } from '../ui.tsx'
import type { ComponentChildren } from 'preact'

interface Event { type: string, data: unknown, timestamp: string, source: string }

/** The sockets that carry events: document 003's cluster and training events, document 001's task events. */
const SOURCES = ['/api/v1/ws', '/api/ws']
const KEEP = 500

export function EventsPage (): ComponentChildren {
  const [events, setEvents] = useState<Event[]>([])
  const [paused, setPaused] = useState(false)
  const [hideSteps, setHideSteps] = useState(true)
  const [error, setError] = useState<string>()
  const [connected, setConnected] = useState(0)
  useEffect(() => {
    if (paused) return
    const sockets: WebSocket[] = SOURCES.map(source => {
      const ws = socket(source)
      ws.onmessage = (e) => {
        const event = JSON.parse(e.data as string) as Omit<Event, 'source'>
        setEvents(list => [{ ...event, timestamp: event.timestamp ?? new Date().toISOString(), source }, ...list].slice(0, KEEP))
      }
      ws.onopen = ws.onclose = () => { setConnected(sockets.filter(w => w.readyState === WebSocket.OPEN).length) }
      ws.onerror = () => { setError(`the event socket ${source} failed`) }
      return ws
    })
    return () => { for (const ws of sockets) ws.close() }
  }, [paused])
  const shown = hideSteps ? events.filter(e => e.type !== 'training_progress') : events
  return (
    <Section title='Events'>
      <p data-connected={connected}>{connected} of {SOURCES.length} event sockets open</p>
      <form>
        <button type='button' class='secondary' onClick={() => setPaused(p => !p)}>{paused ? 'Resume' : 'Pause'}</button>
        <button type='button' class='secondary' onClick={() => setEvents([])}>Clear</button>
        <label><span><input type='checkbox' checked={hideSteps} onChange={e => setHideSteps(e.currentTarget.checked)} /> hide training steps</span></label>
      </form>
      <Status error={error} />
      <table class='events'>
        <thead><tr><th>Time</th><th>Type</th><th>Data</th></tr></thead>
        <tbody>
          {shown.map((e, i) => (
            <tr key={events.length - i} data-event={e.type}>
              <td>{new Date(e.timestamp).toLocaleTimeString()}</td><td>{e.type}</td><td>{JSON.stringify(e.data)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Section>
  )
}
