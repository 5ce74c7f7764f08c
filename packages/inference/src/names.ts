/**
 * Model names as Ollama writes them: `name[:tag]`, `latest` when the tag is
 * left out; the registry keys models by the full form. A CID is accepted
 * wherever a name is.
 */
import { parseCID } from '@node-daemon/content'
import type { CID } from 'multiformats/cid'
import { InvalidModelfileError } from './errors.ts'

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9._/-]{0,127}(:[a-zA-Z0-9][a-zA-Z0-9._-]{0,63})?$/

/** `tiny-gpt` → `tiny-gpt:latest`; throws on names Ollama would refuse. */
export function fullName (name: string): string {
  const trimmed = name.trim()
  if (!NAME.test(trimmed)) throw new InvalidModelfileError(`invalid model name ${JSON.stringify(name.slice(0, 100))}`)
  return trimmed.includes(':') ? trimmed : `${trimmed}:latest`
}

export function asCID (value: string): CID | undefined {
  try {
    return parseCID(value.trim())
  } catch {
    return undefined
  }
}
