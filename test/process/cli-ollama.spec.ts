/**
 * Ollama's verbs, the training verbs and shell completion, each run as a user
 * runs it: `node-daemon` processes against one daemon with the default
 * models.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { after, before, describe, it } from 'node:test'
import { blobs } from '../helpers/training.ts'
import { waitFor } from '../helpers/cluster.ts'
import { runCli, spawnDaemon, stopDaemon } from '../helpers/process.ts'
import type { DaemonProcess } from '../helpers/process.ts'

/** A message and a non-zero exit, never a stack. */
function failsClearly (res: { code: number | null, stderr: string }, message: RegExp): void {
  assert.equal(res.code, 1, res.stderr)
  assert.match(res.stderr, message)
  assert.doesNotMatch(res.stderr, /\n\s+at /)
}

describe('the command line\'s Ollama, training and completion verbs', () => {
  let dir: string
  let repo: string
  let daemon: DaemonProcess
  const cli = async (args: string[], input?: string): Promise<{ code: number | null, stdout: string, stderr: string }> => runCli([...args, '--repo', repo], 120_000, input)

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'node-daemon-verbs-'))
    repo = join(dir, 'repo')
    daemon = await spawnDaemon(repo)
    // The daemon registers its default models after it is ready: a command that starts at once would not find them.
    await waitFor('the default models', async () => JSON.parse((await cli(['list', '--json'])).stdout).models.length >= 2, 120_000)
  })

  after(async () => {
    await stopDaemon(daemon, 'SIGKILL')
    await rm(dir, { recursive: true, force: true })
  })

  it('run answers one prompt, from its words and from piped stdin before them', async () => {
    const words = await cli(['run', 'tiny-gpt', 'Hello', 'there', '-p', 'num_predict=4'])
    assert.equal(words.code, 0, words.stderr)
    assert.match(words.stdout, /\S/)
    assert.ok(words.stdout.endsWith('\n'))
    const alone = JSON.parse((await cli(['run', 'tiny-gpt', 'Hi', '-p', 'num_predict=2', '--json'])).stdout)
    const piped = await cli(['run', 'tiny-gpt', 'Hi', '-p', 'num_predict=2', '--json'], 'Some words from a pipe,')
    assert.equal(piped.code, 0, piped.stderr)
    const answer = JSON.parse(piped.stdout)
    assert.equal(answer.message.role, 'assistant')
    assert.ok(answer.eval_count <= 2)
    // The piped words are part of the prompt.
    assert.ok(answer.prompt_eval_count > alone.prompt_eval_count, `${answer.prompt_eval_count} > ${alone.prompt_eval_count}`)
    failsClearly(await cli(['run', 'no-such-model', 'Hi']), /not found/)
  })

  it('run chats line by line: /set, /show, a """ block as one message, /clear and /bye', async () => {
    const input = [
      '/set parameter num_predict 3',
      '/set parameter temperature 0.2',
      '/set system Be terse.',
      '/set verbose',
      '/show parameters',
      '/show system',
      '/show template',
      'Hi',
      '"""first line',
      'second line',
      'third line"""',
      '/clear',
      'Hi',
      '/set parameter no_such_thing 1',
      '/nonsense',
      '/bye',
      '/show system'
    ].join('\n') + '\n'
    const res = await cli(['run', 'tiny-gpt', '--interactive'], input)
    assert.equal(res.code, 0, res.stderr)
    for (const line of ["Set parameter 'num_predict' to '3'", "Set parameter 'temperature' to '0.2'", 'Set system message.', "Set 'verbose' mode.", 'User defined parameters:', 'Cleared session context', "Unknown command '/nonsense'. Type /? for help"]) {
      assert.ok(res.stdout.includes(line), `${line} in ${res.stdout}`)
    }
    assert.match(res.stdout, /num_predict\s+3\ntemperature\s+0\.2/)
    assert.match(res.stdout, /\{%/, 'the chat template')
    // After /bye nothing is read: the system message is shown once.
    assert.equal(res.stdout.split('\n').filter(l => l === 'Be terse.').length, 1)
    assert.match(res.stderr, /PARAMETER no_such_thing is not supported/)
    // Three answers: the block is one message; after /clear the prompt is as short as the first.
    const prompts = [...res.stderr.matchAll(/prompt eval count:\s+(\d+)/g)].map(m => Number(m[1]))
    assert.equal(prompts.length, 3, res.stderr)
    assert.ok(prompts[1] > prompts[0])
    assert.equal(prompts[2], prompts[0])
  })

  it('list, ps, show, cp, create -f, stop and rm manage the models', async () => {
    const list = await cli(['list'])
    assert.equal(list.code, 0, list.stderr)
    assert.match(list.stdout, /^NAME\s+ID\s+SIZE\s+MODIFIED\n/)
    assert.match(list.stdout, /^tiny-gpt:latest\s+Qm\w{44}\s+[\d.]+MB\s+\d+ \w+ ago$/m)

    assert.equal((await cli(['cp', 'tiny-gpt', 'cli-copy'])).stdout, "copied 'tiny-gpt' to 'cli-copy'\n")
    const modelfile = join(dir, 'Modelfile')
    await writeFile(modelfile, 'FROM cli-copy\nPARAMETER temperature 0.3\nPARAMETER stop "<end>"\nSYSTEM """Be brief."""\n')
    const create = await cli(['create', 'cli-brief', '-f', modelfile])
    assert.equal(create.code, 0, create.stderr)
    assert.match(create.stderr, /parsing modelfile\n[^]*success\n$/)
    assert.equal((await cli(['show', 'cli-brief', '--system'])).stdout, 'Be brief.\n')
    const info = await cli(['show', 'cli-brief'])
    assert.match(info.stdout, /^ {2}Model\n {4}architecture\s+gpt2\n/)
    assert.match(info.stdout, /^ {2}Parameters\n {4}temperature\s+0\.3\n {4}stop\s+"<end>"$/m)
    assert.equal(JSON.parse((await cli(['show', 'cli-brief', '--json'])).stdout).details.family, 'gpt2')
    const names = (await cli(['list'])).stdout
    assert.match(names, /^cli-copy:latest /m)
    assert.match(names, /^cli-brief:latest /m)
    await writeFile(join(dir, 'Local'), 'FROM ./weights\n')
    failsClearly(await cli(['create', 'x', '-f', join(dir, 'Local')]), /FROM \.\/weights is a local path: import it with `node-daemon model import/)
    await writeFile(join(dir, 'Bad'), 'FROM tiny-gpt\nADAPTER x\n')
    failsClearly(await cli(['create', 'x', '-f', join(dir, 'Bad')]), /ADAPTER is not supported/)

    // The earlier test's chats left tiny-gpt loaded.
    const ps = await cli(['ps'])
    assert.match(ps.stdout, /^NAME\s+ID\s+SIZE\s+PROCESSOR\s+CONTEXT\s+UNTIL\n/)
    assert.match(ps.stdout, /^tiny-gpt:latest\s+Qm\w{44}\s+[\d.]+MB\s+100% CPU\s+512\s+/m)
    assert.equal((await cli(['stop', 'tiny-gpt'])).code, 0)
    assert.doesNotMatch((await cli(['ps'])).stdout, /tiny-gpt/)
    failsClearly(await cli(['stop', 'tiny-gpt']), /couldn't find model "tiny-gpt" to stop/)

    assert.equal((await cli(['rm', 'cli-copy', 'cli-brief'])).stdout, "deleted 'cli-copy'\ndeleted 'cli-brief'\n")
    assert.doesNotMatch((await cli(['list'])).stdout, /cli-copy|cli-brief/)
    failsClearly(await cli(['show', 'cli-copy']), /not found/)
  })

  it('pull fetches a model of the registry with a line per file, and fails on an unknown one', async () => {
    const pull = await cli(['pull', 'tiny-gpt'])
    assert.equal(pull.code, 0, pull.stderr)
    assert.match(pull.stderr, /^pulling manifest\n/)
    assert.match(pull.stderr, /^pulling Qm\w{44}: 100% [\d.]+MB$/m)
    assert.match(pull.stderr, /\nsuccess\n$/)
    const json = (await cli(['pull', 'tiny-gpt', '--json'])).stdout.trim().split('\n').map(l => JSON.parse(l))
    assert.deepEqual(json.at(-1), { status: 'success' })
    assert.ok(json.some(l => l.digest != null && l.completed === l.total))
    failsClearly(await cli(['pull', 'no-such-model']), /not found/)
  })

  it('train starts, pauses, resumes and stops a session, and follows one to completion', async () => {
    const file = join(dir, 'blobs.safetensors')
    await writeFile(file, blobs(240, 1))
    const dataset = (await cli(['add', '-q', file])).stdout.trim()
    assert.match(dataset, /^Qm\w{44}$/)

    // A long session, to be controlled while it runs.
    const long = JSON.parse((await cli(['train', 'start', '--dataset', dataset, '--epochs', '5000', '--batch-size', '30', '--json'])).stdout)
    const id: string = long.session_id
    await waitFor(`${id} to run`, async () => {
      const status = await (await fetch(`${daemon.api}/api/v1/training/status?session_id=${id}`)).json() as { status: string }
      return status.status === 'running' ? true : undefined
    }, 60_000)
    assert.equal((await cli(['train', 'pause', id])).stdout, `${id} paused\n`)
    const paused = await cli(['train', 'status', id])
    assert.match(paused.stdout, new RegExp(`^session\\s+${id}\\nstatus\\s+paused\\n`))
    assert.match(paused.stdout, /^NODE\s+RANK\s+STATUS\s+COORDINATOR$/m)
    assert.equal((await cli(['train', 'resume', id])).stdout, `${id} running\n`)
    assert.equal((await cli(['train', 'stop', id])).stdout, `${id} stopped\n`)
    const stopped = await cli(['train', 'status', id, '--follow', '--timeout', '60'])
    assert.equal(stopped.code, 0, stopped.stderr)
    assert.match(stopped.stdout, new RegExp(`^${id} {2}stopped {2}`, 'm'))

    const follow = await cli(['train', 'start', '--dataset', dataset, '--epochs', '40', '--batch-size', '30', '--learning-rate', '0.05', '--follow', '--interval', '200', '--timeout', '300'])
    assert.equal(follow.code, 0, follow.stderr)
    const lines = follow.stdout.trim().split('\n')
    const session = /^started (training_\d+)$/.exec(lines[0])?.[1]
    assert.ok(session != null, follow.stdout)
    assert.match(lines.at(-2) ?? '', new RegExp(`^${session} {2}completed {2}epoch 40/40 {2}step 320/320 {2}loss \\d+\\.\\d{4} {2}accuracy [\\d.]+ {2}[\\d.]+ samples/s$`))
    assert.match(lines.at(-1) ?? '', /^model: \S+$/)
    // A line per step seen, in order, and an ETA once the rate is known.
    const steps = lines.slice(1, -1).map(l => Number(/step (\d+)/.exec(l)?.[1]))
    assert.deepEqual(steps, [...steps].sort((a, b) => a - b))
    const running = lines.filter(l => l.includes('  running  '))
    if (running.length > 1) assert.match(running.at(-1) ?? '', /ETA \d+:\d\d$/)

    const list = await cli(['train', 'list'])
    assert.match(list.stdout, new RegExp(`^${session}\\s+completed\\s+\\S+\\s+320/320\\s+\\d+\\.\\d{4}\\s`, 'm'))
    failsClearly(await cli(['train', 'stop', '999999']), /does not exist/)
    failsClearly(await cli(['train', 'start', '--dataset', dataset, '--epochs', 'many']), /--epochs <n>' argument 'many' is invalid/)
  })

  it('completion prints scripts from the command tree; bash completes a subcommand with them', async () => {
    const bash = await runCli(['completion', 'bash'])
    assert.equal(bash.code, 0, bash.stderr)
    const script = join(dir, 'completion.bash')
    await writeFile(script, bash.stdout)
    const complete = async (words: string[]): Promise<string> => {
      const line = `source ${script}; declare -F _node_daemon >/dev/null || exit 3; COMP_WORDS=(${words.map(w => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _node_daemon; echo "\${COMPREPLY[*]}"`
      return (await promisify(execFile)('bash', ['-c', line])).stdout.trim()
    }
    assert.equal(await complete(['node-daemon', 'train', 'st']), 'start status stop')
    assert.equal(await complete(['node-daemon', '--repo', 'x', 'pul']), 'pull')
    assert.equal(await complete(['node-daemon', 'run', '--format', '']), 'json')
    assert.match(await complete(['node-daemon', 'train', 'status', '--f']), /^--follow$/)
    const { stdout: defined } = await promisify(execFile)('bash', ['-c', `source ${script}; complete -p node-daemon`])
    assert.equal(defined.trim(), 'complete -o filenames -F _node_daemon node-daemon')

    const zsh = (await runCli(['completion', 'zsh'])).stdout
    assert.match(zsh, /^#compdef node-daemon\n/)
    assert.match(zsh, /'train status'\) entries=\('--repo:/)
    const fish = (await runCli(['completion', 'fish'])).stdout
    assert.match(fish, /complete -c node-daemon -n '_node_daemon_at \\'train\\'' -a 'status'/)
    failsClearly(await runCli(['completion', 'tcsh']), /value 'tcsh' is invalid/)
  })
})
