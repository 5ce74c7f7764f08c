// API keys: the admin page over the auth routes — keys (shown once when made) and users, each replicated to every node.
import { useState } from 'preact/hooks'
import { call, get } from '../api.ts'
import { Section, Status, useAction, usePoll } from '../ui.tsx'
import type { ComponentChildren } from 'preact'

interface Credential { id: string, kind: string, name: string, permissions: string[], created_at: string | null, expires_at: string | null }

const PERMISSIONS = 'content:read, content:write, pins, names, swarm, cluster:read, cluster:admin, models:read, models:write, inference, training, tasks, auth:admin, or *'
const list = (text: string): string[] => text.split(',').map(p => p.trim()).filter(p => p !== '')

export function KeysPage (): ComponentChildren {
  const keys = usePoll(async () => (await get<{ keys: Credential[] }>('/api/v1/auth/keys')).keys)
  const users = usePoll(async () => (await get<{ users: Credential[] }>('/api/v1/auth/users')).users)
  const [key, setKey] = useState({ name: '', permissions: '*', expires: '' })
  const [user, setUser] = useState({ username: '', password: '', permissions: '*' })
  const [secret, setSecret] = useState<string>()
  const action = useAction()
  const createKey = async (): Promise<void> => action.run(async () => {
    const made = await get<{ key: string }>('/api/v1/auth/keys', { json: { name: key.name, permissions: list(key.permissions), ...(key.expires === '' ? {} : { expires: key.expires }) } })
    setSecret(made.key)
    keys.reload()
  })
  const addUser = async (): Promise<void> => action.run(async () => {
    await get('/api/v1/auth/users', { json: { username: user.username, password: user.password, permissions: list(user.permissions) } })
    setUser({ ...user, password: '' })
    users.reload()
    return `user ${user.username} saved`
  })
  const remove = async (path: string, reload: () => void): Promise<void> => action.run(async () => { await call(path, { method: 'DELETE' }); reload() })
  return (
    <>
      <Section title='API keys'>
        <Status error={keys.error ?? action.error} message={action.message} />
        <form onSubmit={e => { e.preventDefault(); void createKey() }}>
          <label>Name <input name='key-name' value={key.name} onInput={e => setKey({ ...key, name: e.currentTarget.value })} /></label>
          <label title={PERMISSIONS}>Permissions (comma separated) <input name='key-permissions' value={key.permissions} onInput={e => setKey({ ...key, permissions: e.currentTarget.value })} /></label>
          <label>Expires (30d, 12h; empty: never) <input name='key-expires' value={key.expires} onInput={e => setKey({ ...key, expires: e.currentTarget.value })} /></label>
          <button type='submit' disabled={action.busy || key.name.trim() === ''}>Create key</button>
        </form>
        {secret != null && <p class='message'>The new key, shown this once: <code data-new-key>{secret}</code></p>}
        <table>
          <thead><tr><th>Name</th><th>Kind</th><th>Permissions</th><th>Created</th><th>Expires</th><th /></tr></thead>
          <tbody>
            {(keys.data ?? []).map(k => (
              <tr key={k.id} data-key={k.name}>
                <td>{k.name}</td><td>{k.kind}</td><td>{k.permissions.join(', ')}</td><td>{k.created_at ?? '–'}</td><td>{k.expires_at ?? 'never'}</td>
                <td><button class='secondary' onClick={() => { void remove(`/api/v1/auth/keys/${encodeURIComponent(k.id)}`, keys.reload) }}>Revoke</button></td>
              </tr>
            ))}
          </tbody>
        </table>
      </Section>
      <Section title='Users'>
        <Status error={users.error} />
        <form onSubmit={e => { e.preventDefault(); void addUser() }}>
          <label>User <input name='user-name' value={user.username} onInput={e => setUser({ ...user, username: e.currentTarget.value })} /></label>
          <label>Password (8 or more) <input name='user-password' type='password' value={user.password} onInput={e => setUser({ ...user, password: e.currentTarget.value })} /></label>
          <label title={PERMISSIONS}>Permissions <input name='user-permissions' value={user.permissions} onInput={e => setUser({ ...user, permissions: e.currentTarget.value })} /></label>
          <button type='submit' disabled={action.busy || user.username.trim() === '' || user.password.length < 8}>Save user</button>
        </form>
        <table>
          <thead><tr><th>User</th><th>Permissions</th><th>Created</th><th /></tr></thead>
          <tbody>
            {(users.data ?? []).map(u => (
              <tr key={u.id}>
                <td>{u.name}</td><td>{u.permissions.join(', ')}</td><td>{u.created_at ?? '–'}</td>
                <td><button class='secondary' onClick={() => { void remove(`/api/v1/auth/users/${encodeURIComponent(u.name)}`, users.reload) }}>Remove</button></td>
              </tr>
            ))}
          </tbody>
        </table>
      </Section>
    </>
  )
}
