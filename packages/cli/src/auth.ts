/**
 * `node-daemon auth`: keys, users and tokens, through the API of a running
 * node (as an admin: the repo's cookie, or --api-key). What they make is
 * replicated, so it works on every node of the cluster.
 */
import { createInterface } from 'node:readline'
import { Command } from 'commander'
import { apiOf, clientCommand, print, request as call } from './command.ts'

interface CredentialJson { id: string, kind: string, name: string, permissions: string[], created_at: string | null, expires_at: string | null }

/** A password from the terminal without echoing it, or the first line of stdin when it is not a terminal. */
async function readPassword (prompt: string): Promise<string> {
  const input = process.stdin
  if (input.isTTY !== true) {
    let text = ''
    for await (const chunk of input) text += String(chunk)
    return text.split(/\r?\n/)[0]
  }
  const rl = createInterface({ input, output: process.stderr, terminal: true })
  // Echo nothing but the prompt while the password is typed.
  const muted = rl as unknown as { _writeToOutput: (s: string) => void }
  process.stderr.write(prompt)
  muted._writeToOutput = () => {}
  try {
    return await new Promise<string>(resolve => rl.question('', resolve))
  } finally {
    rl.close()
    process.stderr.write('\n')
  }
}

const line = (c: CredentialJson): string => `${c.id}  ${c.kind.padEnd(12)} ${c.name.padEnd(20)} ${c.permissions.join(',')}${c.expires_at == null ? '' : `  expires ${c.expires_at}`}`

/** The `auth` command. */
export function authCommand (): Command {
  const auth = new Command('auth').description('API keys, users and tokens of the cluster')
  const request = async (opts: Record<string, any>, method: string, path: string, body?: object): Promise<any> => call(await apiOf(opts), method, path, body)
  const key = auth.command('key').description('API keys')

  clientCommand(key, 'create')
    .description('create an API key and print it, once: only its hash is kept')
    .requiredOption('--name <name>', 'what the key is for')
    .requiredOption('--permissions <list>', 'comma-separated: content:read, content:write, pins, names, swarm, cluster:read, cluster:admin, models:read, models:write, inference, training, tasks, auth:admin, or *')
    .option('--expires <duration>', 'how long it is valid, e.g. 30d or 12h (default: for ever)')
    .action(async (opts) => {
      const made = await request(opts, 'POST', '/api/v1/auth/keys', { name: opts.name, permissions: String(opts.permissions).split(',').map(p => p.trim()).filter(Boolean), expires: opts.expires })
      print(opts, made, m => m.key as string)
      process.stderr.write(`key ${made.id as string} (${made.name as string}): shown this once, keep it\n`)
    })

  clientCommand(key, 'list')
    .description('list API keys, without their secrets')
    .action(async (opts) => {
      print(opts, await request(opts, 'GET', '/api/v1/auth/keys') as { keys: CredentialJson[] }, ({ keys }) => keys.map(line))
    })

  clientCommand(key, 'revoke')
    .description('revoke an API key on every node')
    .argument('<id>')
    .action(async (id, opts) => {
      print(opts, await request(opts, 'DELETE', `/api/v1/auth/keys/${encodeURIComponent(id)}`), () => `revoked ${id as string}`)
    })

  const user = auth.command('user').description('users, for basic auth and JWT login')
  clientCommand(user, 'add')
    .description('add a user (the password is asked for, or read from stdin), or give one a new password')
    .argument('<name>')
    .option('--permissions <list>', 'comma-separated permissions, as for keys', '*')
    .action(async (name, opts) => {
      const password = await readPassword(`password for ${name as string}: `)
      const added = await request(opts, 'POST', '/api/v1/auth/users', { username: name, password, permissions: String(opts.permissions).split(',').map(p => p.trim()).filter(Boolean) })
      print(opts, added as CredentialJson, line)
    })

  clientCommand(user, 'list')
    .description('list users')
    .action(async (opts) => {
      print(opts, await request(opts, 'GET', '/api/v1/auth/users') as { users: CredentialJson[] }, ({ users }) => users.map(line))
    })

  clientCommand(user, 'remove')
    .description('remove a user: its tokens stop working')
    .argument('<name>')
    .action(async (name, opts) => {
      print(opts, await request(opts, 'DELETE', `/api/v1/auth/users/${encodeURIComponent(name)}`), () => `removed ${name as string}`)
    })

  clientCommand(auth, 'token')
    .description("a JWT for a user (document 003's login); the password is asked for, or read from stdin")
    .requiredOption('--user <name>')
    .action(async (opts) => {
      const password = await readPassword(`password for ${opts.user as string}: `)
      const login = await request(opts, 'POST', '/api/v1/auth/login', { username: opts.user, password })
      print(opts, login, l => l.token as string)
      process.stderr.write(`valid until ${login.expires_at as string}\n`)
    })
  return auth
}
