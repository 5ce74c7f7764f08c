/**
 * One daemon on its embedded defaults with the ollama and openai clients
 * pointed at it, ready once both default models are listed: what the tests
 * of the inference families start from.
 */
import { DEFAULT_MODELS } from '@node-daemon/models'
import { Ollama } from 'ollama'
import OpenAI from 'openai'
import { waitFor } from './cluster.ts'
import { startTestDaemon } from './daemon.ts'
import type { TestDaemon } from './daemon.ts'

export interface ClientsDaemon {
  daemon: TestDaemon
  ollama: Ollama
  openai: OpenAI
}

export async function startWithClients (): Promise<ClientsDaemon> {
  const daemon = await startTestDaemon({ inference: { defaultModels: true } })
  const ollama = new Ollama({ host: daemon.url })
  const openai = new OpenAI({ baseURL: `${daemon.url}/v1`, apiKey: 'unused', maxRetries: 0 })
  try {
    await waitFor('the default models', async () => {
      const names = (await ollama.list()).models.map(m => m.name)
      return names.includes(`${DEFAULT_MODELS.generate}:latest`) && names.includes(`${DEFAULT_MODELS.embed}:latest`)
    }, 120_000)
  } catch (err) {
    await daemon.cleanup()
    throw err
  }
  return { daemon, ollama, openai }
}
