import { hostname } from 'node:os'
import { join } from 'node:path'
import { Command, Option } from 'commander'
import { SWARM_KEY_FILE } from '@node-daemon/daemon/layout'
import { OPEN_SWARM, parsePort, parseSecret } from '@node-daemon/daemon/settings'
import { VERSION } from '@node-daemon/daemon/version'
import { GGUF_FILE } from '@node-daemon/runtime/files'
import { post } from './client.ts'
import { defaultOllamaModels, readOllamaModels } from './ollama.ts'
import { authCommand } from './auth.ts'
import { completionCommand } from './commands/completion.ts'
import { sdkCommand } from './commands/sdk.ts'
import { ollamaCommands } from './commands/ollama.ts'
import { trainCommands } from './commands/train.ts'
import { searchCommands } from './commands/search.ts'
import { apiOf, clientCommand, print, progressBar, repoOf, repoOption, request } from './command.ts'
import { clusterCommands } from './commands/cluster.ts'
import { contentCommands } from './commands/content.ts'
import { listUpload, multipartBody } from './upload.ts'
import type { Api } from './client.ts'
import type { UploadEntry } from './upload.ts'
import type { ConfigLayer } from '@node-daemon/daemon'

function collect (value: string, previous: string[] = []): string[] {
  return [...previous, value]
}

const secretOption = (): Option => new Option('--secret <hex|off>', `the cluster's private-network key: 64 hex digits, or '${OPEN_SWARM}' for an open swarm (env NODE_DAEMON_CLUSTER_SECRET; default: the repo's ${SWARM_KEY_FILE})`)
  .argParser((v) => parseSecret(v, '--secret'))

// Only init, start and worker load the node's packages, when they run: a client starts in a fraction of the time (packages/cli/test/startup.spec.ts).

async function init (opts: Record<string, any>): Promise<void> {
  const [{ formatSwarmKey, initRepo, loadConfig, readSwarmKey, writeDefaultConfig }, { peerIdFromPrivateKey }] = await Promise.all([import('@node-daemon/daemon'), import('@libp2p/peer-id')])
  const repo = repoOf(opts)
  const config = await loadConfig({ flags: { repo, cluster: { secret: opts.secret } } })
  const secret = config.cluster.secret
  const { privateKey, created, swarmKeyCreated } = await initRepo(repo, { secret })
  // An open swarm is remembered in config.yaml, or the next start would create a key.
  const cluster = secret === OPEN_SWARM ? { cluster: { secret: OPEN_SWARM } } : {}
  await writeDefaultConfig(repo, { api: { host: config.api.host, port: config.api.port }, swarm: config.swarm, ...cluster, log: config.log })
  process.stdout.write(`${created ? 'initialized' : 'already initialized:'} ${repo}\npeer id: ${peerIdFromPrivateKey(privateKey).toString()}\n`)
  // Guidance goes to stderr: stdout stays the two lines scripts read.
  const keyFile = join(repo, SWARM_KEY_FILE)
  if (secret === OPEN_SWARM) {
    process.stderr.write('open swarm: no private-network key, any IPFS node can connect\n')
    return
  }
  const inRepo = await readSwarmKey(repo)
  if (secret != null && inRepo != null && !swarmKeyCreated && Buffer.compare(inRepo, formatSwarmKey(secret)) !== 0) {
    process.stderr.write(`warning: ${keyFile} holds another key and is kept; nodes started without --secret use it\n`)
    return
  }
  process.stderr.write([
    `swarm key: ${keyFile}${swarmKeyCreated ? ' (created)' : ''}`,
    'every node of the cluster needs the same key: once this node runs, `node-daemon cluster invite` prints a join token',
    'that carries it, and a new machine joins with `node-daemon start --join <token>` alone (on a fresh repo: no init there)',
    ''
  ].join('\n'))
}

async function start (opts: Record<string, any>): Promise<void> {
  const [{ createLogger, loadConfig, parseTrustedPeers }, { startDaemon }] = await Promise.all([import('@node-daemon/daemon'), import('./daemon.ts')])
  const flags: ConfigLayer = {
    repo: opts.repo,
    api: { host: opts.apiHost, port: opts.apiPort, insecure: opts.apiInsecure === true ? true : undefined, initAdminKey: opts.initAdminKey === true ? true : undefined },
    swarm: { port: opts.swarmPort, bootstrap: opts.bootstrap, mdns: opts.mdns },
    cluster: { secret: opts.secret, trustedPeers: opts.trustedPeer?.flatMap((v: string) => parseTrustedPeers(v, '--trusted-peer') ?? []), joinToken: opts.join },
    // Only the flag's "no" is a setting; without it the config decides.
    inference: { defaultModels: opts.defaultModels === false ? false : undefined },
    content: { autoGc: opts.enableGc === true ? true : undefined },
    log: { level: opts.logLevel }
  }
  const config = await loadConfig({ flags, configFile: opts.config })
  const logger = createLogger(config.log.level)
  const daemon = await startDaemon(config, logger)
  const addresses = daemon.node.swarm.getMultiaddrs().map(ma => ma.toString())
  process.stdout.write([
    'node-daemon is ready',
    `peer id: ${daemon.node.peerId}`,
    ...addresses.map(a => `swarm: ${a}`),
    `api: ${daemon.url}`,
    ''
  ].join('\n'))
  let signals = 0
  const onSignal = (signal: string): void => {
    if (++signals > 1) {
      logger.warn('second signal: exiting without a clean stop')
      process.exit(1)
    }
    logger.info({ signal }, 'stopping')
    daemon.stop().then(() => { logger.flush(); process.exit(0) }, (err) => {
      logger.error({ err }, 'unclean stop')
      logger.flush()
      process.exit(1)
    })
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  daemon.stoppedByApi.then(() => { logger.info('stopped by the API\'s shutdown'); logger.flush(); process.exit(0) }, (err) => {
    logger.error({ err }, 'unclean stop')
    logger.flush()
    process.exit(1)
  })
}

/** Runs a training worker until a signal: what it does on stderr, or with --json a JSON line per event on stdout. */
async function worker (opts: Record<string, any>): Promise<void> {
  const [{ createWorker }, { logger }] = await Promise.all([import('@node-daemon/worker'), import('@libp2p/logger')])
  const { base: api } = await apiOf(opts)
  const farm = createWorker({ log: logger('node-daemon:worker') }, { api, clientId: opts.id, token: opts.token ?? process.env.NODE_DAEMON_TOKEN })
  const say = (event: object, line: string): void => {
    if (opts.json === true) process.stdout.write(`${JSON.stringify(event)}\n`)
    else process.stderr.write(`${new Date().toISOString()} ${line}\n`)
  }
  farm.addEventListener('task', (e) => { say({ event: 'task', ...e.detail }, `task ${e.detail.id}: rank ${e.detail.config.rank} of ${e.detail.config.world_size}, model ${e.detail.config.name}`) })
  farm.addEventListener('control', (e) => { say({ event: 'control', ...e.detail }, `task ${e.detail.task}: ${e.detail.action}`) })
  farm.addEventListener('result', (e) => { say({ event: 'result', ...e.detail }, `task ${e.detail.task} ${e.detail.status} after ${e.detail.steps} steps here${e.detail.checkpointPath == null ? '' : `, checkpoint ${e.detail.checkpointPath}`}`) })
  await farm.start()
  say({ event: 'connected', id: opts.id, api }, `worker ${opts.id as string} connected to ${api}; waiting for a task`)
  const onSignal = (): void => { void farm.stop().then(() => process.exit(0)) }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
}

/** Asks the running daemon for a join token and prints it alone on stdout; what it grants, and that it is a secret, on stderr. */
async function invite (opts: Record<string, any>): Promise<void> {
  const api = await apiOf(opts)
  const created = await request<{ token: string, role: string, expires_at: string, addresses: string[] }>(api, 'POST', '/api/v1/cluster/tokens', { expires: opts.expires, role: opts.voter === true ? 'voter' : 'learner' })
  const { role, expires_at: expiresAt, addresses } = created
  print(opts, created, c => c.token)
  process.stderr.write([
    `a join token for a ${role}, valid until ${expiresAt}, naming ${addresses.length} member address${addresses.length === 1 ? '' : 'es'}.`,
    'It is a secret: it holds the cluster\'s private-network key and lets whoever has it join. Pass it on privately.',
    'On the new machine: node-daemon start --join <token>   (or NODE_DAEMON_JOIN_TOKEN=<token> node-daemon start)',
    ''
  ].join('\n'))
}

/** Uploads a model's files through document 001's upload route and registers them under `name`; returns the model as registered. */
async function uploadModel (api: Api, name: string, files: UploadEntry[], opts: Record<string, any>): Promise<{ id: string, cid: string }> {
  const progress = progressBar('importing', files.reduce((sum, e) => sum + e.size, 0), opts)
  const fields: Record<string, string> = { modelId: name }
  if (opts.description != null) fields.description = opts.description
  if (opts.dtype != null) fields.dtype = opts.dtype
  const res = await post(api, new URL(`${api.base}/api/models/upload`), { upload: multipartBody(files, progress.add, fields) })
  progress.stop()
  const { model } = await res.json() as { model: { id: string, cid: string } }
  return model
}

/** Imports a model directory in the Hugging Face ONNX layout, or a GGUF file. */
async function modelImport (dir: string, opts: Record<string, any>): Promise<void> {
  const api = await apiOf(opts)
  const listed = await listUpload(dir, true)
  // Paths inside the model directory: the directory's own name is not part of the model; a lone file is the model.
  const files = listed.length === 1 && listed[0].file != null ? listed : listed.filter(e => e.file != null).map(e => ({ ...e, path: e.path.split('/').slice(1).join('/') }))
  print(opts, { model: await uploadModel(api, opts.name, files, opts) }, ({ model }) => `imported ${model.id} ${model.cid}`)
}

/**
 * Imports every model of an Ollama installation under its Ollama name: the
 * GGUF blob as the model, the license blob as its LICENSE, and the template,
 * system prompt and parameters as a Modelfile would set them.
 */
async function modelImportOllama (opts: Record<string, any>): Promise<void> {
  const api = await apiOf(opts)
  const models = await readOllamaModels(opts.modelsDir ?? defaultOllamaModels())
  if (models.length === 0) process.stderr.write('no Ollama models found\n')
  const imported = []
  for (const m of models) {
    const files: UploadEntry[] = [{ path: GGUF_FILE, file: m.model.file, size: m.model.size }]
    if (m.license != null) files.push({ path: 'LICENSE', file: m.license.file, size: m.license.size })
    const model = await uploadModel(api, m.name, files, opts)
    if (m.template != null || m.system != null || m.parameters != null) {
      const body = { model: m.name, from: m.name, template: m.template, system: m.system, parameters: m.parameters, stream: false }
      await request(api, 'POST', '/api/create', body)
    }
    // A line as each is imported; --json, one document at the end.
    if (opts.json !== true) process.stdout.write(`imported ${model.id} ${model.cid}\n`)
    imported.push(model)
  }
  if (opts.json === true) print(opts, { models: imported }, () => [])
}

/** The `node-daemon` command: `start` runs a daemon; the rest are thin clients of its HTTP API. */
export function program (): Command {
  const cmd = new Command('node-daemon')
    .description('A peer-to-peer node daemon: IPFS content, a Raft-replicated cluster state, inference and training')
    .version(VERSION)
    .showHelpAfterError()

  cmd.command('init')
    .description(`create a repo with a new identity, a private-network key (${SWARM_KEY_FILE}) and a default config.yaml`)
    .addOption(repoOption())
    .addOption(secretOption())
    .action(init)

  cmd.command('start')
    .description('run the daemon until SIGINT or SIGTERM')
    .addOption(repoOption())
    .option('--api-host <host>', 'API interface (default 127.0.0.1)')
    .option('--api-port <port>', 'API port (default 8000)', (v) => parsePort(v, '--api-port'))
    .option('--api-insecure', 'serve the API beyond loopback without credentials (env NODE_DAEMON_API_INSECURE)')
    .option('--init-admin-key', 'with no credential in the cluster yet, make an admin key and print it once (env NODE_DAEMON_INIT_ADMIN_KEY)')
    .option('--swarm-port <port>', 'libp2p TCP port (default 4001)', (v) => parsePort(v, '--swarm-port'))
    .option('--bootstrap <multiaddr>', 'peer to join through, besides those of --join; repeatable (a fresh repo also needs --join or --secret)', collect)
    .addOption(secretOption())
    .option('--join <token>', 'join the cluster of this token, from `node-daemon cluster invite`: it names the members, the key and the admission (env NODE_DAEMON_JOIN_TOKEN)')
    .option('--trusted-peer <peer-id>', "a peer that may vote and call admin operations, or '*' for all; repeatable (env NODE_DAEMON_CLUSTER_TRUSTED_PEERS; default '*' with a private-network key, else none but the founder)", collect)
    .option('--mdns', 'find peers on the LAN by multicast DNS (env NODE_DAEMON_MDNS)')
    .option('--no-default-models', 'do not register the embedded default models (env NODE_DAEMON_DEFAULT_MODELS=false)')
    .option('--enable-gc', "run a GC every content.gc_period_ms while the blocks are past the watermark, as Kubo's flag (env NODE_DAEMON_ENABLE_GC)")
    .option('--config <file>', 'YAML config file')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent')
    .action(start)

  clientCommand(cmd, 'worker')
    .description('run an external training worker: connect to a node and compute a share of its training jobs (document 004)')
    .option('--id <client-id>', 'the client id, unique among the workers of the node', `${hostname()}-${process.pid}`)
    .action(worker)

  const model = cmd.command('model').description('models of the cluster')
  clientCommand(model, 'import')
    .description('add a model directory in the Hugging Face ONNX layout (config.json, tokenizer.json, model.onnx, ...), its tarball (.tar, .tar.gz, .tgz) or a .gguf file, and register it')
    .argument('<dir-or-file>', 'the directory, a tarball of it, or a .gguf file')
    .requiredOption('--name <name>', 'the name to register it under, e.g. my-model or my-model:v2')
    .option('--description <text>', 'what the model is')
    .option('--dtype <variant>', 'the ONNX variant to run, of a repository with several: fp32, fp16, q4, q4f16, int8, uint8, quantized, bnb4 (default: the best each node runs)')
    .option('--no-progress', 'no progress bar')
    .action(modelImport)
  clientCommand(model, 'import-ollama')
    .description('import every model of an Ollama installation under its Ollama name, with its template, system prompt, parameters and license')
    .option('--models-dir <dir>', 'the Ollama models directory (default $OLLAMA_MODELS or ~/.ollama/models)')
    .option('--no-progress', 'no progress bar')
    .action(modelImportOllama)

  cmd.addCommand(authCommand())

  const cluster = cmd.command('cluster').description('the cluster')
  clientCommand(cluster, 'invite')
    .description('print a join token (a secret) that `node-daemon start --join <token>` joins this cluster with: the members\' addresses, the private-network key and an admission signed by the running node, which must be a trusted peer')
    .option('--expires <duration>', 'how long it admits nodes: 30m, 1h, 24h (at most 720h)', '24h')
    .option('--voter', 'admit a trusted peer, which may vote and call admin operations (default: a learner, which stores and serves only)')
    .action(invite)
  clusterCommands(cluster)
  contentCommands(cmd)

  ollamaCommands(cmd)
  trainCommands(cmd)
  sdkCommand(cmd)
  searchCommands(cmd)
  completionCommand(cmd)
  return cmd
}

export async function main (argv: string[]): Promise<void> {
  try {
    await program().parseAsync(argv)
  } catch (err: any) {
    process.stderr.write(`Error: ${err.message}\n`)
    process.exitCode = 1
  }
}
