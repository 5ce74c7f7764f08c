import { CID } from 'multiformats/cid'
import { InvalidCIDError } from './errors.ts'

export interface ContentPath {
  cid: CID
  /** Segments after the root CID, without empty ones. */
  rest: string[]
}

/** Parses a CID, `/ipfs/<cid>[/path]` or `<cid>/path`, as Kubo accepts them. */
export function parsePath (input: string): ContentPath {
  if (typeof input !== 'string' || input.length === 0) {
    throw new InvalidCIDError('a CID or /ipfs/ path is required')
  }
  let parts = input.split('/').filter(p => p.length > 0)
  if (input.startsWith('/')) {
    if (parts[0] !== 'ipfs') {
      throw new InvalidCIDError(`unsupported path ${JSON.stringify(input)}: only /ipfs/ paths can be read`)
    }
    parts = parts.slice(1)
  }
  const [root, ...rest] = parts
  return { cid: parseCID(root ?? ''), rest }
}

/**
 * Longer than any CID in use: a CID with a 128-byte identity digest (Kubo's
 * limit) is about 220 characters in base32. Base58 decoding takes time
 * quadratic in the length, so longer input is refused before it is decoded.
 */
export const MAX_CID_LENGTH = 512

/** CIDs parsed lately: a cluster pin request parses its CID three times on its way (check, size, pin), each a base58 decode. */
const parsed = new Map<string, CID>()
const PARSED_KEPT = 4096

export function parseCID (input: string): CID {
  const known = parsed.get(input)
  if (known != null) return known
  if (input.length > MAX_CID_LENGTH) throw new InvalidCIDError(`invalid CID: ${input.length} characters, more than a CID has`)
  let cid: CID
  try {
    cid = CID.parse(input)
  } catch {
    throw new InvalidCIDError(`invalid CID ${JSON.stringify(input.slice(0, 100))}`)
  }
  // CIDs are immutable, so one instance serves every caller; the oldest goes first.
  if (parsed.size >= PARSED_KEPT) parsed.delete(parsed.keys().next().value as string)
  parsed.set(input, cid)
  return cid
}

export function toExporterPath (path: ContentPath): string {
  return [path.cid.toString(), ...path.rest].join('/')
}
