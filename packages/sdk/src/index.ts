/**
 * Client SDKs generated from the daemon's OpenAPI document (the one its API
 * serves at /api/v0/openapi.json), for `node-daemon sdk`: TypeScript, as
 * openapi-typescript's types with a small typed fetch client, and Python, as
 * a package of the standard library with a TypedDict per body and a method
 * per route. Nothing here reaches the network: the caller brings the
 * document.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, join, resolve, sep } from 'node:path'
import { pythonSdk } from './python.ts'
import { typescriptSdk } from './typescript.ts'
import type { OpenApiDocument } from './operations.ts'

export { operationsOf } from './operations.ts'
export type { OpenApiDocument, Operation } from './operations.ts'

export const SDK_LANGUAGES = ['typescript', 'python'] as const
export type SdkLanguage = typeof SDK_LANGUAGES[number]

/** One file of an SDK, by its path relative to the output directory. */
export interface SdkFile {
  path: string
  content: string
}

export interface SdkOptions {
  language: SdkLanguage
  /** The package's name: an npm name for TypeScript, a module name for Python. Default node-daemon-client / node_daemon_client. */
  name?: string
}

/** A language the generator does not write. */
export class UnsupportedLanguageError extends Error {
  static name = 'UnsupportedLanguageError'
  name = 'UnsupportedLanguageError'
}

/** A document that is not OpenAPI 3. */
export class InvalidOpenApiError extends Error {
  static name = 'InvalidOpenApiError'
  name = 'InvalidOpenApiError'
}

/** The files of an SDK of `document` in `options.language`. */
export async function generateSdk (document: unknown, options: SdkOptions): Promise<SdkFile[]> {
  const doc = document as Partial<OpenApiDocument> | null
  if (typeof doc?.openapi !== 'string' || !doc.openapi.startsWith('3.') || typeof doc.paths !== 'object' || doc.paths == null) {
    throw new InvalidOpenApiError('the document is not an OpenAPI 3 document with paths')
  }
  switch (options.language) {
    case 'typescript': return typescriptSdk(doc as OpenApiDocument, { name: options.name ?? 'node-daemon-client' })
    case 'python': return pythonSdk(doc as OpenApiDocument, { name: options.name ?? 'node_daemon_client' })
    default: throw new UnsupportedLanguageError(`no SDK for ${JSON.stringify(options.language)}; languages: ${SDK_LANGUAGES.join(', ')}`)
  }
}

/** Writes `files` under `out` (made if missing), and answers the paths written. */
export async function writeSdk (out: string, files: SdkFile[]): Promise<string[]> {
  const root = resolve(out)
  const written: string[] = []
  for (const file of files) {
    const path = resolve(join(root, file.path))
    // The generator names its files; this keeps any of them from landing outside `out`.
    if (!path.startsWith(root + sep)) throw new Error(`${file.path} is outside the output directory`)
    await mkdir(dirname(path), { recursive: true })
    await writeFile(path, file.content)
    written.push(path)
  }
  return written
}
