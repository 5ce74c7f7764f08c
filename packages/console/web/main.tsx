// The console's shell: a navigation bar, hash routing between the pages, and the login asked for when the API wants credentials.
import { render } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import { get, setToken, token, whenUnauthorized } from './api.ts'
import { ChatPage } from './pages/chat.tsx'
import { ClusterPage } from './pages/cluster.tsx'
import { ContentPage } from './pages/content.tsx'
import { EventsPage } from './pages/events.tsx'
import { JobsPage } from './pages/jobs.tsx'
import { KeysPage } from './pages/keys.tsx'
import { SearchPage } from './pages/search.tsx'
import { ModelsPage } from './pages/models.tsx'
import { TrainingPage } from './pages/training.tsx'
import { route, Status, useAction } from './ui.tsx'
import type { ComponentChildren } from 'preact'
import './style.css'

const PAGES: Array<{ path: string, title: string, page: () => ComponentChildren }> = [
  { path: 'cluster', title: 'Cluster', page: ClusterPage },
  { path: 'models', title: 'Models', page: ModelsPage },
  { path: 'content', title: 'Content', page: ContentPage },
  { path: 'search', title: 'Search', page: SearchPage },
  { path: 'jobs', title: 'Jobs', page: JobsPage },
  { path: 'training', title: 'Training', page: TrainingPage },
  { path: 'chat', title: 'Chat', page: ChatPage },
  { path: 'events', title: 'Events', page: EventsPage },
  { path: 'keys', title: 'API keys', page: KeysPage }
]

function Login ({ onDone }: { onDone: () => void }): ComponentChildren {
  const [key, setKey] = useState('')
  const [username, setUsername] = useState('')
  const [password, setPassword] = useState('')
  const action = useAction()
  const withKey = async (): Promise<void> => {
    setToken(key.trim())
    onDone()
  }
  const login = async (): Promise<void> => action.run(async () => {
    const { token: jwt } = await get<{ token: string }>('/api/v1/auth/login', { json: { username, password } })
    setToken(jwt)
    onDone()
  })
  return (
    <div class='login'>
      <h2>This node needs credentials</h2>
      <form onSubmit={e => { e.preventDefault(); void withKey() }}>
        <label>API key <input name='api-key' type='password' value={key} onInput={e => setKey(e.currentTarget.value)} /></label>
        <button type='submit'>Use key</button>
      </form>
      <p>or log in as a user:</p>
      <form onSubmit={e => { e.preventDefault(); void login() }}>
        <label>User <input name='username' value={username} onInput={e => setUsername(e.currentTarget.value)} /></label>
        <label>Password <input name='password' type='password' value={password} onInput={e => setPassword(e.currentTarget.value)} /></label>
        <button type='submit' disabled={action.busy}>Log in</button>
      </form>
      <Status error={action.error} />
    </div>
  )
}

function App (): ComponentChildren {
  const [current, setCurrent] = useState(route().page)
  const [needsLogin, setNeedsLogin] = useState(false)
  // A new credential remounts the page, which loads again with it.
  const [generation, setGeneration] = useState(0)
  useEffect(() => {
    const onHash = (): void => { setCurrent(route().page) }
    addEventListener('hashchange', onHash)
    const unsubscribe = whenUnauthorized(() => { setNeedsLogin(true) })
    return () => { removeEventListener('hashchange', onHash); unsubscribe() }
  }, [])
  const page = PAGES.find(p => p.path === current) ?? PAGES[0]
  const Page = page.page
  return (
    <>
      <header>
        <strong>node-daemon</strong>
        <nav>{PAGES.map(p => <a key={p.path} href={`#/${p.path}`} class={p === page ? 'active' : ''}>{p.title}</a>)}</nav>
        {token() != null && <button class='link' onClick={() => { setToken(null); setGeneration(g => g + 1) }}>Log out</button>}
      </header>
      <main>
        {needsLogin && <Login onDone={() => { setNeedsLogin(false); setGeneration(g => g + 1) }} />}
        <Page key={`${page.path}:${generation}`} />
      </main>
    </>
  )
}

render(<App />, document.getElementById('app') as HTMLElement)
