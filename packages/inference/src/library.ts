/**
 * The model library: names in the cluster's model registry, bytes in IPFS as
 * directory DAGs in the Hugging Face ONNX layout or holding a GGUF file, and
 * a copy on this node's disk for onnxruntime or llama.cpp to load. A record's metadata holds what inference
 * needs without the bytes (kind, family, context) and what a Modelfile set
 * (template, system prompt, parameters).
 */
import { mkdir, open, readdir, rename, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join, normalize } from 'node:path'
import { ModelExistsError, ModelNotFoundError } from '@node-daemon/cluster'
import { ModelOwnershipError } from './errors.ts'
import { configOf, poolingOf, readGguf, summarize as ggufSummary } from '@node-daemon/gguf'
import { configFromGenai, GGUF_FILE, InvalidModelError, isGgufModel, loadModel, missingModelFiles, TextCodec } from '@node-daemon/runtime'
import { raceSignal } from 'race-signal'
import { InvalidModelfileError } from './errors.ts'
import { renderModelfile } from './modelfile.ts'
import { asCID, fullName } from './names.ts'
import type { GenerateOptions, ImportParams, ModelArchitecture, ModelDetails, ModelSummary, ProgressEvent } from './interface.ts'
import type { Modelfile } from './modelfile.ts'
import type { AbortOptions } from '@libp2p/interface'
import type { Cluster, ModelRecord, RegisteredInfo } from '@node-daemon/cluster'
import type { Content } from '@node-daemon/content'

/** What a registry record's metadata says of a model. */
export interface ModelProfile {
  format: 'hf-onnx' | 'gguf'
  kind: 'causal-lm' | 'encoder' | 'reranker'
  family: string
  contextLength: number
  /** Elements of the weights; in records made before they were counted, their bytes / 4. */
  parameters: number
  /** The weights' type as Ollama names it; unset in records made before it was read. */
  quantization?: string
  /**
   * The ONNX variant (fp32, fp16, q4…) an import or a Modelfile asked for;
   * unset, each node loads the best its execution provider runs.
   */
  dtype?: string
  /** Bytes of all files. */
  size: number
  /** What the model was created from, for the Modelfile /api/show gives. */
  from?: string
  template?: string
  system?: string
  options: GenerateOptions
}

export interface ResolvedModel {
  /** The registry id, or the CID for a model named by CID only. */
  name: string
  cid: string
  record?: ModelRecord
  profile?: ModelProfile
}

export interface LibraryComponents {
  content: Content
  cluster: Cluster
}

export interface LibraryInit {
  /** Where models are unpacked for onnxruntime: <dir>/<cid>/. */
  dir: string
  /** Copies of a registered model's bytes in the cluster. */
  replicationFactor?: number
}

const COMPLETE = '.complete'
/** Marks a directory still being unpacked: `<cid>.part-<pid>-<time>`. */
const PART = '.part-'
/** Tokenizers kept for counting prompts: a real one holds megabytes. */
const MAX_CODECS = 8
/** A name a directory entry may have on this node's disk: no separators, no control characters. */
// eslint-disable-next-line no-control-regex -- control characters are what it refuses
const SAFE_NAME = /^[^/\\\u0000-\u001f\u007f]{1,255}$/

export class ModelLibrary {
  readonly #content: Content
  readonly #cluster: Cluster
  readonly #dir: string
  readonly #replication: number
  /** One unpacking per CID at a time, with the progress listeners of everyone waiting for it. */
  readonly #unpacking = new Map<string, { done: Promise<string>, listeners: Set<(event: ProgressEvent) => void> }>()
  /** CIDs whose directory is complete on disk. */
  readonly #unpacked = new Set<string>()
  /** Tokenizers of the latest models whose prompts were counted, by CID, newest last. */
  readonly #codecs = new Map<string, Promise<TextCodec>>()
  /** Unpacks run for the library, not for whoever asked first: aborted when it stops. */
  #lifetime = new AbortController()

  constructor (components: LibraryComponents, init: LibraryInit) {
    this.#content = components.content
    this.#cluster = components.cluster
    this.#dir = init.dir
    this.#replication = init.replicationFactor ?? 3
  }

  /** Removes the half-unpacked copies that a daemon killed while unpacking left behind. */
  async start (): Promise<void> {
    if (this.#lifetime.signal.aborted) this.#lifetime = new AbortController()
    const names = await readdir(this.#dir).catch(() => [])
    await Promise.all(names.filter(name => name.includes(PART)).map(async name => rm(join(this.#dir, name), { recursive: true, force: true })))
  }

  stop (): void {
    this.#lifetime.abort(new Error('the daemon is stopping'))
  }

  /** A name (with or without its tag) or a CID to the model; a name is looked up as the cluster's findModel does. */
  async resolve (name: string, options: AbortOptions = {}): Promise<ResolvedModel> {
    const cid = asCID(name)
    if (cid != null) {
      const models = await this.#cluster.getAllModels({ ...options, local: true })
      const record = models.find(m => m.modelCID === cid.toString() && m.kind === 'model')
      return record != null ? view(record) : { name: cid.toString(), cid: cid.toString() }
    }
    let id: string
    try {
      id = fullName(name)
    } catch {
      throw new ModelNotFoundError(`model "${name}" not found`)
    }
    const record = await this.#cluster.findModel(id, options)
    if (record?.kind !== 'model' || !record.isActive) throw new ModelNotFoundError(`model "${name}" not found, try pulling it first`)
    return view(record)
  }

  async list (options: AbortOptions = {}): Promise<ModelSummary[]> {
    const models = await this.#cluster.getAllModels(options)
    return models.filter(m => m.kind === 'model' && isProfile(m.metadata)).map(m => summary(view(m)))
  }

  async details (name: string, options: AbortOptions = {}): Promise<ModelDetails> {
    const model = await this.resolve(name, options)
    const profile = model.profile ?? await this.profileOf(model.cid, options)
    const gguf = profile.format === 'gguf' ? await readGguf(join(await this.unpack(model.cid, options), GGUF_FILE)) : undefined
    const config = gguf != null ? configOf(gguf) : await this.#config(model.cid, options)
    return {
      ...summary({ ...model, profile }),
      template: profile.template ?? (gguf != null ? ggufSummary(gguf).chatTemplate ?? '' : await this.#chatTemplate(model.cid, options)),
      system: profile.system ?? '',
      options: profile.options,
      modelfile: renderModelfile({ from: profile.from ?? model.cid, options: profile.options, template: profile.template, system: profile.system, dtype: profile.dtype }),
      config,
      architecture: architectureOf(config),
      license: model.record?.license ?? await this.#license(model.cid, config, options)
    }
  }

  /** config.json, or what an onnxruntime-genai build without one says of the model in genai_config.json. */
  async #config (cid: string, options: AbortOptions): Promise<Record<string, any>> {
    const { entries } = await this.#content.ls(cid, options)
    if (!entries.some(e => e.name === 'config.json') && entries.some(e => e.name === 'genai_config.json')) return configFromGenai(JSON.parse(await this.readText(`${cid}/genai_config.json`, options)))
    return JSON.parse(await this.readText(`${cid}/config.json`, options))
  }

  /** The text of the directory's LICENSE file, as Ollama shows a model's license layer; else what config.json says. */
  async #license (cid: string, config: Record<string, unknown>, options: AbortOptions): Promise<string> {
    const { entries } = await this.#content.ls(cid, options)
    const file = entries.find(e => e.type === 'file' && /^licen[cs]e(\.md|\.txt)?$/i.test(e.name))
    if (file != null) return this.readText(`${cid}/${file.name}`, options)
    const license = config.license ?? config['general.license']
    return typeof license === 'string' ? license : ''
  }

  /** A small file of the content store as text: a config, a prompt, a response. */
  async readText (path: string, options: AbortOptions = {}): Promise<string> {
    return Buffer.from(await this.#content.readFile(path, options)).toString('utf8')
  }

  /**
   * How many tokens the model's own tokenizer makes of `text`, before any
   * template adds its own: a lower bound of what the prompt takes, read from
   * the model's tokenizer.json without loading its weights. Undefined for a
   * GGUF model, whose tokenizer is inside the weights file.
   */
  async tokenCount (model: ResolvedModel, text: string, options: AbortOptions = {}): Promise<number | undefined> {
    if (model.profile?.format !== 'hf-onnx') return undefined
    let codec = this.#codecs.get(model.cid)
    if (codec == null) {
      codec = (async () => {
        const [tokenizer, config] = await Promise.all([
          this.readText(`${model.cid}/tokenizer.json`, options),
          this.readText(`${model.cid}/tokenizer_config.json`, options).catch(() => '{}')
        ])
        return new TextCodec(JSON.parse(tokenizer), JSON.parse(config))
      })()
      this.#codecs.set(model.cid, codec)
      // A read that failed is tried again by the next caller.
      codec.catch(() => { this.#codecs.delete(model.cid) })
      if (this.#codecs.size > MAX_CODECS) this.#codecs.delete(this.#codecs.keys().next().value as string)
    }
    return (await codec).encode(text).length
  }

  async #chatTemplate (cid: string, options: AbortOptions): Promise<string> {
    const text = await this.readText(`${cid}/tokenizer_config.json`, options).catch(() => '{}')
    const template = JSON.parse(text).chat_template
    return typeof template === 'string' ? template : ''
  }

  /**
   * The model's directory on this node's disk, fetched from the cluster
   * first if its blocks are elsewhere; progress per file as Ollama's pull
   * reports layers.
   */
  async unpack (cid: string, options: AbortOptions & { onProgress?: (event: ProgressEvent) => void } = {}): Promise<string> {
    const dir = join(this.#dir, cid)
    // A CID's directory, once complete, never changes and is never removed here: every request asks, a stat each was 1% of an ingest.
    if (this.#unpacked.has(cid)) return dir
    if (await exists(join(dir, COMPLETE))) {
      this.#unpacked.add(cid)
      return dir
    }
    let pending = this.#unpacking.get(cid)
    if (pending == null) {
      const listeners = new Set<(event: ProgressEvent) => void>()
      const done = this.#unpackOnce(cid, dir, { signal: this.#lifetime.signal, onProgress: event => { for (const listener of listeners) listener(event) } })
        .finally(() => this.#unpacking.delete(cid))
      // Every caller may have stopped waiting by the time it fails.
      done.catch(() => {})
      pending = { done, listeners }
      this.#unpacking.set(cid, pending)
    }
    // Concurrent callers share one unpack; each stops waiting when its own signal aborts, and the unpack goes on.
    const { onProgress } = options
    if (onProgress != null) pending.listeners.add(onProgress)
    try {
      return await raceSignal(pending.done, options.signal)
    } finally {
      if (onProgress != null) pending.listeners.delete(onProgress)
    }
  }

  async #unpackOnce (cid: string, dir: string, options: AbortOptions & { onProgress?: (event: ProgressEvent) => void }): Promise<string> {
    const tmp = `${dir}${PART}${process.pid}-${Date.now()}`
    await rm(tmp, { recursive: true, force: true })
    // Only the signal goes to the reads: Helia calls an onProgress it is given with its own block events, which are not Ollama's lines.
    const reads = { signal: options.signal }
    try {
      for (const file of await this.files(cid, reads)) {
        const target = normalize(join(tmp, file.path))
        if (!target.startsWith(tmp)) throw new InvalidModelError(`unsafe path ${file.path} in model ${cid}`)
        await mkdir(dirname(target), { recursive: true })
        const handle = await open(target, 'w')
        let completed = 0
        try {
          for await (const chunk of this.#content.cat(`${cid}/${file.path}`, reads)) {
            await handle.write(chunk)
            completed += chunk.byteLength
            options.onProgress?.({ status: `pulling ${file.cid}`, digest: file.cid, total: file.size, completed })
          }
        } finally {
          await handle.close()
        }
        options.onProgress?.({ status: `pulling ${file.cid}`, digest: file.cid, total: file.size, completed: file.size })
      }
      await writeFile(join(tmp, COMPLETE), cid)
      await rm(dir, { recursive: true, force: true })
      await rename(tmp, dir)
      this.#unpacked.add(cid)
      return dir
    } catch (err) {
      await rm(tmp, { recursive: true, force: true })
      throw err
    }
  }

  /** The files of the model directory `cid`, refusing a CID that is no such directory and names no file could have on disk. */
  async files (cid: string, options: AbortOptions = {}): Promise<Array<{ path: string, cid: string, size: number }>> {
    const files = await this.#filesUnder(cid, '', options)
    const missing = missingModelFiles(files.map(f => f.path))
    if (missing.length > 0 && !files.some(f => f.path === GGUF_FILE)) throw new InvalidModelError(`${cid} is not a model directory in the Hugging Face ONNX layout, nor one with a ${GGUF_FILE}: it has no ${missing.join(', ')}`)
    return files
  }

  async #filesUnder (cid: string, prefix: string, options: AbortOptions): Promise<Array<{ path: string, cid: string, size: number }>> {
    const { entries } = await this.#content.ls(prefix === '' ? cid : `${cid}/${prefix}`, options)
    const out: Array<{ path: string, cid: string, size: number }> = []
    for (const entry of entries) {
      if (!SAFE_NAME.test(entry.name) || entry.name === '.' || entry.name === '..') throw new InvalidModelError(`model ${cid} has an entry named ${JSON.stringify(entry.name.slice(0, 64))}, which no file may have`)
      const path = prefix === '' ? entry.name : `${prefix}/${entry.name}`
      if (entry.type === 'directory') out.push(...await this.#filesUnder(cid, path, options))
      else out.push({ path, cid: entry.cid.toString(), size: entry.size })
    }
    return out
  }

  /**
   * Reads what the registry records of a model from its files, loading it
   * once to see its inputs and outputs; with `dtype`, of that variant, which
   * the record then keeps.
   */
  async profileOf (cid: string, options: AbortOptions & { dtype?: string } = {}): Promise<ModelProfile> {
    const dir = await this.unpack(cid, options)
    if (await isGgufModel(dir)) return this.#ggufProfile(cid, dir, options)
    const model = await loadModel(dir, { signal: options.signal, dtype: options.dtype })
    try {
      const files = await this.files(cid, options)
      return {
        format: 'hf-onnx',
        kind: model.kind,
        family: model.info.family,
        contextLength: model.info.contextLength,
        parameters: model.info.parameters > 0 ? model.info.parameters : Math.round(model.info.size / 4),
        quantization: model.info.quantization,
        ...(options.dtype != null ? { dtype: options.dtype } : {}),
        size: files.reduce((n, f) => n + f.size, 0),
        options: {}
      }
    } finally {
      await model.release()
    }
  }

  /** A GGUF model's profile, from its file's header: llama.cpp is not loaded for it, as a file of gigabytes would take long. */
  async #ggufProfile (cid: string, dir: string, options: AbortOptions): Promise<ModelProfile> {
    let facts: ReturnType<typeof ggufSummary>
    let pooling: ReturnType<typeof poolingOf>
    try {
      const file = await readGguf(join(dir, GGUF_FILE))
      facts = ggufSummary(file)
      pooling = poolingOf(file)
    } catch (err: any) {
      throw new InvalidModelError(`${GGUF_FILE}: ${err.name === 'GgufFormatError' ? err.message : 'cannot be read'}`)
    }
    const files = await this.files(cid, options)
    return {
      format: 'gguf',
      // An embedding model's file says how it pools; a reranker's pools by rank.
      kind: pooling == null ? 'causal-lm' : pooling === 'rank' ? 'reranker' : 'encoder',
      family: facts.architecture,
      contextLength: facts.contextLength ?? 0,
      parameters: facts.parameters,
      quantization: facts.quantization,
      size: files.reduce((n, f) => n + f.size, 0),
      options: {}
    }
  }

  /** Adds a model directory as content (Kubo's CIDs), checks that it loads, and registers it under `name`. */
  async import (params: ImportParams, options: AbortOptions = {}): Promise<ModelSummary> {
    const id = fullName(params.name)
    // Checked before the files are taken in, so that a refused upload stores nothing.
    const owner = (await this.#cluster.getAllModels(options)).find(m => m.modelId === id)?.account
    if (owner != null && params.account != null && params.account !== owner) throw new ModelOwnershipError(`${id} belongs to another account: only its owner or an admin uploads new versions of it`)
    const root = (await this.#content.addDirectory(candidates(params.files), { pin: true, signal: options.signal }))?.toString()
    if (root == null) throw new InvalidModelError('no files were given')
    const profile = await this.profileOf(root, { ...options, dtype: params.dtype })
    return summary(view(await this.#save(id, root, profile, { description: params.description ?? '', framework: params.framework, license: params.license, account: params.account }, options, params.displayName)))
  }

  /** Registers or updates `id` to point at `cid` with `profile`; an update makes a new version. */
  async #save (id: string, cid: string, profile: ModelProfile, about: Described, options: AbortOptions, displayName?: string): Promise<ModelRecord> {
    const existing = (await this.#cluster.getAllModels(options)).find(m => m.modelId === id)
    const metadata = profile as unknown as Record<string, unknown>
    if (existing == null) {
      return this.#cluster.registerModel({ modelId: id, modelCID: cid, name: displayName ?? id, ...about, kind: 'model', metadata, replicationFactor: this.#replication }, options)
    }
    // The registry keeps a model's display name from its registration; a new version cannot change it, so a different one is refused rather than dropped.
    if (displayName != null && displayName !== existing.name) throw new ModelExistsError(`${id} is registered with the name ${JSON.stringify(existing.name)}, which a new version does not change`)
    // Ownership stays with the registration.
    const updated = await this.#cluster.updateModel(id, cid, { ...options, description: about.description, framework: about.framework, license: about.license, metadata })
    return updated.isActive ? updated : this.#cluster.setModelActive(id, true, options)
  }

  async copy (source: string, destination: string, options: AbortOptions = {}): Promise<void> {
    const model = await this.resolve(source, options)
    const profile = model.profile ?? await this.profileOf(model.cid, options)
    await this.#save(fullName(destination), model.cid, profile, describedBy(model.record), options)
  }

  async delete (name: string, options: AbortOptions = {}): Promise<void> {
    const model = await this.resolve(name, options)
    if (model.record == null) throw new ModelNotFoundError(`model "${name}" not found`)
    await this.#cluster.removeModel(model.record.modelId, options)
  }

  /** A model from a Modelfile: the base's bytes with the Modelfile's template, system prompt and parameters. */
  async create (name: string, modelfile: Modelfile, options: AbortOptions & { onProgress?: (event: ProgressEvent) => void } = {}): Promise<ModelSummary> {
    const id = fullName(name)
    let base: ResolvedModel
    try {
      base = await this.resolve(modelfile.from, options)
    } catch (err: any) {
      if (err.name === 'ModelNotFoundError') throw new InvalidModelfileError(`FROM ${modelfile.from}: no such model or CID in the cluster`)
      throw err
    }
    options.onProgress?.({ status: 'using existing layer', digest: base.cid })
    // Another variant of the same bytes is read again: its size, parameters and quantization are its own.
    const inherited = modelfile.dtype == null || modelfile.dtype === base.profile?.dtype ? base.profile ?? await this.profileOf(base.cid, options) : await this.profileOf(base.cid, { ...options, dtype: modelfile.dtype })
    const profile: ModelProfile = {
      ...inherited,
      from: modelfile.from,
      template: modelfile.template ?? inherited.template,
      system: modelfile.system ?? inherited.system,
      options: { ...inherited.options, ...modelfile.options }
    }
    options.onProgress?.({ status: 'writing manifest' })
    return summary(view(await this.#save(id, base.cid, profile, describedBy(base.record), options)))
  }
}

/** The first of `keys` config.json sets to a positive whole number: GPT-2's names and the newer ones differ. */
function configNumber (config: Record<string, unknown>, ...keys: string[]): number | undefined {
  for (const key of keys) {
    const value = config[key]
    if (typeof value === 'number' && Number.isInteger(value) && value > 0) return value
  }
  return undefined
}

function architectureOf (config: Record<string, unknown>): ModelArchitecture {
  const headCount = configNumber(config, 'num_attention_heads', 'n_head')
  return {
    embeddingLength: configNumber(config, 'hidden_size', 'n_embd', 'd_model'),
    blockCount: configNumber(config, 'num_hidden_layers', 'n_layer', 'num_layers'),
    headCount,
    headCountKv: configNumber(config, 'num_key_value_heads') ?? headCount,
    vocabSize: configNumber(config, 'vocab_size')
  }
}

/** What a registration says of a model besides its bytes and profile. */
type Described = { description: string } & RegisteredInfo

/** A copy, or a model made from another, is described as its source was. */
const describedBy = (record: ModelRecord | undefined): Described => ({ description: record?.description ?? '', framework: record?.framework, license: record?.license })

function view (record: ModelRecord): ResolvedModel {
  const profile = isProfile(record.metadata) ? record.metadata as unknown as ModelProfile : undefined
  return { name: record.modelId, cid: record.modelCID, record, profile }
}

function summary (model: ResolvedModel): ModelSummary {
  const p = model.profile
  return {
    name: model.name,
    cid: model.cid,
    kind: p?.kind ?? 'causal-lm',
    family: p?.family ?? 'unknown',
    displayName: model.record?.name ?? model.name,
    description: model.record?.description ?? '',
    framework: model.record?.framework,
    license: model.record?.license,
    size: p?.size ?? 0,
    active: model.record?.isActive ?? true,
    version: model.record?.version ?? 1,
    modifiedAt: new Date((model.record?.timestamp ?? 0) * 1000),
    parameters: p?.parameters ?? 0,
    quantization: p?.quantization ?? '',
    contextLength: p?.contextLength ?? 0,
    format: p?.format === 'gguf' ? 'gguf' : 'onnx'
  }
}

function isProfile (metadata: Record<string, unknown>): boolean {
  return metadata.format === 'hf-onnx' || metadata.format === 'gguf'
}

async function * candidates (files: ImportParams['files']): AsyncIterable<{ path: string, content: AsyncIterable<Uint8Array> | Uint8Array }> {
  let ggufSeen = false
  for await (const file of files) {
    const path = normalize(file.path).replace(/^(\.\/)+/, '')
    if (path.startsWith('..') || path.startsWith('/') || !path.split('/').every(name => SAFE_NAME.test(name))) throw new InvalidModelError(`unsafe path ${JSON.stringify(file.path.slice(0, 256))}`)
    // A GGUF file imported as it was downloaded (llama-3.2-1b.Q4_K_M.gguf) is the directory's model.gguf.
    const gguf = !path.includes('/') && path.endsWith('.gguf')
    if (gguf && ggufSeen) throw new InvalidModelError('a model directory holds one GGUF file')
    ggufSeen ||= gguf
    yield { path: gguf ? GGUF_FILE : path, content: file.content }
  }
}

async function exists (path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false)
}
