/**
 * PyTorch as the training bench's peer (torch-training.py): Debian's
 * python3-torch, installed from apt at bench time when missing, with
 * OpenBLAS, since the reference BLAS that python3-torch pulls in by itself
 * makes PyTorch many times slower than it runs anywhere. OpenBLAS's OpenMP
 * build, whose threads are PyTorch's own and wait passively, as the
 * daemon's onnxruntime threads do: the pthreads build's spin beside
 * PyTorch's, and on two busy cores its two threads ran 30 times slower
 * than one. The python3 on PATH
 * may be another one without torch: /usr/bin/python3 is Debian's.
 */
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ROOT } from './daemon.ts'
import { aptInstall, freePort } from './host.ts'

const run = promisify(execFile)
const PYTHON = '/usr/bin/python3'
const SCRIPT = join(ROOT, 'bench', 'lib', 'torch-training.py')
const PACKAGES = ['python3-torch', 'libopenblas0-openmp']

export interface TorchShape {
  inputs: number
  hidden: number[]
  classes: number
  batch: number
  steps: number
  threads: number
}

/** Installs the peer's Debian packages unless they are there. */
export async function ensureTorch (): Promise<void> {
  const installed = await run('dpkg', ['-s', ...PACKAGES]).then(({ stdout }) => stdout.split('\n').filter(l => l === 'Status: install ok installed').length === PACKAGES.length, () => false)
  if (installed) return
  await aptInstall(PACKAGES)
}

async function python (args: Record<string, unknown>, threads: number): Promise<any> {
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), OMP_WAIT_POLICY: 'PASSIVE' }
  const { stdout } = await run(PYTHON, [SCRIPT, JSON.stringify(args)], { env, timeout: 600_000 })
  return stdout.trim() === '' ? undefined : JSON.parse(stdout.trim().split('\n').at(-1) as string)
}

/** Samples/s of a plain PyTorch training loop on one process. */
export async function torchSamplesPerSecond (shape: TorchShape): Promise<number> {
  return (await python({ mode: 'one', ...shape }, shape.threads)).samples_per_second
}

/** Two DDP ranks over gloo on 127.0.0.1: the mean step with its all-reduce and without, and samples/s of the global batch. */
export async function torchDdp (shape: TorchShape): Promise<{ stepMs: number, computeMs: number, samplesPerSecond: number }> {
  const port = await freePort()
  const [rank0] = await Promise.all([0, 1].map(async rank => python({ mode: 'ddp', rank, port, ...shape }, shape.threads)))
  return { stepMs: rank0.step_ms, computeMs: rank0.compute_ms, samplesPerSecond: rank0.samples_per_second }
}
