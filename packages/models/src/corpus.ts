/**
 * The public-domain English prose the default models learn from: three of
 * Jane Austen's novels, committed under packages/models/corpus (see its
 * README.md for where they come from).
 */
import { readFile } from 'node:fs/promises'

export const CORPUS_FILES: readonly string[] = ['pride-and-prejudice.txt', 'sense-and-sensibility.txt', 'persuasion.txt']

/** The corpus as one string per novel, paragraphs separated by blank lines. */
export async function readCorpus (options: { signal?: AbortSignal } = {}): Promise<string[]> {
  return await Promise.all(CORPUS_FILES.map(async (file) => await readFile(new URL(`../corpus/${file}`, import.meta.url), { encoding: 'utf8', signal: options.signal })))
}
