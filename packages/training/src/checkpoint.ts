/**
 * Checkpoints as content: one UnixFS directory per checkpoint, named by its
 * CID, that holds all a replica needs to go on: checkpoint.json (the job's
 * spec, the step, the model's config and where its other files are),
 * weights.safetensors and optimizer.safetensors. The same form serves to
 * resume a stopped job, to bring a worker in mid-job, and to export the
 * trained model.
 */
import { readJson } from './content-files.ts'
import { CheckpointError } from './errors.ts'
import { decodeSafetensors, encodeSafetensors } from './safetensors.ts'
import type { ReplicaState } from './replica.ts'
import type { TrainingSpec } from './spec.ts'
import type { Content } from '@node-daemon/content'
import type { OptimizerState, ParameterShape } from '@node-daemon/onnx'
import type { AbortOptions } from '@libp2p/interface'

export const CHECKPOINT_FORMAT = 'node-daemon/checkpoint@1'

export interface CheckpointManifest {
  format: typeof CHECKPOINT_FORMAT
  jobId: number
  /** Optimizer steps taken: the global step the job goes on from. */
  step: number
  spec: TrainingSpec
  /** The model's config.json. */
  config: Record<string, unknown>
  /** The directory the model came from (tokenizer and other files), '' for a fresh architecture. */
  baseModelCID: string
  datasetCID: string
}

export interface Checkpoint {
  manifest: CheckpointManifest
  state: ReplicaState
}

const encoder = new TextEncoder()

function slotKey (slot: string, name: string): string {
  return `${slot}/${name}`
}

/** Adds a checkpoint as a directory and pins it on this node; returns its CID. */
export async function writeCheckpoint (content: Pick<Content, 'addDirectory'>, manifest: CheckpointManifest, state: ReplicaState, parameters: ParameterShape[], options: AbortOptions = {}): Promise<string> {
  const weights = encodeSafetensors(Object.fromEntries(parameters.map(p => [p.name, { dtype: 'F32', shape: p.dims, data: state.weights[p.name] }])))
  const slots = state.optimizer?.slots ?? {}
  const optimizer = encodeSafetensors(
    // Before the first step an optimizer's buffers are empty: it makes them as it goes.
    Object.fromEntries(Object.entries(slots).flatMap(([slot, tensors]) => parameters.filter(p => tensors[p.name] != null).map(p => [slotKey(slot, p.name), { dtype: 'F32' as const, shape: p.dims, data: tensors[p.name] }]))),
    { step: String(state.optimizer?.step ?? 0), slots: Object.keys(slots).join(',') }
  )
  const files = [
    { path: 'checkpoint.json', content: encoder.encode(JSON.stringify(manifest, null, 2) + '\n') },
    { path: 'weights.safetensors', content: weights },
    { path: 'optimizer.safetensors', content: optimizer }
  ]
  const root = await content.addDirectory(files, { cidVersion: 1, rawLeaves: true, signal: options.signal })
  if (root == null) throw new CheckpointError('adding the checkpoint gave no directory')
  return root.toString()
}

/** Reads a checkpoint, fetching its blocks from the cluster when this node lacks them. */
export async function readCheckpoint (content: Pick<Content, 'readFile'>, cid: string, parameters: ParameterShape[] | undefined, options: AbortOptions = {}): Promise<Checkpoint> {
  let manifest: CheckpointManifest
  try {
    manifest = await readJson(content, `${cid}/checkpoint.json`, options)
  } catch (err: any) {
    if (options.signal?.aborted === true) throw err
    throw new CheckpointError(`${cid} is not a checkpoint: ${err.message}`, { cause: err })
  }
  if (manifest.format !== CHECKPOINT_FORMAT) throw new CheckpointError(`${cid} is not a checkpoint of format ${CHECKPOINT_FORMAT}`)
  const weights = decodeSafetensors(await content.readFile(`${cid}/weights.safetensors`, options)).tensors
  const optimizer = decodeSafetensors(await content.readFile(`${cid}/optimizer.safetensors`, options))
  const names = parameters?.map(p => p.name) ?? Object.keys(weights)
  const state: ReplicaState = { weights: {} }
  for (const name of names) {
    const tensor = weights[name]
    if (tensor?.dtype !== 'F32') throw new CheckpointError(`checkpoint ${cid} lacks the float32 parameter ${name}`)
    state.weights[name] = tensor.data as Float32Array
  }
  const step = Number(optimizer.metadata.step ?? 0)
  if (!Number.isSafeInteger(step) || step < 0) throw new CheckpointError(`checkpoint ${cid} has a bad optimizer step`)
  const slots: OptimizerState['slots'] = {}
  for (const slot of (optimizer.metadata.slots ?? '').split(',').filter(s => s !== '')) {
    slots[slot] = {}
    for (const name of names) {
      const tensor = optimizer.tensors[slotKey(slot, name)]
      if (tensor == null && step === 0) continue
      if (tensor?.dtype !== 'F32') throw new CheckpointError(`checkpoint ${cid} lacks the optimizer's ${slot} of ${name}`)
      slots[slot][name] = tensor.data as Float32Array
    }
  }
  // A first checkpoint, made before any step, has no optimizer yet: each makes its buffers as it goes.
  if (step > 0 || Object.keys(slots).length > 0) state.optimizer = { step, slots }
  return { manifest, state }
}
