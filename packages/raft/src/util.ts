import type { Entry } from './types.ts'

/** Bytes an entry counts for in size limits: its data plus a fixed header. */
export function entrySize (e: Entry): number {
  return e.data.byteLength + 16
}

/** The longest prefix of `ents` within `maxSize` bytes, never empty when `ents` is not. */
export function limitSize (ents: Entry[], maxSize?: number): Entry[] {
  if (maxSize === undefined || ents.length === 0) return ents
  let size = entrySize(ents[0])
  let n = 1
  for (; n < ents.length; n++) {
    size += entrySize(ents[n])
    if (size > maxSize) break
  }
  return n === ents.length ? ents : ents.slice(0, n)
}
