/**
 * Ollama's verbs over Ollama's routes: `run` (a streamed chat, interactive or
 * one-shot), `pull`, `list`, `ps`, `rm`, `show`, `cp`, `create` and `stop`,
 * printing what `ollama` prints so that its users feel at home.
 */
import { readFile } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { text as readAll } from 'node:stream/consumers'
import { Option } from 'commander'
import { humanSize } from '@node-daemon/api/size'
import { parseModelfile } from '@node-daemon/inference/modelfile'
import { ApiError, ndjson, post } from '../client.ts'
import { apiOf, clientCommand, print, progressBar, request, table } from '../command.ts'
import type { Api } from '../client.ts'
import type { ClientOptions, Progress } from '../command.ts'
import type { Command } from 'commander'

interface Message { role: string, content: string }

/** A line of /api/chat's stream; the last has `done` and the stats. */
interface ChatLine {
  message?: Message
  done?: boolean
  error?: string
  total_duration?: number
  load_duration?: number
  prompt_eval_count?: number
  prompt_eval_duration?: number
  eval_count?: number
  eval_duration?: number
  [field: string]: unknown
}

interface ProgressLine { status?: string, digest?: string, total?: number, completed?: number, error?: string }

interface ShowResponse {
  modelfile?: string
  parameters?: string
  template?: string
  system?: string
  license?: string
  details?: { family?: string, parameter_size?: string, quantization_level?: string }
  model_info?: Record<string, unknown>
  capabilities?: string[]
}

interface ModelEntry { name: string, digest: string, size: number, modified_at?: string, expires_at?: string, size_vram?: number, context_length?: number }

const JSON_HEADERS = { 'content-type': 'application/json' }

async function postJson (api: Api, path: string, body: unknown, signal?: AbortSignal): Promise<Response> {
  return post(api, new URL(`${api.base}${path}`), { headers: JSON_HEADERS, body: JSON.stringify(body), signal })
}

/** The lines of an Ollama stream; an error line (the status was already sent) fails like an error status. */
async function * lines<T extends { error?: string }> (res: Response): AsyncGenerator<T> {
  for await (const line of ndjson<T>(res)) {
    if (line.error != null) throw new ApiError(line.error)
    yield line
  }
}

/** What a chat sends besides its messages, as `/set` changes it. */
interface Session {
  model: string
  system?: string
  options: Record<string, unknown>
  format?: string
  keepAlive?: string
  verbose: boolean
  messages: Message[]
}

/** Streams an answer to stdout as it comes; returns the last line with the whole text as its message. */
async function answer (api: Api, session: Session, signal?: AbortSignal, echo = true): Promise<ChatLine> {
  const messages = session.system == null ? session.messages : [{ role: 'system', content: session.system }, ...session.messages]
  const body = { model: session.model, messages, options: session.options, format: session.format, keep_alive: session.keepAlive, stream: true }
  let text = ''
  let last: ChatLine = {}
  for await (const line of lines<ChatLine>(await postJson(api, '/api/chat', body, signal))) {
    const part = line.message?.content ?? ''
    text += part
    if (echo) process.stdout.write(part)
    last = line
  }
  if (echo && text !== '' && !text.endsWith('\n')) process.stdout.write('\n')
  if (echo && session.verbose) process.stderr.write(stats(last))
  return { ...last, message: { role: 'assistant', content: text } }
}

/** `ollama run --verbose`'s timings. */
function stats (line: ChatLine): string {
  const s = (ns = 0): string => `${(ns / 1e9).toFixed(3)}s`
  const rate = (count = 0, ns = 0): string => `${ns > 0 ? (count / (ns / 1e9)).toFixed(2) : '0'} tokens/s`
  return table(['total duration:', s(line.total_duration)], [
    ['load duration:', s(line.load_duration)],
    ['prompt eval count:', `${line.prompt_eval_count ?? 0} token(s)`],
    ['prompt eval duration:', s(line.prompt_eval_duration)],
    ['prompt eval rate:', rate(line.prompt_eval_count, line.prompt_eval_duration)],
    ['eval count:', `${line.eval_count ?? 0} token(s)`],
    ['eval duration:', s(line.eval_duration)],
    ['eval rate:', rate(line.eval_count, line.eval_duration)]
  ]).map(l => `${l}\n`).join('')
}

/** One `PARAMETER name value` as the Modelfile parser types it, so that `/set parameter` refuses what `create` would. */
function parameterOf (name: string, value: string): Record<string, unknown> {
  return parseModelfile(`FROM x\nPARAMETER ${name} ${value}`).options as Record<string, unknown>
}

const HELP = [
  'Available Commands:',
  '  /set            Set session variables',
  '  /show           Show model information',
  '  /load <model>   Load a session or model',
  '  /clear          Clear session context',
  '  /bye            Exit',
  '  /?, /help       Help for a command',
  '',
  'Use """ to begin a multi-line message.'
]

const SET_HELP = [
  'Available Commands:',
  '  /set parameter ...     Set a parameter',
  '  /set system <string>   Set system message',
  '  /set format json       Enable JSON mode',
  '  /set noformat          Disable formatting',
  '  /set verbose           Show LLM stats',
  '  /set quiet             Disable LLM stats'
]

const SHOW_HELP = [
  'Available Commands:',
  '  /show info         Show details for this model',
  '  /show license      Show model license',
  '  /show modelfile    Show Modelfile for this model',
  '  /show parameters   Show parameters for this model',
  '  /show system       Show system message',
  '  /show template     Show prompt template'
]

/** `ollama show`'s sections: the model, its capabilities, parameters, system prompt and the head of its license. */
function infoText (show: ShowResponse): string[] {
  const info = show.model_info ?? {}
  const arch = String(info['general.architecture'] ?? show.details?.family ?? '')
  const section = (title: string, rows: string[][]): string[] => rows.length === 0 ? [] : [`  ${title}`, ...table(['', ''], rows).slice(1).map(l => `    ${l}`), '']
  const model = [
    ['architecture', arch],
    ['parameters', show.details?.parameter_size ?? ''],
    ['context length', String(info[`${arch}.context_length`] ?? '')],
    ['embedding length', String(info[`${arch}.embedding_length`] ?? '')],
    ['quantization', show.details?.quantization_level ?? '']
  ].filter(([, v]) => v !== '')
  const text = (value: string | undefined, max = Infinity): string[][] => (value ?? '').split('\n').filter(l => l.trim() !== '').slice(0, max).map(l => [l])
  return [
    ...section('Model', model),
    ...section('Capabilities', (show.capabilities ?? []).map(c => [c])),
    ...section('Parameters', text(show.parameters)),
    ...section('System', text(show.system, 2)),
    ...section('License', text(show.license, 2))
  ]
}

async function showModel (api: Api, model: string): Promise<ShowResponse> {
  return request<ShowResponse>(api, 'POST', '/api/show', { model })
}

/** Prints what `/show <what>` asks for in a session, or the topics when `what` is none of them. */
async function showInSession (api: Api, session: Session, what: string | undefined, say: (lines: string[]) => void): Promise<void> {
  const topics = ['info', 'license', 'modelfile', 'parameters', 'system', 'template']
  if (what == null || !topics.includes(what)) {
    say(SHOW_HELP)
    return
  }
  const show = await showModel(api, session.model)
  const none = (value: string | undefined, label: string): string[] => value == null || value === '' ? [`No ${label} was specified for this model.`] : [value]
  if (what === 'info') say(infoText(show))
  if (what === 'license') say(none(show.license, 'license'))
  if (what === 'modelfile') say(none(show.modelfile, 'modelfile'))
  if (what === 'template') say(none(show.template, 'prompt template'))
  if (what === 'system') say(none(session.system ?? show.system, 'system message'))
  if (what === 'parameters') {
    const user = Object.entries(session.options).flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map(x => [k, JSON.stringify(x)]))
    say([
      ...(user.length > 0 ? ['User defined parameters:', ...table(['', ''], user).slice(1), ''] : []),
      'Model defined parameters:',
      ...(show.parameters == null || show.parameters === '' ? ['No additional parameters were specified for this model.'] : [show.parameters])
    ])
  }
}

/** `/set ...`; `raw` is the whole line, whose spacing a system message keeps. */
function setInSession (session: Session, args: string[], raw: string, say: (lines: string[]) => void): void {
  const [what, name, ...rest] = args
  if (what === 'parameter' && name != null && rest.length > 0) {
    const value = rest.join(' ')
    const parsed = parameterOf(name, value)
    if (name === 'stop') session.options.stop = [...(session.options.stop as string[] | undefined) ?? [], ...parsed.stop as string[]]
    else Object.assign(session.options, parsed)
    say([`Set parameter '${name}' to '${value}'`])
  } else if (what === 'system' && name != null) {
    const text = raw.replace(/^\s*\/set\s+system\s+/, '')
    session.system = /^"[^]*"$/.test(text) ? text.slice(1, -1) : text
    say(['Set system message.'])
  } else if (what === 'format' && name === 'json') {
    session.format = 'json'
    say(["Set format to 'json' mode."])
  } else if (what === 'noformat') {
    session.format = undefined
    say(['Disabled format.'])
  } else if (what === 'verbose' || what === 'quiet') {
    session.verbose = what === 'verbose'
    say([`Set '${what}' mode.`])
  } else {
    say(SET_HELP)
  }
}

/**
 * The interactive chat: `>>> ` prompts on a terminal, lines from a pipe
 * alike with --interactive; `"""` opens a multi-line message (or system
 * message after `/set system`) that a line ending in `"""` closes; Ctrl-C
 * stops an answer, Ctrl-D or /bye ends the session.
 */
async function interactive (api: Api, session: Session): Promise<void> {
  const tty = process.stdin.isTTY === true
  const rl = createInterface({ input: process.stdin, output: tty ? process.stdout : undefined, terminal: tty })
  const say = (lines: string[]): void => { process.stdout.write(lines.map(l => `${l}\n`).join('')) }
  let generating: AbortController | undefined
  let block: { prefix: string, lines: string[] } | undefined
  const prompt = (): void => {
    if (!tty) return
    rl.setPrompt(block == null ? '>>> ' : '... ')
    rl.prompt()
  }
  rl.on('SIGINT', () => {
    if (generating != null) {
      generating.abort()
      return
    }
    block = undefined
    rl.write(null, { ctrl: true, name: 'u' })
    process.stdout.write('\nUse Ctrl + d or /bye to exit.\n')
    prompt()
  })
  const ask = async (text: string): Promise<void> => {
    session.messages.push({ role: 'user', content: text })
    generating = new AbortController()
    try {
      session.messages.push((await answer(api, session, generating.signal)).message as Message)
    } catch (err: any) {
      // A failed or stopped answer leaves no question behind it.
      session.messages.pop()
      process.stderr.write(generating.signal.aborted ? '\n' : `Error: ${err.message}\n`)
    } finally {
      generating = undefined
    }
  }
  const command = async (text: string): Promise<boolean> => {
    const [verb, ...args] = text.trim().split(/\s+/)
    switch (verb) {
      case '/bye':
      case '/exit':
        return true
      case '/clear':
        session.messages = []
        say(['Cleared session context'])
        break
      case '/set':
        setInSession(session, args, text, say)
        break
      case '/show':
        await showInSession(api, session, args[0], say)
        break
      case '/load':
        if (args[0] == null) {
          say(['Usage:', '  /load <modelname>'])
          break
        }
        await request(api, 'POST', '/api/chat', { model: args[0], messages: [] })
        session.model = args[0]
        session.messages = []
        say([`Loading model '${args[0]}'`])
        break
      case '/?':
      case '/help':
        say(args[0] === 'set' ? SET_HELP : args[0] === 'show' ? SHOW_HELP : HELP)
        break
      default:
        say([`Unknown command '${verb}'. Type /? for help`])
    }
    return false
  }
  prompt()
  try {
    for await (const line of rl) {
      let text = line
      let fromBlock = false
      if (block != null) {
        const end = line.endsWith('"""')
        block.lines.push(end ? line.slice(0, -3) : line)
        if (!end) {
          prompt()
          continue
        }
        text = block.prefix + block.lines.join('\n')
        fromBlock = block.prefix === ''
        block = undefined
      } else {
        const open = /^(\/set\s+system\s+)?"""/.exec(line)
        if (open != null) {
          const rest = line.slice(open[0].length)
          if (rest.length >= 3 && rest.endsWith('"""')) {
            text = (open[1] ?? '') + rest.slice(0, -3)
            fromBlock = open[1] == null
          } else {
            block = { prefix: open[1] ?? '', lines: [rest] }
            prompt()
            continue
          }
        }
      }
      try {
        if (!fromBlock && text.startsWith('/')) {
          if (await command(text)) break
        } else if (text.trim() !== '') {
          await ask(text)
        }
      } catch (err: any) {
        process.stderr.write(`Error: ${err.message}\n`)
      }
      prompt()
    }
  } finally {
    rl.close()
  }
}

/** `-p name=value`, repeatable: parameters of the session, as `/set parameter` sets them. */
function collectParameter (value: string, previous: Record<string, unknown> = {}): Record<string, unknown> {
  const eq = value.indexOf('=')
  if (eq <= 0) throw new Error(`--parameter ${value}: expected name=value`)
  const name = value.slice(0, eq)
  const parsed = parameterOf(name, value.slice(eq + 1))
  if (name === 'stop') return { ...previous, stop: [...(previous.stop as string[] | undefined) ?? [], ...parsed.stop as string[]] }
  return { ...previous, ...parsed }
}

async function run (model: string, words: string[], opts: ClientOptions): Promise<void> {
  const api = await apiOf(opts)
  const session: Session = { model, options: opts.parameter ?? {}, format: opts.format, keepAlive: opts.keepalive, verbose: opts.verbose === true, messages: [] }
  const piped = process.stdin.isTTY !== true && opts.interactive !== true
  // As Ollama: piped input comes first, then the words of the prompt.
  const prompt = [piped ? await readAll(process.stdin) : '', words.join(' ')].filter(s => s.trim() !== '').join(' ')
  if (prompt === '' && !piped) {
    // Loading first makes an unknown model fail before the first prompt.
    await request(api, 'POST', '/api/chat', { model, messages: [], keep_alive: session.keepAlive })
    await interactive(api, session)
    return
  }
  if (prompt === '') {
    // Nothing to ask: Ollama loads the model.
    await request(api, 'POST', '/api/chat', { model, messages: [], keep_alive: session.keepAlive })
    return
  }
  session.messages.push({ role: 'user', content: prompt })
  const last = await answer(api, session, undefined, opts.json !== true)
  if (opts.json === true) print(opts, last, () => [])
}

/**
 * Pull and create progress: on a terminal, a bar per layer as it comes; else
 * a line per status and per finished layer; with --json, the lines as the
 * route sends them.
 */
async function showProgress (res: Response, opts: ClientOptions): Promise<void> {
  let bar: { digest: string, progress: Progress } | undefined
  let status: string | undefined
  const done = new Set<string>()
  for await (const line of lines<ProgressLine>(res)) {
    if (opts.json === true) {
      process.stdout.write(`${JSON.stringify(line)}\n`)
      continue
    }
    if (line.digest != null && line.total != null) {
      if (bar?.digest !== line.digest) {
        bar?.progress.stop()
        bar = { digest: line.digest, progress: progressBar(`pulling ${line.digest.slice(0, 12)}`, line.total, opts) }
      }
      bar.progress.set(line.completed ?? 0, line.total)
      if (line.completed === line.total && !done.has(line.digest)) {
        done.add(line.digest)
        if (process.stderr.isTTY !== true) process.stderr.write(`pulling ${line.digest}: 100% ${humanSize(line.total)}\n`)
      }
      continue
    }
    if (line.status != null && line.status !== status) {
      bar?.progress.stop()
      bar = undefined
      status = line.status
      process.stderr.write(`${status}\n`)
    }
  }
  bar?.progress.stop()
}

/** "3 minutes ago", "in 4 minutes", as Ollama's tables say when. */
function relative (iso: string | undefined, now = Date.now()): string {
  if (iso == null) return ''
  const ms = Date.parse(iso) - now
  const s = Math.abs(ms) / 1000
  const units: Array<[string, number]> = [['week', 604_800], ['day', 86_400], ['hour', 3600], ['minute', 60], ['second', 1]]
  const [unit, size] = units.find(([, size]) => s >= size) ?? ['second', 1]
  if (s < 1) return ms < 0 ? 'Less than a second ago' : 'Less than a second from now'
  const n = Math.floor(s / size)
  const amount = `${n} ${unit}${n === 1 ? '' : 's'}`
  return ms < 0 ? `${amount} ago` : `${amount} from now`
}

const tagOf = (name: string): string => name.includes(':') ? name : `${name}:latest`

/** Adds Ollama's verbs to `program`. */
export function ollamaCommands (program: Command): void {
  clientCommand(program, 'run')
    .description('chat with a model: interactive on a terminal (/? for help), or one answer to a prompt given as arguments or on stdin')
    .argument('<model>')
    .argument('[prompt...]', 'the prompt; with stdin piped, it comes after stdin\'s text')
    .option('-i, --interactive', 'read the chat from stdin line by line even when it is not a terminal')
    .option('-p, --parameter <name=value>', 'a model parameter for the session, as /set parameter sets it (e.g. temperature=0.2); repeatable', collectParameter)
    .addOption(new Option('--format <format>', 'the answer\'s format').choices(['json']))
    .option('--keepalive <duration>', 'how long the model stays loaded after the chat: 5m, 1h, 0 unloads it')
    .option('--verbose', 'print timings and token rates after each answer (on stderr)')
    .action(async (model: string, prompt: string[], opts: ClientOptions) => run(model, prompt, opts))

  clientCommand(program, 'pull')
    .description('fetch a model of the cluster\'s registry to this node')
    .argument('<model>')
    .option('--no-progress', 'no progress bar')
    .action(async (model: string, opts: ClientOptions) => {
      await showProgress(await postJson(await apiOf(opts), '/api/pull', { model, stream: true }), opts)
    })

  // No `ls` alias, as Ollama has: `ls` is Kubo's verb, which lists a directory.
  clientCommand(program, 'list')
    .description('the models of the cluster')
    .action(async (opts: ClientOptions) => {
      const { models } = await request<{ models: ModelEntry[] }>(await apiOf(opts), 'GET', '/api/tags')
      print(opts, { models }, () => table(['NAME', 'ID', 'SIZE', 'MODIFIED'], models.map(m => [m.name, m.digest, humanSize(m.size), relative(m.modified_at)])))
    })

  clientCommand(program, 'ps')
    .description('the models loaded on this node')
    .action(async (opts: ClientOptions) => {
      const { models } = await request<{ models: ModelEntry[] }>(await apiOf(opts), 'GET', '/api/ps')
      print(opts, { models }, () => table(['NAME', 'ID', 'SIZE', 'PROCESSOR', 'CONTEXT', 'UNTIL'], models.map(m => [
        m.name, m.digest, humanSize(m.size), m.size_vram === 0 ? '100% CPU' : '100% GPU', m.context_length, m.expires_at == null ? 'Forever' : relative(m.expires_at)
      ])))
    })

  clientCommand(program, 'rm')
    .description('remove models from the registry')
    .argument('<model...>')
    .action(async (models: string[], opts: ClientOptions) => {
      const api = await apiOf(opts)
      for (const model of models) {
        await request(api, 'DELETE', '/api/delete', { model })
        print(opts, { deleted: model }, () => `deleted '${model}'`)
      }
    })

  clientCommand(program, 'show')
    .description('a model\'s details, capabilities, parameters, system prompt and license')
    .argument('<model>')
    .option('--license', 'the license')
    .option('--modelfile', 'the Modelfile')
    .option('--parameters', 'the parameters')
    .option('--system', 'the system message')
    .option('--template', 'the prompt template')
    .action(async (model: string, opts: ClientOptions) => {
      const show = await showModel(await apiOf(opts), model)
      const field = (['license', 'modelfile', 'parameters', 'system', 'template'] as const).find(f => opts[f] === true)
      print(opts, show, () => field == null ? infoText(show) : show[field] ?? '')
    })

  clientCommand(program, 'cp')
    .description('register a model under another name')
    .argument('<source>')
    .argument('<destination>')
    .action(async (source: string, destination: string, opts: ClientOptions) => {
      await request(await apiOf(opts), 'POST', '/api/copy', { source, destination })
      print(opts, { source, destination }, () => `copied '${source}' to '${destination}'`)
    })

  clientCommand(program, 'create')
    .description('create a model from a Modelfile (FROM a model of the cluster, PARAMETER, TEMPLATE, SYSTEM)')
    .argument('<model>')
    .option('-f, --file <path>', 'the Modelfile', 'Modelfile')
    .action(async (model: string, opts: ClientOptions) => {
      const modelfile = await readFile(opts.file, 'utf8').catch((err: NodeJS.ErrnoException) => {
        throw new Error(`${opts.file as string}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`)
      })
      // Checked here as Ollama's client does, so that a local FROM says what to do instead of "not found".
      const { from } = parseModelfile(modelfile)
      if (/^[./~]/.test(from)) throw new Error(`FROM ${from} is a local path: import it with \`node-daemon model import ${from} --name <name>\`, then create FROM that name`)
      await showProgress(await postJson(await apiOf(opts), '/api/create', { model, modelfile, stream: true }), opts)
    })

  clientCommand(program, 'stop')
    .description('unload a running model')
    .argument('<model>')
    .action(async (model: string, opts: ClientOptions) => {
      const api = await apiOf(opts)
      const { models } = await request<{ models: ModelEntry[] }>(api, 'GET', '/api/ps')
      if (!models.some(m => m.name === tagOf(model) || m.name === model)) throw new Error(`couldn't find model "${model}" to stop`)
      await request(api, 'POST', '/api/chat', { model, messages: [], keep_alive: 0 })
      print(opts, { stopped: model }, () => [])
    })
}
