// Chat playground: a conversation with a model, its answer streamed token by token over /api/chat.
import { useRef, useState } from 'preact/hooks'
import { call, get, lines } from '../api.ts'
import { route, Section, Status, useAction, usePoll } from '../ui.tsx'
import type { ComponentChildren } from 'preact'

interface Message { role: 'user' | 'assistant' | 'system', content: string }

export function ChatPage (): ComponentChildren {
  const models = usePoll(async () => (await get<{ models: Array<{ name: string }> }>('/api/tags')).models)
  const [model, setModel] = useState(route().params.get('model') ?? '')
  const [messages, setMessages] = useState<Message[]>([])
  const [input, setInput] = useState('')
  // Chunks of the answer being streamed: a test (and a curious user) can see that it streams.
  const [chunks, setChunks] = useState(0)
  const stop = useRef<AbortController | undefined>(undefined)
  const action = useAction()
  const chosen = model !== '' ? model : models.data?.find(m => !m.name.includes('embed'))?.name ?? ''

  const send = async (): Promise<void> => action.run(async () => {
    const history: Message[] = [...messages, { role: 'user', content: input }]
    setMessages([...history, { role: 'assistant', content: '' }])
    setInput('')
    setChunks(0)
    stop.current = new AbortController()
    const res = await call('/api/chat', { json: { model: chosen, messages: history, stream: true }, signal: stop.current.signal })
    let answer = ''
    for await (const line of lines<{ message?: { content: string }, error?: string, done: boolean }>(res)) {
      if (line.error != null) throw new Error(line.error)
      answer += line.message?.content ?? ''
      setChunks(n => n + 1)
      setMessages([...history, { role: 'assistant', content: answer }])
    }
  })

  return (
    <Section title='Chat'>
      <form onSubmit={e => { e.preventDefault(); void send() }}>
        <label>Model
          <select name='model' value={chosen} onChange={e => setModel(e.currentTarget.value)}>
            {(models.data ?? []).map(m => <option key={m.name} value={m.name}>{m.name}</option>)}
          </select>
        </label>
        <button type='button' class='secondary' onClick={() => { setMessages([]); setChunks(0) }}>Clear</button>
      </form>
      <div class='chat' data-chunks={chunks} data-streaming={String(action.busy)}>
        {messages.map((m, i) => <div key={i} class={`msg ${m.role}`} data-role={m.role}>{m.content}</div>)}
      </div>
      <form onSubmit={e => { e.preventDefault(); void send() }}>
        <textarea name='prompt' rows={3} cols={80} value={input} onInput={e => setInput(e.currentTarget.value)} onKeyDown={e => { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); void send() } }} />
        <button type='submit' disabled={action.busy || chosen === '' || input.trim() === ''}>Send</button>
        {action.busy && <button type='button' class='secondary' onClick={() => stop.current?.abort()}>Stop</button>}
      </form>
      <Status error={action.error ?? models.error} />
    </Section>
  )
}
